//! A minimal MCP Streamable HTTP client (revision 2025-11-25, sessions): `POST /mcp` with
//! reqwest, one request at a time, each client with its own keep-alive connection to the node.
//!
//! A response is either one `application/json` body or a `text/event-stream` whose `data:`
//! events carry the request's notifications and finally its response. The session is the
//! `Mcp-Session-Id` header, so any connection to a node that knows the session serves it (an
//! unknown id gets 404).
//!
//! The checkers need to know whether a failed request may have been applied, so each failure is
//! classified by where the exchange broke:
//!
//! - no connection could be made (refused, connect timeout), or the request could not even be
//!   built: [`CallError::NotSent`], definite. Nothing is ever sent twice: no retry policy, and
//!   hyper only moves a request to a fresh connection when a pooled one turned out closed
//!   before the request was written;
//! - a non-2xx status: [`CallError::Http`] (definite or not by its status);
//! - the deadline: [`CallError::Timeout`];
//! - anything else once connected (a reset, a body cut short, an answer that is not HTTP):
//!   [`CallError::Dropped`], indeterminate, since the request may have reached the node;
//! - a 2xx body that is not the response to the request: [`CallError::Malformed`].

use std::net::SocketAddr;
use std::time::Duration;

use erlmcp_net::admin::causes;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap};
use serde_json::Value;
use tokio::time::{Instant, timeout_at};

use super::client::{CallError, PROTOCOL_VERSION};
use super::lines::excerpt;

/// The MCP endpoint's path.
pub const MCP_PATH: &str = "/mcp";
/// What a Streamable HTTP client accepts: one JSON body or an event stream.
const ACCEPT_BOTH: &str = "application/json, text/event-stream";
/// Largest response body accepted (the workload's messages are tiny).
const MAX_BODY: usize = 16 * 1024 * 1024;
/// How much of an error response's body is kept for the error message.
const ERROR_BODY: usize = 2 * 1024;

/// What a POST got back.
#[derive(Debug)]
pub enum Reply {
    /// No message (202 for a notification).
    Accepted,
    /// The JSON-RPC response to the request (a `result` or an `error`).
    Message(Value),
}

/// A node's MCP endpoint and the session this client speaks for. The connection is made on the
/// first request and kept alive between requests (reqwest's pool, one connection at most).
pub struct HttpConn {
    addr: SocketAddr,
    url: String,
    http: reqwest::Client,
    session: Option<String>,
}

impl HttpConn {
    /// A client of `addr`'s MCP endpoint; connecting (on the first request) may take up to
    /// `connect_timeout`. Fails only if the HTTP client cannot be set up.
    pub fn new(addr: SocketAddr, connect_timeout: Duration) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            // The nodes are on loopback: an HTTP_PROXY in the environment must not capture them.
            .no_proxy()
            .connect_timeout(connect_timeout)
            // Without it the request's small writes wait on delayed ACKs.
            .tcp_nodelay(true)
            .pool_max_idle_per_host(1)
            // A request is never sent twice on our behalf (see the module docs).
            .retry(reqwest::retry::never())
            .user_agent(concat!("erlmcp-chaos/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("HTTP client: {}", causes(&e)))?;
        Ok(Self {
            addr,
            url: format!("http://{addr}{MCP_PATH}"),
            http,
            session: None,
        })
    }

    /// Sets the session id sent as `Mcp-Session-Id`.
    pub fn set_session(&mut self, session: Option<String>) {
        self.session = session;
    }

    /// Whether the client can carry a request now: always, since the pool replaces a connection
    /// the node closed (before anything is written) and never reuses one whose exchange broke.
    pub fn usable(&mut self) -> bool {
        true
    }

    /// POSTs `msg`. With `id`, waits for the response carrying that id; without (a
    /// notification), for the 2xx that accepts it. Returns the reply and the response's
    /// `Mcp-Session-Id`.
    pub async fn post(
        &mut self,
        msg: &Value,
        id: Option<u64>,
        deadline: Instant,
    ) -> Result<(Reply, Option<String>), CallError> {
        let started = Instant::now();
        self.exchange(msg, id, deadline).await.map_err(|e| match e {
            CallError::Timeout(_) => CallError::Timeout(started.elapsed()),
            e => e,
        })
    }

    async fn exchange(
        &self,
        msg: &Value,
        id: Option<u64>,
        deadline: Instant,
    ) -> Result<(Reply, Option<String>), CallError> {
        let mut req = self
            .http
            .post(&self.url)
            .header(ACCEPT, ACCEPT_BOTH)
            .header(CONTENT_TYPE, "application/json")
            .header("MCP-Protocol-Version", PROTOCOL_VERSION)
            .body(msg.to_string());
        if let Some(s) = &self.session {
            req = req.header("Mcp-Session-Id", s);
        }
        let mut resp = match timeout_at(deadline, req.send()).await {
            Err(_) => return Err(CallError::Timeout(Duration::ZERO)),
            Ok(Err(e)) => return Err(self.send_error(&e)),
            Ok(Ok(r)) => r,
        };
        let status = resp.status();
        let session = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);

        if !status.is_success() {
            // Keep a little of the body for the message; a body that cannot be read only costs
            // the connection, the status already decided the outcome.
            let text = match timeout_at(deadline, read_up_to(&mut resp, ERROR_BODY)).await {
                Ok(Ok((bytes, _))) => String::from_utf8_lossy(&bytes).into_owned(),
                _ => String::new(),
            };
            return Err(CallError::Http {
                status: status.as_u16(),
                body: excerpt(text.trim()),
            });
        }

        let reply = match (id, body_kind(resp.headers())) {
            (None, _) => {
                read_to_end(&mut resp, deadline).await?;
                Reply::Accepted
            }
            (Some(id), BodyKind::Json) => {
                let bytes = read_to_end(&mut resp, deadline).await?;
                let msg: Value = serde_json::from_slice(&bytes).map_err(|e| {
                    CallError::Malformed(format!(
                        "JSON body ({e}): {}",
                        excerpt(&String::from_utf8_lossy(&bytes))
                    ))
                })?;
                if !is_response_to(&msg, id) {
                    return Err(CallError::Malformed(format!(
                        "the body is not the response to request {id}: {}",
                        excerpt(&msg.to_string())
                    )));
                }
                Reply::Message(msg)
            }
            (Some(id), BodyKind::Sse) => {
                let msg = read_sse_response(&mut resp, id, deadline).await?;
                // Read the stream to its end (the node closes it after the response) so the
                // connection can carry the next request; if that fails only the connection is
                // lost, the response is in hand.
                let _ = timeout_at(deadline, read_up_to(&mut resp, MAX_BODY)).await;
                Reply::Message(msg)
            }
            (Some(_), BodyKind::Other(ct)) => {
                return Err(CallError::Malformed(format!(
                    "unexpected Content-Type {ct:?} on a 2xx response"
                )));
            }
        };
        Ok((reply, session))
    }

    /// A failed send, classified: nothing sent (no connection, or a request that could not be
    /// built) or dropped after connecting.
    fn send_error(&self, e: &reqwest::Error) -> CallError {
        if e.is_connect() {
            CallError::NotSent(format!("connect to {}: {}", self.addr, causes(e)))
        } else if e.is_builder() {
            CallError::NotSent(format!("the request cannot be built: {}", causes(e)))
        } else {
            CallError::Dropped(causes(e))
        }
    }
}

fn is_response_to(msg: &Value, id: u64) -> bool {
    msg.get("id").and_then(Value::as_u64) == Some(id)
        && (msg.get("result").is_some() || msg.get("error").is_some())
}

/// What a response body holds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum BodyKind {
    Json,
    Sse,
    Other(String),
}

fn body_kind(headers: &HeaderMap) -> BodyKind {
    let value = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mime = value.split(';').next().unwrap_or_default().trim();
    if mime.eq_ignore_ascii_case("application/json") {
        BodyKind::Json
    } else if mime.eq_ignore_ascii_case("text/event-stream") {
        BodyKind::Sse
    } else {
        BodyKind::Other(mime.to_string())
    }
}

/// Reads the body, keeping at most `keep` bytes; the flag says whether the body ended within
/// `keep` (else reading stopped there).
async fn read_up_to(
    resp: &mut reqwest::Response,
    keep: usize,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut out = Vec::new();
    while let Some(piece) = resp.chunk().await? {
        out.extend_from_slice(&piece);
        if out.len() > keep {
            out.truncate(keep);
            return Ok((out, false));
        }
    }
    Ok((out, true))
}

async fn read_to_end(
    resp: &mut reqwest::Response,
    deadline: Instant,
) -> Result<Vec<u8>, CallError> {
    match timeout_at(deadline, read_up_to(resp, MAX_BODY)).await {
        Err(_) => Err(CallError::Timeout(Duration::ZERO)),
        Ok(Err(e)) => Err(CallError::Dropped(format!(
            "reading the body: {}",
            causes(&e)
        ))),
        Ok(Ok((_, false))) => Err(CallError::Malformed(format!(
            "a body larger than {MAX_BODY} bytes"
        ))),
        Ok(Ok((bytes, true))) => Ok(bytes),
    }
}

/// Reads SSE events as they arrive until one carries the response to `id`.
async fn read_sse_response(
    resp: &mut reqwest::Response,
    id: u64,
    deadline: Instant,
) -> Result<Value, CallError> {
    let mut sse = SseParser::default();
    loop {
        let chunk = match timeout_at(deadline, resp.chunk()).await {
            Err(_) => return Err(CallError::Timeout(Duration::ZERO)),
            Ok(Err(e)) => {
                return Err(CallError::Dropped(format!(
                    "reading the stream: {}",
                    causes(&e)
                )));
            }
            Ok(Ok(c)) => c,
        };
        let events = match &chunk {
            Some(bytes) => sse.push(bytes),
            None => sse.finish(),
        };
        for data in events {
            if data.is_empty() {
                continue; // the priming event (an id to resume from, no message)
            }
            let msg: Value = serde_json::from_str(&data).map_err(|e| {
                CallError::Malformed(format!("SSE data is not JSON ({e}): {}", excerpt(&data)))
            })?;
            if is_response_to(&msg, id) {
                return Ok(msg);
            }
        }
        if chunk.is_none() {
            return Err(CallError::Dropped(
                "the event stream ended without the response".into(),
            ));
        }
        if sse.buffered() > MAX_BODY {
            return Err(CallError::Malformed(format!(
                "an SSE event larger than {MAX_BODY} bytes"
            )));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Server-sent events

/// Splits an event stream into events' `data` (lines joined with `\n`), as bytes arrive.
#[derive(Debug, Default)]
struct SseParser {
    pending: Vec<u8>,
    data: Option<String>,
}

impl SseParser {
    /// Bytes not yet part of a complete line.
    fn buffered(&self) -> usize {
        self.pending.len() + self.data.as_ref().map_or(0, String::len)
    }

    /// Feeds bytes; returns the data of every event they complete.
    fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(nl) = self.pending.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.pending.drain(..=nl).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line);
            if line.is_empty() {
                if let Some(d) = self.data.take() {
                    events.push(d);
                }
                continue;
            }
            if line.starts_with(':') {
                continue; // a comment (keep-alive)
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line.as_ref(), ""),
            };
            if field == "data" {
                match &mut self.data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(value);
                    }
                    None => self.data = Some(value.to_string()),
                }
            }
        }
        events
    }

    /// The end of the stream: an event left without its blank line still counts (lenient).
    fn finish(&mut self) -> Vec<String> {
        let mut events = self.push(b"\n");
        if let Some(d) = self.data.take() {
            events.push(d);
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use serde_json::json;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::Notify;
    use tokio::task::{JoinHandle, JoinSet};

    use super::*;

    const WAIT: Duration = Duration::from_secs(10);

    fn soon() -> Instant {
        Instant::now() + WAIT
    }

    fn conn(addr: SocketAddr) -> HttpConn {
        HttpConn::new(addr, WAIT).expect("client")
    }

    /// What the fake server shares between its connections.
    struct Script {
        responses: Mutex<VecDeque<Option<String>>>,
        seen: Mutex<Vec<String>>,
        done: Notify,
    }

    /// A fake MCP endpoint: for each request it reads (head + Content-Length body), on whichever
    /// connection the client uses, it writes the next canned response; `None` closes that
    /// connection instead. When the responses run out it closes every connection and stops
    /// listening; the task then yields the requests it read, in order.
    async fn fake(responses: Vec<Option<String>>) -> (SocketAddr, JoinHandle<Vec<String>>) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let script = Arc::new(Script {
            responses: Mutex::new(responses.into()),
            seen: Mutex::new(Vec::new()),
            done: Notify::new(),
        });
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    () = script.done.notified() => break,
                    accepted = l.accept() => {
                        let (s, _) = accepted.expect("accept");
                        conns.spawn(serve(s, script.clone()));
                    }
                }
            }
            drop(l);
            conns.shutdown().await;
            std::mem::take(&mut *script.seen.lock().expect("seen"))
        });
        (addr, task)
    }

    async fn serve(s: TcpStream, script: Arc<Script>) {
        let mut r = BufReader::new(s);
        loop {
            let mut head = String::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().expect("length");
                }
                head.push_str(&line);
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0u8; length];
            r.read_exact(&mut body).await.expect("body");
            script
                .seen
                .lock()
                .expect("seen")
                .push(format!("{head}{}", String::from_utf8_lossy(&body)));
            let (next, last) = {
                let mut q = script.responses.lock().expect("responses");
                (q.pop_front().flatten(), q.is_empty())
            };
            if let Some(bytes) = &next {
                r.get_mut()
                    .write_all(bytes.as_bytes())
                    .await
                    .expect("write");
            }
            if last {
                script.done.notify_one();
            }
            if next.is_none() {
                return; // closes the connection without an answer
            }
        }
    }

    fn ping(id: u64) -> Value {
        json!({"jsonrpc": "2.0", "id": id, "method": "ping"})
    }

    #[tokio::test]
    async fn json_and_chunked_sse_responses_and_an_accepted_notification() {
        let json_body = r#"{"jsonrpc":"2.0","id":1,"result":{"a":1}}"#;
        let json_resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nmcp-session-id: s1\r\ncontent-length: {}\r\n\r\n{json_body}",
            json_body.len()
        );
        // A priming event, a notification, then the response, chunked mid-event.
        let mut sse_resp = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n".to_string();
        for piece in [
            "id: s:0\ndata:\n\n",
            "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\ndata: ",
            "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}\n\n",
            "",
        ] {
            sse_resp.push_str(&format!("{:x};ext=1\r\n{piece}\r\n", piece.len()));
        }
        let accepted = "HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n".to_string();
        let (addr, server) = fake(vec![Some(json_resp), Some(sse_resp), Some(accepted)]).await;
        let mut c = conn(addr);
        let (reply, sid) = c.post(&ping(1), Some(1), soon()).await.expect("json");
        assert!(
            matches!(reply, Reply::Message(ref m) if m["result"]["a"] == 1),
            "{reply:?}"
        );
        assert_eq!(sid.as_deref(), Some("s1"));
        c.set_session(sid);
        let (reply, _) = c.post(&ping(2), Some(2), soon()).await.expect("sse");
        assert!(
            matches!(reply, Reply::Message(ref m) if m["id"] == 2),
            "{reply:?}"
        );
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let (reply, _) = c.post(&note, None, soon()).await.expect("accepted");
        assert!(matches!(reply, Reply::Accepted));
        let seen = tokio::time::timeout(WAIT, server)
            .await
            .expect("server done")
            .expect("server");
        // Header names as hyper writes them: lower case.
        let seen: Vec<String> = seen.iter().map(|r| r.to_ascii_lowercase()).collect();
        assert_eq!(seen.len(), 3, "all three were served: {seen:#?}");
        assert!(seen[0].starts_with("post /mcp http/1.1\r\n"), "{}", seen[0]);
        assert!(!seen[0].contains("mcp-session-id"), "{}", seen[0]);
        assert!(
            seen[1].contains("\r\nmcp-session-id: s1\r\n"),
            "{}",
            seen[1]
        );
        assert!(
            seen[1].contains("\r\nmcp-protocol-version: 2025-11-25\r\n"),
            "{}",
            seen[1]
        );
        assert!(
            seen[1].contains("\r\naccept: application/json, text/event-stream\r\n"),
            "{}",
            seen[1]
        );
        assert!(
            seen[1].contains("\r\ncontent-type: application/json\r\n"),
            "{}",
            seen[1]
        );
        assert!(seen[2].ends_with("\"method\":\"notifications/initialized\"}"));
    }

    #[tokio::test]
    async fn statuses_and_broken_exchanges_are_classified() {
        let not_found = "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        let bad_gateway = "HTTP/1.1 502 Bad Gateway\r\ncontent-length: 3\r\n\r\nbad";
        let (addr, server) = fake(vec![
            Some(not_found.to_string()),
            Some(bad_gateway.to_string()),
            None,
        ])
        .await;
        let mut c = conn(addr);
        let e = c.post(&ping(1), Some(1), soon()).await.expect_err("404");
        assert!(e.is_definite() && e.is_unknown_session(), "{e:?}");
        assert!(c.usable(), "an error status leaves the client usable");
        let e = c.post(&ping(2), Some(2), soon()).await.expect_err("502");
        assert!(
            matches!(e, CallError::Http { status: 502, ref body } if body == "bad"),
            "{e:?}"
        );
        assert!(!e.is_definite(), "{e:?}");
        // The server closes after reading the request: the request's fate is unknown.
        let e = c
            .post(&ping(3), Some(3), soon())
            .await
            .expect_err("dropped");
        assert!(matches!(e, CallError::Dropped(_)), "{e:?}");
        assert!(!e.is_definite());
        tokio::time::timeout(WAIT, server)
            .await
            .expect("server done")
            .expect("server");
        // Nobody listens any more: the connection fails before anything is sent.
        let e = conn(addr)
            .post(&ping(4), Some(4), soon())
            .await
            .expect_err("refused");
        assert!(
            matches!(e, CallError::NotSent(ref m) if m.contains(&addr.to_string())),
            "{e:?}"
        );
        assert!(e.is_definite());
    }

    #[tokio::test]
    async fn an_event_stream_that_ends_without_the_response_is_indeterminate() {
        let cut = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: 10\r\n\r\ndata: {}\n\n";
        let (addr, server) = fake(vec![Some(cut.to_string())]).await;
        let e = conn(addr)
            .post(&ping(1), Some(1), soon())
            .await
            .expect_err("no response");
        assert!(matches!(e, CallError::Dropped(_)), "{e:?}");
        tokio::time::timeout(WAIT, server)
            .await
            .expect("server done")
            .expect("server");
    }

    #[tokio::test]
    async fn unexpected_bodies_garbage_and_silence_are_indeterminate() {
        let other = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nhi";
        let not_ours = r#"{"jsonrpc":"2.0","id":9,"result":{}}"#;
        let not_ours = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{not_ours}",
            not_ours.len()
        );
        let garbage = "SSH-2.0-OpenSSH_9.6\r\n\r\n".to_string();
        let (addr, server) = fake(vec![Some(other.into()), Some(not_ours), Some(garbage)]).await;
        let mut c = conn(addr);
        let e = c.post(&ping(1), Some(1), soon()).await.expect_err("text");
        assert!(
            matches!(e, CallError::Malformed(ref m) if m.contains("text/plain")),
            "{e:?}"
        );
        let e = c.post(&ping(2), Some(2), soon()).await.expect_err("id 9");
        assert!(
            matches!(e, CallError::Malformed(ref m) if m.contains("request 2")),
            "{e:?}"
        );
        let e = c
            .post(&ping(3), Some(3), soon())
            .await
            .expect_err("garbage");
        assert!(matches!(e, CallError::Dropped(_)), "{e:?}");
        assert!(!e.is_definite());
        tokio::time::timeout(WAIT, server)
            .await
            .expect("server done")
            .expect("server");

        // Reads the request, never answers: the deadline ends it.
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let silent = l.local_addr().expect("addr");
        let _held = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        });
        let e = conn(silent)
            .post(
                &ping(1),
                Some(1),
                Instant::now() + Duration::from_millis(200),
            )
            .await
            .expect_err("silence");
        assert!(
            matches!(e, CallError::Timeout(d) if d >= Duration::from_millis(200)),
            "{e:?}"
        );
        assert!(!e.is_definite());
    }

    #[test]
    fn sse_events_split_across_pieces() {
        let mut p = SseParser::default();
        assert!(
            p.push(b"id: s:0\nretry: 100\ndata:\n\n")
                .first()
                .is_some_and(String::is_empty)
        );
        assert!(
            p.push(b": keep-alive\r\nevent: message\r\ndata: {\"a\"")
                .is_empty()
        );
        assert_eq!(p.push(b":1}\r\n\r\ndata: x\ndata: y\n"), vec!["{\"a\":1}"]);
        assert_eq!(p.finish(), vec!["x\ny"]);
    }
}
