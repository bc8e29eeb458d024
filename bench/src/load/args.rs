//! Command line of `erlmcp-load` and the validated run configuration.

use std::fmt;
use std::time::Duration;

use clap::Parser;
use serde_json::Value;

use crate::duration::parse_duration;

/// Where the load goes: one variant per transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// MCP over TCP, NDJSON (one JSON-RPC message per line): `tcp://HOST:PORT`.
    Tcp {
        /// `HOST:PORT` as given (resolved once at start).
        addr: String,
    },
    /// MCP Streamable HTTP (sessions, revision 2025-11-25): `http://HOST:PORT/PATH`.
    Http {
        /// `HOST:PORT` as given (resolved once at start; also the `Host` header).
        addr: String,
        /// The MCP endpoint's path (`/mcp` when the URL has none).
        path: String,
    },
}

/// Checks `HOST:PORT`.
fn host_port(s: &str, hostport: &str) -> Result<(), String> {
    let (host, port) = hostport
        .rsplit_once(':')
        .ok_or_else(|| format!("invalid target {s:?}: missing :PORT"))?;
    if host.is_empty() || host.contains('/') {
        return Err(format!("invalid target {s:?}: missing or malformed host"));
    }
    port.parse::<u16>()
        .map_err(|_| format!("invalid target {s:?}: bad port {port:?}"))?;
    Ok(())
}

impl Target {
    /// Parses `tcp://HOST:PORT` or `http://HOST:PORT/PATH`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (scheme, rest) = s.split_once("://").ok_or_else(|| {
            format!("invalid target {s:?}: expected tcp://HOST:PORT or http://HOST:PORT/mcp")
        })?;
        match scheme {
            "tcp" => {
                let rest = rest.trim_end_matches('/');
                host_port(s, rest)?;
                Ok(Target::Tcp {
                    addr: rest.to_string(),
                })
            }
            "http" => {
                let (addr, path) = match rest.find('/') {
                    Some(k) => (&rest[..k], &rest[k..]),
                    None => (rest, "/mcp"),
                };
                host_port(s, addr)?;
                if path.contains(['?', '#', ' ']) {
                    return Err(format!(
                        "invalid target {s:?}: the path must not have a query or fragment"
                    ));
                }
                Ok(Target::Http {
                    addr: addr.to_string(),
                    path: path.to_string(),
                })
            }
            "https" => Err(format!(
                "target {s:?}: TLS is not supported (use http://HOST:PORT/mcp)"
            )),
            other => Err(format!(
                "invalid target {s:?}: unknown scheme {other:?} (use tcp://HOST:PORT or http://HOST:PORT/mcp)"
            )),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Tcp { addr } => write!(f, "tcp://{addr}"),
            Target::Http { addr, path } => write!(f, "http://{addr}{path}"),
        }
    }
}

fn parse_args_json(s: &str) -> Result<Value, String> {
    let v: Value = serde_json::from_str(s).map_err(|e| format!("--args is not JSON: {e}"))?;
    if !v.is_object() {
        return Err("--args must be a JSON object, e.g. {\"text\":\"hello\"}".into());
    }
    Ok(v)
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let r: f64 = s
        .parse()
        .map_err(|_| format!("invalid rate {s:?} (requests per second, e.g. 20000)"))?;
    if !(r.is_finite() && r > 0.0) {
        return Err(format!("rate must be a positive number, got {s:?}"));
    }
    Ok(r)
}

fn parse_positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("expected a positive integer, got {s:?}")),
    }
}

/// `erlmcp-load`: drives `tools/call` over MCP sessions and reports throughput and latency.
#[derive(Parser, Debug, Clone)]
#[command(name = "erlmcp-load", version)]
pub struct LoadArgs {
    /// Server to load: `tcp://HOST:PORT` (NDJSON) or `http://HOST:PORT/mcp` (Streamable HTTP).
    #[arg(long, default_value = "tcp://127.0.0.1:7400", value_parser = Target::parse)]
    pub target: Target,
    /// MCP sessions (TCP: one connection each; HTTP: `--concurrency` connections each).
    #[arg(long, default_value = "1", value_parser = parse_positive)]
    pub sessions: usize,
    /// Outstanding requests per session (TCP: pipelined on its connection; HTTP: one per
    /// keep-alive connection, all sharing the session id).
    #[arg(long, default_value = "1", value_parser = parse_positive)]
    pub concurrency: usize,
    /// Tool to call.
    #[arg(long, default_value = "echo")]
    pub tool: String,
    /// Tool arguments (a JSON object).
    #[arg(long, default_value = r#"{"text":"hello"}"#, value_parser = parse_args_json)]
    pub args: Value,
    /// Measured period (after the warm-up).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Warm-up before measuring (requests run, nothing is recorded).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Total requests per second over all sessions (open loop: requests are sent on schedule,
    /// and latency counts from the scheduled time when the window was full). Unlimited if absent.
    #[arg(long, value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// A request without a response after this long counts as a timeout.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Connecting and initializing all sessions must finish within this.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub setup_timeout: Duration,
    /// Tokio worker threads.
    #[arg(long, default_value = "1", value_parser = parse_positive)]
    pub threads: usize,
    /// Also report the CPU time this process (the server) used during the run, per request.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress lines on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Only open the sessions (handshake), close their connections and exit, printing how
    /// many opened: leaves idle sessions on the server, to measure its memory per session.
    #[arg(long)]
    pub open_only: bool,
    /// MCP revision: `2025-11-25` (a session per `--sessions`: initialize, then requests in it)
    /// or `2026-07-28` (no handshake, no session: every request carries `_meta`; `--sessions`
    /// is then the number of clients).
    #[arg(long, default_value = "2025-11-25", value_parser = parse_revision)]
    pub revision: String,
}

fn parse_revision(s: &str) -> Result<String, String> {
    match s {
        "2025-11-25" | "2026-07-28" => Ok(s.to_string()),
        other => Err(format!(
            "unknown revision {other:?}: 2025-11-25 (sessions) or 2026-07-28 (per-request _meta)"
        )),
    }
}

impl LoadArgs {
    /// Checks combinations that single-flag parsers cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.duration.is_zero() {
            return Err("--duration must be more than 0".into());
        }
        if self.timeout.is_zero() {
            return Err("--timeout must be more than 0".into());
        }
        if self.tool.is_empty() {
            return Err("--tool must not be empty".into());
        }
        if self.concurrency > 1 << 20 {
            return Err("--concurrency is capped at 1048576".into());
        }
        if self.open_only && self.per_request() {
            return Err("--open-only opens sessions; revision 2026-07-28 has none".into());
        }
        Ok(())
    }

    /// Whether the requests follow revision 2026-07-28.
    pub fn per_request(&self) -> bool {
        self.revision == crate::load::workload::PER_REQUEST_VERSION
    }

    /// The request every client sends.
    pub fn workload(&self) -> crate::load::workload::Workload {
        use crate::load::workload::Workload;
        if self.per_request() {
            Workload::tools_call_per_request(&self.tool, &self.args)
        } else {
            Workload::tools_call(&self.tool, &self.args)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<LoadArgs, String> {
        let a =
            LoadArgs::try_parse_from(std::iter::once("erlmcp-load").chain(args.iter().copied()))
                .map_err(|e| e.to_string())?;
        a.validate()?;
        Ok(a)
    }

    #[test]
    fn defaults() {
        let a = parse(&[]).unwrap();
        assert_eq!(
            a.target,
            Target::Tcp {
                addr: "127.0.0.1:7400".into()
            }
        );
        assert_eq!((a.sessions, a.concurrency, a.threads), (1, 1, 1));
        assert_eq!(a.tool, "echo");
        assert_eq!(a.args, serde_json::json!({"text": "hello"}));
        assert_eq!(a.duration, Duration::from_secs(10));
        assert_eq!(a.warmup, Duration::from_secs(1));
        assert_eq!(a.rate, None);
        assert!(!a.json);
    }

    #[test]
    fn all_flags() {
        let a = parse(&[
            "--target",
            "tcp://localhost:9000",
            "--sessions",
            "64",
            "--concurrency",
            "4",
            "--tool",
            "add",
            "--args",
            r#"{"a":1,"b":2}"#,
            "--duration",
            "2s",
            "--warmup",
            "500ms",
            "--rate",
            "20000",
            "--threads",
            "2",
            "--timeout",
            "1s",
            "--server-pid",
            "42",
            "--json",
        ])
        .unwrap();
        assert_eq!(a.target.to_string(), "tcp://localhost:9000");
        assert_eq!((a.sessions, a.concurrency, a.threads), (64, 4, 2));
        assert_eq!(a.tool, "add");
        assert_eq!(a.args, serde_json::json!({"a": 1, "b": 2}));
        assert_eq!(a.duration, Duration::from_secs(2));
        assert_eq!(a.warmup, Duration::from_millis(500));
        assert_eq!(a.rate, Some(20000.0));
        assert_eq!(a.timeout, Duration::from_secs(1));
        assert_eq!(a.server_pid, Some(42));
        assert!(a.json);
    }

    #[test]
    fn rejects_bad_values() {
        for bad in [
            &["--sessions", "0"][..],
            &["--concurrency", "-1"],
            &["--threads", "0"],
            &["--args", "[1,2]"],
            &["--args", "{not json"],
            &["--rate", "0"],
            &["--rate", "fast"],
            &["--duration", "0s"],
            &["--duration", "ten"],
            &["--timeout", "0"],
            &["--target", "127.0.0.1:7400"],
            &["--target", "tcp://127.0.0.1"],
            &["--target", "tcp://:7400"],
            &["--target", "tcp://h:99999"],
            &["--target", "https://127.0.0.1:8080/mcp"],
            &["--target", "http://127.0.0.1/mcp"],
            &["--target", "http://h:1/mcp?x=1"],
            &["--target", "udp://h:1"],
            &["--tool", ""],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn targets() {
        assert_eq!(
            Target::parse("http://127.0.0.1:7401/mcp"),
            Ok(Target::Http {
                addr: "127.0.0.1:7401".into(),
                path: "/mcp".into()
            })
        );
        assert_eq!(
            Target::parse("http://localhost:7401").map(|t| t.to_string()),
            Ok("http://localhost:7401/mcp".into())
        );
        assert_eq!(
            Target::parse("http://[::1]:7401/a/b").map(|t| t.to_string()),
            Ok("http://[::1]:7401/a/b".into())
        );
        assert_eq!(
            Target::parse("tcp://[::1]:7400/"),
            Ok(Target::Tcp {
                addr: "[::1]:7400".into()
            })
        );
    }
}
