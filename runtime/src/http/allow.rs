//! The `Host`/`Origin` allow-list: DNS-rebinding protection (403).

use super::HttpError;
use crate::jsonrpc::code;

/// A host name (lower case; IPv6 in brackets) with an optional port (`None`: any port), or any
/// host at all (`*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    host: Option<String>,
    port: Option<u16>,
}

/// Splits `host[:port]` / `[v6][:port]`; the host is lower-cased without a trailing dot.
fn split_host_port(s: &str) -> Option<(String, Option<u16>)> {
    let s = s.trim();
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']')?;
        let host = &s[..end + 2];
        match &rest[end + 1..] {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':')?)),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            Some(_) => return None, // a bare IPv6 address without brackets
            None => (s, None),
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty()
        || host
            .chars()
            .any(|c| c.is_whitespace() || c == '/' || c == '@')
    {
        return None;
    }
    let port = match port {
        None => None,
        Some(p) => Some(p.parse::<u16>().ok()?),
    };
    Some((host.to_ascii_lowercase(), port))
}

impl HostPattern {
    /// `*`, `name`, `name:port`, `[v6]` or `[v6]:port`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.trim() == "*" {
            return Ok(Self {
                host: None,
                port: None,
            });
        }
        let (host, port) = split_host_port(s).ok_or_else(|| {
            format!("invalid host {s:?}: expected NAME, NAME:PORT, [IPV6] or [IPV6]:PORT, or *")
        })?;
        Ok(Self {
            host: Some(host),
            port,
        })
    }

    fn matches(&self, host: &str, port: Option<u16>) -> bool {
        self.host.as_deref().is_none_or(|h| h == host)
            && (self.host.is_none() || self.port.is_none() || self.port == port)
    }
}

/// An origin pattern: `scheme://host[:port]` (`None` port: any port), or `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginPattern {
    scheme: Option<String>,
    host: HostPattern,
}

/// Splits an origin `scheme://host[:port]` (a trailing `/` is tolerated).
fn split_origin(s: &str) -> Option<(String, String, Option<u16>)> {
    let (scheme, rest) = s.trim().split_once("://")?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if scheme.is_empty() || rest.contains('/') {
        return None;
    }
    let (host, port) = split_host_port(rest)?;
    Some((scheme.to_ascii_lowercase(), host, port))
}

impl OriginPattern {
    /// `*` or `scheme://host[:port]`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.trim() == "*" {
            return Ok(Self {
                scheme: None,
                host: HostPattern::parse("*")?,
            });
        }
        let (scheme, host, port) = split_origin(s).ok_or_else(|| {
            format!("invalid origin {s:?}: expected SCHEME://HOST or SCHEME://HOST:PORT, or *")
        })?;
        Ok(Self {
            scheme: Some(scheme),
            host: HostPattern {
                host: Some(host),
                port,
            },
        })
    }

    fn matches(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        self.scheme.as_deref().is_none_or(|s| s == scheme) && self.host.matches(host, port)
    }
}

/// Host names a loopback listener accepts by default.
pub const LOOPBACK_HOSTS: &[&str] = &["localhost", "127.0.0.1", "[::1]"];

/// `Host`/`Origin` validation against DNS rebinding (spec: a bad `Origin` MUST get 403).
///
/// - `hosts`: the `Host` header must match one pattern (`None`: any host).
/// - `origins`: an `Origin` header, when present, must match one pattern; `None` means
///   same-origin: the origin's host and port must be the request's `Host`.
///
/// [`AllowList::for_bind`] gives the default: on a loopback address, the loopback names on any
/// port for both; on any other address, any host and same-origin (configure `allowed_hosts`
/// there to get DNS-rebinding protection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowList {
    hosts: Option<Vec<HostPattern>>,
    origins: Option<Vec<OriginPattern>>,
}

impl AllowList {
    /// An allow-list from configured patterns (`None`: the default for the bound address).
    pub fn new(
        hosts: Option<&[String]>,
        origins: Option<&[String]>,
        loopback: bool,
    ) -> Result<Self, String> {
        let default = Self::for_bind(loopback);
        let hosts = match hosts {
            Some(h) => Some(
                h.iter()
                    .map(|s| HostPattern::parse(s))
                    .collect::<Result<_, _>>()?,
            ),
            None => default.hosts,
        };
        let origins = match origins {
            Some(o) => Some(
                o.iter()
                    .map(|s| OriginPattern::parse(s))
                    .collect::<Result<_, _>>()?,
            ),
            None => default.origins,
        };
        Ok(Self { hosts, origins })
    }

    /// The default for a listener bound to a loopback address (`true`) or not.
    pub fn for_bind(loopback: bool) -> Self {
        if !loopback {
            return Self {
                hosts: None,
                origins: None,
            };
        }
        let hosts = LOOPBACK_HOSTS
            .iter()
            .map(|h| HostPattern {
                host: Some((*h).to_string()),
                port: None,
            })
            .collect();
        let origins = ["http", "https"]
            .iter()
            .flat_map(|scheme| {
                LOOPBACK_HOSTS.iter().map(move |h| OriginPattern {
                    scheme: Some((*scheme).to_string()),
                    host: HostPattern {
                        host: Some((*h).to_string()),
                        port: None,
                    },
                })
            })
            .collect();
        Self {
            hosts: Some(hosts),
            origins: Some(origins),
        }
    }

    /// Whether the `Host` header is checked at all.
    pub fn checks_host(&self) -> bool {
        self.hosts
            .as_ref()
            .is_some_and(|h| h.iter().all(|p| p.host.is_some()))
    }

    /// Checks a request's `Host` and `Origin` headers (403 when refused).
    pub fn check(&self, host: Option<&str>, origin: Option<&str>) -> Result<(), HttpError> {
        let forbidden = |what: String| {
            HttpError::new(
                403,
                code::INVALID_REQUEST,
                format!(
                    "Forbidden: {what} (DNS-rebinding protection; see allowed_hosts / allowed_origins)"
                ),
            )
        };
        let parsed_host = host.and_then(split_host_port);
        if let Some(patterns) = &self.hosts {
            let ok = parsed_host
                .as_ref()
                .is_some_and(|(h, p)| patterns.iter().any(|pat| pat.matches(h, *p)));
            if !ok {
                return Err(forbidden(match host {
                    Some(h) => format!("Host {h:?} is not allowed"),
                    None => "a Host header is required".to_string(),
                }));
            }
        }
        let Some(origin) = origin else {
            return Ok(());
        };
        let ok = match (split_origin(origin), &self.origins) {
            (None, Some(patterns)) => patterns.iter().any(|p| p.scheme.is_none()),
            (None, None) => false,
            (Some((scheme, h, p)), Some(patterns)) => {
                patterns.iter().any(|pat| pat.matches(&scheme, &h, p))
            }
            (Some((_, h, p)), None) => parsed_host
                .as_ref()
                .is_some_and(|(rh, rp)| *rh == h && (rp == &p || p.is_none() || rp.is_none())),
        };
        if ok {
            Ok(())
        } else {
            Err(forbidden(format!("Origin {origin:?} is not allowed")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_default_allows_local_names_on_any_port_only() {
        let a = AllowList::for_bind(true);
        assert!(a.checks_host());
        for host in [
            "localhost",
            "localhost:7401",
            "127.0.0.1:1",
            "[::1]:7401",
            "LOCALHOST.",
        ] {
            assert!(a.check(Some(host), None).is_ok(), "{host}");
        }
        assert!(
            a.check(Some("127.0.0.1:7401"), Some("http://127.0.0.1:7401"))
                .is_ok()
        );
        assert!(
            a.check(Some("localhost"), Some("https://localhost"))
                .is_ok()
        );
        let e = a
            .check(Some("evil.example.com"), Some("http://evil.example.com"))
            .unwrap_err();
        assert_eq!(e.status, 403);
        assert!(e.error.message.contains("evil.example.com"), "{e}");
        assert_eq!(
            a.check(Some("localhost:7401"), Some("http://evil.example.com"))
                .unwrap_err()
                .status,
            403
        );
        assert_eq!(a.check(None, None).unwrap_err().status, 403);
        assert_eq!(
            a.check(Some("localhost"), Some("null")).unwrap_err().status,
            403
        );
        assert_eq!(
            a.check(Some("127.0.0.1.evil.com"), None)
                .unwrap_err()
                .status,
            403
        );
    }

    #[test]
    fn configured_lists_and_the_non_loopback_default() {
        let a = AllowList::new(
            Some(&["mcp.example.com".into(), "10.0.0.1:8080".into()]),
            Some(&["https://app.example.com".into()]),
            true,
        )
        .unwrap();
        assert!(a.check(Some("mcp.example.com:443"), None).is_ok());
        assert!(a.check(Some("10.0.0.1:8080"), None).is_ok());
        assert!(a.check(Some("10.0.0.1:8081"), None).is_err());
        assert!(a.check(Some("localhost"), None).is_err());
        assert!(
            a.check(Some("mcp.example.com"), Some("https://app.example.com"))
                .is_ok()
        );
        assert!(
            a.check(Some("mcp.example.com"), Some("http://app.example.com"))
                .is_err()
        );

        let any = AllowList::new(Some(&["*".into()]), Some(&["*".into()]), true).unwrap();
        assert!(!any.checks_host());
        assert!(any.check(Some("whatever"), Some("null")).is_ok());

        // Not loopback, nothing configured: any host, same-origin.
        let open = AllowList::for_bind(false);
        assert!(!open.checks_host());
        assert!(open.check(Some("mcp.example.com"), None).is_ok());
        assert!(
            open.check(Some("mcp.example.com"), Some("https://mcp.example.com"))
                .is_ok()
        );
        assert!(
            open.check(
                Some("mcp.example.com:8080"),
                Some("http://mcp.example.com:8080")
            )
            .is_ok()
        );
        assert!(
            open.check(Some("mcp.example.com"), Some("https://evil.example.com"))
                .is_err()
        );

        assert!(AllowList::new(Some(&["bad host".into()]), None, true).is_err());
        assert!(AllowList::new(None, Some(&["example.com".into()]), true).is_err());
        assert!(AllowList::new(None, Some(&["http://x/path".into()]), true).is_err());
        assert!(HostPattern::parse("h:99999").is_err());
        assert!(HostPattern::parse("::1").is_err());
    }
}
