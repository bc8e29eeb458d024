//! [`AdminClient`]: the admin API over HTTP/1.1 (reqwest), one request per connection.
//!
//! No connection is kept between requests (`Connection: close`): admin calls are rare, and a
//! pooled connection to a node that was killed or paused in between would only turn into a
//! confusing error on the next call.

use std::error::Error as _;
use std::fmt;
use std::time::Duration;

use reqwest::header::{ACCEPT, CONNECTION, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    CHAOS_KILL_PATH, CLUSTER_PATH, ClusterView, ErrorBody, FORGET_PATH, ForgetRequest, Forgotten,
    HEALTH_PATH, Health, KillRequest, Killed, MoveShard, READY_PATH, Readiness, SESSIONS_PATH,
    SHARD_MOVE_PATH, SHARDS_PATH, STATS_PATH, SessionDetail, SessionsView, ShardMoved, ShardsView,
    Stats, TREE_PATH, TreeNode,
};

/// How long connecting to an admin API may take unless set otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one admin request may take (connecting and reading the answer included) unless set
/// otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer read: the biggest, a cluster view, is a few hundred bytes per member.
const MAX_RESPONSE: usize = 16 << 20;
/// The endpoints that take the bearer token.
const CHAOS_PREFIX: &str = "/admin/chaos/";
/// How much of an unexpected body an error quotes.
const QUOTE_CHARS: usize = 2000;

/// Why an admin request failed. Every variant names the admin API's address.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The address is not `HOST:PORT` or `http://HOST:PORT/`.
    #[error("{addr:?} is not an admin API address: {reason}")]
    BadAddress {
        /// The address as given.
        addr: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The client could not be set up (e.g. a token that is not a valid header value).
    #[error("cannot set up a client for the admin API at {addr}: {detail}")]
    Setup {
        /// The admin API's address.
        addr: String,
        /// What failed.
        detail: String,
    },
    /// No connection could be made (refused, unreachable, connect timeout): nothing was sent.
    #[error("cannot reach the admin API at {addr}: {detail}")]
    Unreachable {
        /// The admin API's address.
        addr: String,
        /// The cause, e.g. "Connection refused (os error 111)".
        detail: String,
    },
    /// Connected, but no whole answer came within the timeout.
    #[error("the admin API at {addr} did not answer {request} within {timeout:?}")]
    Timeout {
        /// The admin API's address.
        addr: String,
        /// The request, e.g. `GET /admin/cluster`.
        request: String,
        /// The request timeout.
        timeout: Duration,
    },
    /// The exchange broke after connecting (reset, not HTTP, cut short).
    #[error("{request} to the admin API at {addr} failed: {detail}")]
    Transport {
        /// The admin API's address.
        addr: String,
        /// The request.
        request: String,
        /// The cause.
        detail: String,
    },
    /// A status the request does not expect (4xx, 5xx): the server's `{"error": ..}` message,
    /// or the start of its body.
    #[error("the admin API at {addr} answered {} to {request}: {message}", status_text(*.status))]
    Status {
        /// The admin API's address.
        addr: String,
        /// The request.
        request: String,
        /// The HTTP status code.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// An answer that is not the expected JSON.
    #[error(
        "the admin API at {addr} answered {request} with something that is not {expected} ({detail}): {body}"
    )]
    Malformed {
        /// The admin API's address.
        addr: String,
        /// The request.
        request: String,
        /// What was expected, e.g. "a cluster view".
        expected: &'static str,
        /// The parser's complaint.
        detail: String,
        /// The start of the body.
        body: String,
    },
    /// An answer larger than any admin answer should be.
    #[error("the admin API at {addr} answered {request} with more than {limit} bytes")]
    TooLarge {
        /// The admin API's address.
        addr: String,
        /// The request.
        request: String,
        /// The limit in bytes.
        limit: usize,
    },
}

impl AdminError {
    /// The HTTP status, for [`AdminError::Status`].
    pub fn status(&self) -> Option<u16> {
        match self {
            AdminError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the node could not be reached at all (nothing was sent).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, AdminError::Unreachable { .. })
    }
}

/// `404 Not Found`, or just the code when it has no reason phrase.
fn status_text(code: u16) -> String {
    match StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
    {
        Some(reason) => format!("{code} {reason}"),
        None => code.to_string(),
    }
}

/// The causes of a reqwest error, `outer: inner` (its own message only says "error sending
/// request for url (...)", and the address is named already). Shared with every reqwest user
/// of the workspace (the chaos workload).
pub fn causes(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = s.source();
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}

/// At most [`QUOTE_CHARS`] characters of `s`, on a character boundary.
fn quote(s: &str) -> String {
    let s = s.trim();
    match s.char_indices().nth(QUOTE_CHARS) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None if s.is_empty() => "(empty body)".to_string(),
        None => s.to_string(),
    }
}

/// `HOST:PORT` from `HOST:PORT`, `http://HOST:PORT` or `http://HOST:PORT/`.
fn host_port(addr: &str) -> Result<&str, AdminError> {
    let bad = |reason: &str| AdminError::BadAddress {
        addr: addr.to_string(),
        reason: reason.to_string(),
    };
    let host = addr.strip_prefix("http://").unwrap_or(addr);
    let host = host.strip_suffix('/').unwrap_or(host);
    if host.contains("://") {
        return Err(bad("only plain http:// is spoken"));
    }
    if host.is_empty() || host.contains('/') {
        return Err(bad("expected HOST:PORT (plain HTTP, no path)"));
    }
    Ok(host)
}

/// How an [`AdminClient`] is made: its address, token and timeouts.
#[derive(Clone)]
pub struct AdminClientBuilder {
    addr: String,
    token: Option<String>,
    connect_timeout: Duration,
    timeout: Duration,
}

impl fmt::Debug for AdminClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminClientBuilder")
            .field("addr", &self.addr)
            .field("token", &self.token.as_ref().map(|_| "…"))
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl AdminClientBuilder {
    /// The bearer token of the fault-injection endpoints (`--admin-token`); sent with
    /// `/admin/chaos/*` requests only.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Bound on connecting ([`DEFAULT_CONNECT_TIMEOUT`] by default).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Bound on a whole request, connecting and reading the answer included
    /// ([`DEFAULT_TIMEOUT`] by default).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// The client. Fails on a bad address or a token that cannot be a header value; connects
    /// to nothing yet.
    pub fn build(self) -> Result<AdminClient, AdminError> {
        let host = host_port(&self.addr)?.to_string();
        let setup = |detail: String| AdminError::Setup {
            addr: self.addr.clone(),
            detail,
        };
        let base = reqwest::Url::parse(&format!("http://{host}"))
            .map_err(|e| AdminError::BadAddress {
                addr: self.addr.clone(),
                reason: e.to_string(),
            })?
            .to_string();
        let bearer = match &self.token {
            Some(t) => {
                let mut v = HeaderValue::from_str(&format!("Bearer {t}")).map_err(|_| {
                    setup("the token must be printable text without line breaks".into())
                })?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        let http = reqwest::Client::builder()
            // Loopback and the operator's own network: an HTTP_PROXY meant for the internet
            // must not capture admin calls.
            .no_proxy()
            .connect_timeout(self.connect_timeout)
            .pool_max_idle_per_host(0)
            .user_agent(concat!("erlmcp/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| setup(causes(&e)))?;
        Ok(AdminClient {
            addr: self.addr,
            base: base.trim_end_matches('/').to_string(),
            bearer,
            timeout: self.timeout,
            http,
        })
    }
}

/// A node's admin API, typed: one method per endpoint, errors that name the address, the
/// status and the server's message. Cheap to clone.
#[derive(Clone)]
pub struct AdminClient {
    addr: String,
    base: String,
    bearer: Option<HeaderValue>,
    timeout: Duration,
    http: reqwest::Client,
}

impl fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminClient")
            .field("addr", &self.addr)
            .field("token", &self.bearer.as_ref().map(|_| "…"))
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl AdminClient {
    /// A client of the admin API at `addr` (`HOST:PORT` or `http://HOST:PORT/`) with the
    /// default timeouts and no token.
    pub fn new(addr: impl Into<String>) -> Result<Self, AdminError> {
        Self::builder(addr).build()
    }

    /// A builder for a client of the admin API at `addr`.
    pub fn builder(addr: impl Into<String>) -> AdminClientBuilder {
        AdminClientBuilder {
            addr: addr.into(),
            token: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The address as given.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `GET /health`.
    pub async fn health(&self) -> Result<Health, AdminError> {
        self.call(
            Method::GET,
            HEALTH_PATH,
            None::<&()>,
            &[],
            "a health answer",
        )
        .await
    }

    /// `GET /ready`: a 503 is an answer too (not ready, and what it waits for).
    pub async fn ready(&self) -> Result<Readiness, AdminError> {
        self.call(
            Method::GET,
            READY_PATH,
            None::<&()>,
            &[StatusCode::SERVICE_UNAVAILABLE],
            "a readiness answer",
        )
        .await
    }

    /// `GET /admin/stats`.
    pub async fn stats(&self) -> Result<Stats, AdminError> {
        self.call(
            Method::GET,
            STATS_PATH,
            None::<&()>,
            &[],
            "the node's stats",
        )
        .await
    }

    /// `GET /admin/tree`.
    pub async fn tree(&self) -> Result<TreeNode, AdminError> {
        self.call(
            Method::GET,
            TREE_PATH,
            None::<&()>,
            &[],
            "a supervision tree",
        )
        .await
    }

    /// `GET /admin/cluster`.
    pub async fn cluster(&self) -> Result<ClusterView, AdminError> {
        self.call(
            Method::GET,
            CLUSTER_PATH,
            None::<&()>,
            &[],
            "a cluster view",
        )
        .await
    }

    /// `GET /admin/shards`.
    pub async fn shards(&self) -> Result<ShardsView, AdminError> {
        self.call(Method::GET, SHARDS_PATH, None::<&()>, &[], "a shard map")
            .await
    }

    /// `GET /admin/sessions?limit=LIMIT[&after=AFTER]`: a page of the node's sessions.
    pub async fn sessions(
        &self,
        limit: usize,
        after: Option<&str>,
    ) -> Result<SessionsView, AdminError> {
        let mut path = format!("{SESSIONS_PATH}?limit={limit}");
        if let Some(a) = after {
            path.push_str("&after=");
            path.push_str(&percent_encode(a));
        }
        self.call(Method::GET, &path, None::<&()>, &[], "a session list")
            .await
    }

    /// `GET /admin/sessions/{id}`: one session.
    pub async fn session(&self, id: &str) -> Result<SessionDetail, AdminError> {
        let path = format!("{SESSIONS_PATH}/{}", percent_encode(id));
        self.call(Method::GET, &path, None::<&()>, &[], "a session")
            .await
    }

    /// `POST /admin/shards/move`: give `shard` to node `to`.
    pub async fn move_shard(&self, shard: u32, to: &str) -> Result<ShardMoved, AdminError> {
        self.call(
            Method::POST,
            SHARD_MOVE_PATH,
            Some(&MoveShard {
                shard,
                to: to.to_string(),
            }),
            &[],
            "a shard move answer",
        )
        .await
    }

    /// `POST /admin/forget`: forget member `node` (down or left) on that node and its peers.
    pub async fn forget(&self, node: &str) -> Result<Forgotten, AdminError> {
        self.call(
            Method::POST,
            FORGET_PATH,
            Some(&ForgetRequest {
                node: node.to_string(),
            }),
            &[],
            "a forget answer",
        )
        .await
    }

    /// `POST /admin/chaos/kill` with the client's token (a node started with `--chaos
    /// --admin-token TOKEN`).
    pub async fn kill(&self, what: &KillRequest) -> Result<Killed, AdminError> {
        self.call(
            Method::POST,
            CHAOS_KILL_PATH,
            Some(what),
            &[],
            "a kill answer",
        )
        .await
    }

    /// `GET path` as untyped JSON (2xx only), e.g. to print a newer node's answer whole.
    pub async fn get_json(&self, path: &str) -> Result<serde_json::Value, AdminError> {
        self.call(Method::GET, path, None::<&()>, &[], "JSON").await
    }

    /// One request: 2xx (or a status in `also`) parsed as `T`, anything else an error.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
        also: &[StatusCode],
        expected: &'static str,
    ) -> Result<T, AdminError> {
        let request = format!("{method} {path}");
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .timeout(self.timeout)
            .header(ACCEPT, "application/json")
            .header(CONNECTION, "close");
        // The token opens the fault-injection endpoints only; other requests go without it.
        if let Some(b) = &self.bearer
            && path.starts_with(CHAOS_PREFIX)
        {
            req = req.header(reqwest::header::AUTHORIZATION, b.clone());
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await.map_err(|e| self.failed(&request, &e))?;
        let status = resp.status();
        let bytes = self.read_body(resp, &request).await?;
        let text = || String::from_utf8_lossy(&bytes);
        if !status.is_success() && !also.contains(&status) {
            let message = serde_json::from_slice::<ErrorBody>(&bytes)
                .map(|e| e.error)
                .unwrap_or_else(|_| quote(&text()));
            return Err(AdminError::Status {
                addr: self.addr.clone(),
                request,
                status: status.as_u16(),
                message,
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| AdminError::Malformed {
            addr: self.addr.clone(),
            request,
            expected,
            detail: e.to_string(),
            body: quote(&text()),
        })
    }

    /// The whole body, at most [`MAX_RESPONSE`] bytes.
    async fn read_body(
        &self,
        mut resp: reqwest::Response,
        request: &str,
    ) -> Result<Vec<u8>, AdminError> {
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.failed(request, &e))? {
            if body.len() + chunk.len() > MAX_RESPONSE {
                return Err(AdminError::TooLarge {
                    addr: self.addr.clone(),
                    request: request.to_string(),
                    limit: MAX_RESPONSE,
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// A reqwest failure as an [`AdminError`]: unreachable, timed out, or broken.
    fn failed(&self, request: &str, e: &reqwest::Error) -> AdminError {
        let addr = self.addr.clone();
        if e.is_connect() {
            AdminError::Unreachable {
                addr,
                detail: causes(e),
            }
        } else if e.is_timeout() {
            AdminError::Timeout {
                addr,
                request: request.to_string(),
                timeout: self.timeout,
            }
        } else {
            AdminError::Transport {
                addr,
                request: request.to_string(),
                detail: causes(e),
            }
        }
    }
}

/// `text` as a URL path segment or query value (unreserved characters kept, the rest %XX).
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    use super::*;

    /// Generous bound on every wait: the machine may be busy with builds.
    const WAIT: Duration = Duration::from_secs(10);

    /// A server that answers each connection with `response` (raw bytes, so the tests can
    /// send what no well-behaved server would) and hands over the requests it read.
    async fn server(response: &'static [u8]) -> (String, mpsc::UnboundedReceiver<String>) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr").to_string();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut raw = Vec::new();
                let mut buf = [0u8; 4096];
                // The head, then as much body as Content-Length says.
                let request = loop {
                    let Ok(n) = s.read(&mut buf).await else {
                        break None;
                    };
                    if n == 0 {
                        break None;
                    }
                    raw.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&raw).into_owned();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len = head
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        if body.len() >= len {
                            break Some(text);
                        }
                    }
                };
                if let Some(r) = request {
                    let _ = tx.send(r);
                }
                let _ = s.write_all(response).await;
                let _ = s.shutdown().await;
            }
        });
        (addr, rx)
    }

    async fn next(rx: &mut mpsc::UnboundedReceiver<String>) -> String {
        tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("a request in time")
            .expect("server alive")
    }

    #[test]
    fn addresses_are_host_port_or_plain_http_urls() {
        assert_eq!(host_port("127.0.0.1:8080").expect("ok"), "127.0.0.1:8080");
        assert_eq!(
            host_port("http://localhost:8080/").expect("ok"),
            "localhost:8080"
        );
        assert_eq!(host_port("[::1]:80").expect("ok"), "[::1]:80");
        for bad in ["https://x:1", "x:1/admin", "", "http://"] {
            let e = host_port(bad).expect_err(bad);
            assert!(e.to_string().contains("not an admin API address"), "{e}");
        }
        let e = AdminClient::builder("127.0.0.1:1")
            .token("a\r\nb")
            .build()
            .expect_err("a token with a line break");
        assert!(e.to_string().contains("line breaks"), "{e}");
        let c = AdminClient::builder("127.0.0.1:1")
            .token("sekrit")
            .build()
            .expect("ok");
        assert!(!format!("{c:?}").contains("sekrit"), "{c:?}");
    }

    #[tokio::test]
    async fn a_server_that_is_down_is_named() {
        let closed = {
            let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            l.local_addr().expect("addr").to_string()
        };
        let e = AdminClient::new(&closed)
            .expect("client")
            .health()
            .await
            .expect_err("nothing listens");
        assert!(e.is_unreachable(), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!("cannot reach the admin API at {closed}: ")),
            "{msg}"
        );
        assert!(msg.to_lowercase().contains("refused"), "{msg}");
    }

    #[tokio::test]
    async fn an_error_status_carries_the_code_and_the_servers_message() {
        let (addr, mut rx) = server(
            b"HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: 34\r\n\r\n{\"error\":\"missing or wrong token\"}",
        )
        .await;
        let c = AdminClient::builder(format!("http://{addr}/"))
            .token("sekrit")
            .build()
            .expect("client");
        let e = c.kill(&KillRequest::Shard).await.expect_err("401");
        assert_eq!(e.status(), Some(401));
        assert_eq!(
            e.to_string(),
            format!(
                "the admin API at http://{addr}/ answered 401 Unauthorized to POST /admin/chaos/kill: missing or wrong token"
            )
        );
        let req = next(&mut rx).await.to_ascii_lowercase();
        assert!(
            req.starts_with("post /admin/chaos/kill http/1.1\r\n"),
            "{req}"
        );
        assert!(
            req.contains("\r\nauthorization: bearer sekrit\r\n"),
            "{req}"
        );
        assert!(req.contains("\r\nconnection: close\r\n"), "{req}");
        assert!(
            req.contains("\r\ncontent-type: application/json\r\n"),
            "{req}"
        );
        assert!(req.ends_with("\r\n\r\n{\"kind\":\"shard\"}"), "{req}");
    }

    #[tokio::test]
    async fn an_error_status_without_an_error_body_quotes_the_body() {
        let (addr, _rx) =
            server(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 12\r\n\r\nupstream sad").await;
        let e = AdminClient::new(&addr)
            .expect("client")
            .cluster()
            .await
            .expect_err("502");
        let msg = e.to_string();
        assert!(
            msg.contains(&format!(
                "at {addr} answered 502 Bad Gateway to GET /admin/cluster"
            )) && msg.ends_with(": upstream sad"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn malformed_json_is_a_clear_error() {
        let (addr, _rx) = server(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 13\r\n\r\n{\"node\": oops",
        )
        .await;
        let e = AdminClient::new(&addr)
            .expect("client")
            .stats()
            .await
            .expect_err("not JSON");
        assert!(matches!(e, AdminError::Malformed { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.contains(&format!(
                "the admin API at {addr} answered GET /admin/stats with something that is not the node's stats"
            )) && msg.ends_with(": {\"node\": oops"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn a_503_readiness_is_an_answer_and_typed_bodies_parse_chunked() {
        let (addr, _rx) = server(
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n10\r\n{\"status\":\"not r\r\n1e\r\neady\",\"waiting_for\":[\"shard\"]}\r\n0\r\n\r\n",
        )
        .await;
        let r = AdminClient::new(&addr)
            .expect("client")
            .ready()
            .await
            .expect("a 503 readiness");
        assert!(!r.is_ready());
        assert_eq!(r.waiting_for, Some(vec!["shard".to_string()]));
    }

    #[tokio::test]
    async fn a_server_that_is_not_http_or_says_nothing_fails_clearly() {
        let (garbage, _rx) = server(b"SSH-2.0-OpenSSH_9.6\r\n").await;
        let e = AdminClient::new(&garbage)
            .expect("client")
            .health()
            .await
            .expect_err("not HTTP");
        assert!(matches!(e, AdminError::Transport { .. }), "{e:?}");
        assert!(e.to_string().contains(&garbage), "{e}");

        // Accepts, reads, never answers: the request timeout ends it.
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let silent = l.local_addr().expect("addr").to_string();
        let _keep = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        });
        let e = AdminClient::builder(&silent)
            .timeout(Duration::from_millis(300))
            .build()
            .expect("client")
            .tree()
            .await
            .expect_err("silence");
        assert!(matches!(e, AdminError::Timeout { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            format!("the admin API at {silent} did not answer GET /admin/tree within 300ms")
        );
    }
}
