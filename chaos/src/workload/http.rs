//! A minimal MCP Streamable HTTP client (revision 2025-11-25, sessions): `POST /mcp` over a
//! keep-alive HTTP/1.1 connection, one request at a time.
//!
//! A response is either one `application/json` body or a `text/event-stream` whose `data:`
//! events carry the request's notifications and finally its response; bodies come with
//! `Content-Length` or chunked. The session is the `Mcp-Session-Id` header, so any connection to
//! a node that knows the session serves it (an unknown id gets 404).
//!
//! Hand-rolled on purpose: the harness must see exactly where an exchange broke (before the
//! request was written, or after) to tell a definite failure from an indeterminate one, which a
//! general HTTP client with retries and pools would blur.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use super::client::{CallError, PROTOCOL_VERSION};
use super::lines::excerpt;

/// The MCP endpoint's path.
pub const MCP_PATH: &str = "/mcp";
/// Largest response head accepted.
const MAX_HEAD: u64 = 64 * 1024;
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

/// One keep-alive HTTP/1.1 connection to a node's MCP endpoint, with the session it speaks for.
pub struct HttpConn {
    addr: SocketAddr,
    stream: Option<BufReader<TcpStream>>,
    session: Option<String>,
}

impl HttpConn {
    /// Connects to `addr` (bounded by `deadline`).
    pub async fn connect(addr: SocketAddr, deadline: Instant) -> io::Result<Self> {
        let stream = dial(addr, deadline).await?;
        Ok(Self {
            addr,
            stream: Some(stream),
            session: None,
        })
    }

    /// Sets the session id sent as `Mcp-Session-Id`.
    pub fn set_session(&mut self, session: Option<String>) {
        self.session = session;
    }

    /// Whether the connection is open and idle: the node has neither closed it nor sent
    /// anything unasked (either would make the next exchange unreliable).
    pub fn usable(&mut self) -> bool {
        let Some(s) = &self.stream else {
            return false;
        };
        let mut probe = [0u8; 1];
        let ok = s.buffer().is_empty()
            && matches!(s.get_ref().try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
        if !ok {
            self.stream = None;
        }
        ok
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
        if !self.usable() {
            // A keep-alive connection the node closed while idle: a fresh one, before anything
            // is sent (so a failure here is still definite).
            let s = dial(self.addr, deadline)
                .await
                .map_err(|e| CallError::NotSent(format!("reconnect to {}: {e}", self.addr)))?;
            self.stream = Some(s);
        }
        let Some(mut stream) = self.stream.take() else {
            return Err(CallError::NotSent("no connection".into()));
        };
        let started = Instant::now();
        let mut keep = false;
        let request = render(self.addr, self.session.as_deref(), msg);
        let result = exchange(&mut stream, &request, id, deadline, &mut keep).await;
        if keep {
            self.stream = Some(stream);
        }
        result.map_err(|e| match e {
            CallError::Timeout(_) => CallError::Timeout(started.elapsed()),
            e => e,
        })
    }
}

/// The bytes of `POST /mcp` carrying `msg`.
fn render(addr: SocketAddr, session: Option<&str>, msg: &Value) -> Vec<u8> {
    let body = msg.to_string();
    let mut req = format!(
        "POST {MCP_PATH} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json, text/event-stream\r\nContent-Type: application/json\r\nMCP-Protocol-Version: {PROTOCOL_VERSION}\r\n"
    );
    if let Some(s) = session {
        req.push_str("Mcp-Session-Id: ");
        req.push_str(s);
        req.push_str("\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    req.push_str(&body);
    req.into_bytes()
}

/// One request/response exchange on `stream`; `keep` is set when the connection ends the
/// exchange clean (the response read to its end, no `Connection: close`) and can carry the next.
async fn exchange(
    stream: &mut BufReader<TcpStream>,
    request: &[u8],
    id: Option<u64>,
    deadline: Instant,
    keep: &mut bool,
) -> Result<(Reply, Option<String>), CallError> {
    let write = async {
        let w = stream.get_mut();
        w.write_all(request).await?;
        w.flush().await
    };
    match timeout_at(deadline, write).await {
        Ok(Ok(())) => {}
        // Some of the request may have reached the node: its fate is unknown.
        Ok(Err(e)) => return Err(CallError::Dropped(format!("while sending: {e}"))),
        Err(_) => return Err(CallError::Timeout(Duration::ZERO)),
    }

    let head = match timeout_at(deadline, read_head(stream)).await {
        Err(_) => return Err(CallError::Timeout(Duration::ZERO)),
        Ok(Err(HeadError::Io(e))) => return Err(CallError::Dropped(e.to_string())),
        Ok(Err(HeadError::Invalid(e))) => return Err(CallError::Malformed(e)),
        Ok(Ok(h)) => h,
    };
    let mut body = Body::new(head.framing);
    let reusable = !head.close && head.framing != Framing::UntilClose;

    if !(200..300).contains(&head.status) {
        // Keep a little of the body for the message; a body that cannot be read to its end
        // only costs the connection, the status already decided the outcome.
        let text = match timeout_at(deadline, body.read_all(stream, ERROR_BODY)).await {
            Ok(Ok((bytes, complete))) => {
                *keep = complete && reusable;
                String::from_utf8_lossy(&bytes).into_owned()
            }
            _ => String::new(),
        };
        return Err(CallError::Http {
            status: head.status,
            body: excerpt(text.trim()),
        });
    }

    let reply = match (id, head.kind) {
        (None, _) => {
            read_to_end(&mut body, stream, deadline).await?;
            Reply::Accepted
        }
        (Some(id), BodyKind::Json) => {
            let bytes = read_to_end(&mut body, stream, deadline).await?;
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
            let msg = read_sse_response(&mut body, stream, id, deadline).await?;
            // Read the stream to its end (the node closes it after the response) so the
            // connection can carry the next request; if that fails only the connection is
            // lost, the response is in hand.
            let drained = matches!(
                timeout_at(deadline, body.read_all(stream, MAX_BODY)).await,
                Ok(Ok((_, true)))
            );
            *keep = drained && reusable;
            return Ok((Reply::Message(msg), head.session));
        }
        (Some(_), BodyKind::Other(ct)) => {
            return Err(CallError::Malformed(format!(
                "unexpected Content-Type {ct:?} on a 2xx response"
            )));
        }
    };
    *keep = reusable;
    Ok((reply, head.session))
}

async fn dial(addr: SocketAddr, deadline: Instant) -> io::Result<BufReader<TcpStream>> {
    let s = timeout_at(deadline, TcpStream::connect(addr))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    // Without it the request's small writes wait on delayed ACKs.
    s.set_nodelay(true)?;
    Ok(BufReader::new(s))
}

fn is_response_to(msg: &Value, id: u64) -> bool {
    msg.get("id").and_then(Value::as_u64) == Some(id)
        && (msg.get("result").is_some() || msg.get("error").is_some())
}

async fn read_to_end(
    body: &mut Body,
    stream: &mut BufReader<TcpStream>,
    deadline: Instant,
) -> Result<Vec<u8>, CallError> {
    match timeout_at(deadline, body.read_all(stream, MAX_BODY)).await {
        Err(_) => Err(CallError::Timeout(Duration::ZERO)),
        Ok(Err(e)) => Err(CallError::Dropped(format!("reading the body: {e}"))),
        Ok(Ok((_, false))) => Err(CallError::Malformed(format!(
            "a body larger than {MAX_BODY} bytes"
        ))),
        Ok(Ok((bytes, true))) => Ok(bytes),
    }
}

/// Reads SSE events until one carries the response to `id`.
async fn read_sse_response(
    body: &mut Body,
    stream: &mut BufReader<TcpStream>,
    id: u64,
    deadline: Instant,
) -> Result<Value, CallError> {
    let mut sse = SseParser::default();
    loop {
        let chunk = match timeout_at(deadline, body.next(stream)).await {
            Err(_) => return Err(CallError::Timeout(Duration::ZERO)),
            Ok(Err(e)) => return Err(CallError::Dropped(format!("reading the stream: {e}"))),
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
// Response head

/// What a response body holds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum BodyKind {
    Json,
    Sse,
    Other(String),
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    /// Until the node closes the connection (HTTP/1.0 style).
    UntilClose,
}

#[derive(Debug)]
struct Head {
    status: u16,
    kind: BodyKind,
    session: Option<String>,
    close: bool,
    framing: Framing,
}

#[derive(Debug)]
enum HeadError {
    Io(io::Error),
    Invalid(String),
}

impl From<io::Error> for HeadError {
    fn from(e: io::Error) -> Self {
        HeadError::Io(e)
    }
}

/// Reads one line (without its line ending) of at most `limit` bytes; `None` at a clean end of
/// stream before any byte.
async fn read_line(r: &mut BufReader<TcpStream>, limit: u64) -> io::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = (&mut *r).take(limit).read_until(b'\n', &mut buf).await?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') {
        return Err(if buf.len() as u64 >= limit {
            io::Error::new(io::ErrorKind::InvalidData, "line too long")
        } else {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed in the middle of a line",
            )
        });
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    String::from_utf8(buf).map(Some).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "a header line that is not UTF-8",
        )
    })
}

async fn read_head(r: &mut BufReader<TcpStream>) -> Result<Head, HeadError> {
    let Some(status_line) = read_line(r, MAX_HEAD).await? else {
        return Err(HeadError::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the connection closed before the response",
        )));
    };
    let mut lines = Vec::new();
    let mut size = status_line.len() as u64;
    loop {
        let Some(line) = read_line(r, MAX_HEAD).await? else {
            return Err(HeadError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the connection closed in the response head",
            )));
        };
        if line.is_empty() {
            break;
        }
        size += line.len() as u64;
        if size > MAX_HEAD {
            return Err(HeadError::Invalid(format!(
                "a response head larger than {MAX_HEAD} bytes"
            )));
        }
        lines.push(line);
    }
    parse_head(&status_line, &lines).map_err(HeadError::Invalid)
}

fn parse_head(status_line: &str, lines: &[String]) -> Result<Head, String> {
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(format!(
            "not an HTTP/1.x response: {}",
            excerpt(status_line)
        ));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .filter(|s| (100..1000).contains(s))
        .ok_or_else(|| format!("malformed status line: {}", excerpt(status_line)))?;
    let mut close = version == "HTTP/1.0";
    let (mut length, mut chunked, mut kind, mut session) = (None, false, None, None);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<u64>()
                    .map_err(|_| format!("malformed Content-Length {value:?}"))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("chunked"));
        } else if name.eq_ignore_ascii_case("content-type") {
            let mime = value.split(';').next().unwrap_or_default().trim();
            kind = Some(if mime.eq_ignore_ascii_case("application/json") {
                BodyKind::Json
            } else if mime.eq_ignore_ascii_case("text/event-stream") {
                BodyKind::Sse
            } else {
                BodyKind::Other(mime.to_string())
            });
        } else if name.eq_ignore_ascii_case("mcp-session-id") {
            session = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("connection") {
            for t in value.split(',').map(str::trim) {
                if t.eq_ignore_ascii_case("close") {
                    close = true;
                } else if t.eq_ignore_ascii_case("keep-alive") {
                    close = false;
                }
            }
        }
    }
    let framing = if status < 200 || status == 204 || status == 304 {
        Framing::Empty
    } else if chunked {
        Framing::Chunked
    } else {
        match length {
            Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
            None => Framing::UntilClose,
        }
    };
    Ok(Head {
        status,
        kind: kind.unwrap_or(BodyKind::Other(String::new())),
        session,
        close,
        framing,
    })
}

// ---------------------------------------------------------------------------------------------
// Response body

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyState {
    /// Bytes left in the body (`Length`) or in the current chunk (`Chunked`).
    Remaining(u64),
    /// Chunked: the next chunk-size line.
    ChunkSize,
    UntilClose,
    Done,
}

/// Reads a response body piece by piece as it arrives.
struct Body {
    chunked: bool,
    state: BodyState,
}

impl Body {
    fn new(framing: Framing) -> Self {
        let (chunked, state) = match framing {
            Framing::Empty => (false, BodyState::Done),
            Framing::Length(n) => (false, BodyState::Remaining(n)),
            Framing::Chunked => (true, BodyState::ChunkSize),
            Framing::UntilClose => (false, BodyState::UntilClose),
        };
        Self { chunked, state }
    }

    /// The next piece of the body, `None` at its end.
    async fn next(&mut self, r: &mut BufReader<TcpStream>) -> io::Result<Option<Vec<u8>>> {
        loop {
            match self.state {
                BodyState::Done => return Ok(None),
                BodyState::Remaining(0) if self.chunked => {
                    // The CRLF after a chunk's data.
                    match read_line(r, 2 + 1).await? {
                        Some(l) if l.is_empty() => self.state = BodyState::ChunkSize,
                        _ => return Err(invalid("missing CRLF after a chunk")),
                    }
                }
                BodyState::Remaining(0) => self.state = BodyState::Done,
                BodyState::Remaining(n) => {
                    let buf = r.fill_buf().await?;
                    if buf.is_empty() {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the connection closed in the middle of the body",
                        ));
                    }
                    let take = buf.len().min(usize::try_from(n).unwrap_or(usize::MAX));
                    let piece = buf[..take].to_vec();
                    r.consume(take);
                    self.state = BodyState::Remaining(n - take as u64);
                    return Ok(Some(piece));
                }
                BodyState::ChunkSize => {
                    let Some(line) = read_line(r, 1024).await? else {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the connection closed before a chunk",
                        ));
                    };
                    let hex = line.split(';').next().unwrap_or_default().trim();
                    let size = u64::from_str_radix(hex, 16)
                        .map_err(|_| invalid(format!("malformed chunk size {hex:?}")))?;
                    if size == 0 {
                        // Trailers, up to the blank line that ends the body.
                        loop {
                            match read_line(r, MAX_HEAD).await? {
                                Some(l) if l.is_empty() => break,
                                Some(_) => {}
                                None => {
                                    return Err(io::Error::new(
                                        io::ErrorKind::UnexpectedEof,
                                        "the connection closed in the trailers",
                                    ));
                                }
                            }
                        }
                        self.state = BodyState::Done;
                    } else {
                        self.state = BodyState::Remaining(size);
                    }
                }
                BodyState::UntilClose => {
                    let buf = r.fill_buf().await?;
                    if buf.is_empty() {
                        self.state = BodyState::Done;
                        continue;
                    }
                    let piece = buf.to_vec();
                    r.consume(piece.len());
                    return Ok(Some(piece));
                }
            }
        }
    }

    /// Reads the rest of the body, keeping at most `keep` bytes; the flag says whether the
    /// body ended within `keep` (else reading stopped there).
    async fn read_all(
        &mut self,
        r: &mut BufReader<TcpStream>,
        keep: usize,
    ) -> io::Result<(Vec<u8>, bool)> {
        let mut out = Vec::new();
        while let Some(piece) = self.next(r).await? {
            out.extend_from_slice(&piece);
            if out.len() > keep {
                out.truncate(keep);
                return Ok((out, false));
            }
        }
        Ok((out, true))
    }
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
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
    use super::*;
    use serde_json::json;
    use tokio::net::TcpListener;

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    /// A one-connection fake server: for each request it reads (head + Content-Length body),
    /// it writes the next canned response; `None` closes the connection instead. Returns the
    /// address and a task yielding the requests it read.
    async fn fake(
        responses: Vec<Option<String>>,
    ) -> (SocketAddr, tokio::task::JoinHandle<Vec<String>>) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let (s, _) = l.accept().await.expect("accept");
            let mut r = BufReader::new(s);
            let mut seen = Vec::new();
            for resp in responses {
                let mut head = String::new();
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).await.expect("read") == 0 {
                        return seen;
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
                seen.push(format!("{head}{}", String::from_utf8_lossy(&body)));
                match resp {
                    Some(bytes) => r
                        .get_mut()
                        .write_all(bytes.as_bytes())
                        .await
                        .expect("write"),
                    None => return seen,
                }
            }
            seen
        });
        (addr, task)
    }

    fn ping(id: u64) -> Value {
        json!({"jsonrpc": "2.0", "id": id, "method": "ping"})
    }

    #[tokio::test]
    async fn json_and_chunked_sse_responses_on_one_keep_alive_connection() {
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
        let mut c = HttpConn::connect(addr, soon()).await.expect("connect");
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
        let seen = server.await.expect("server");
        assert_eq!(seen.len(), 3, "one connection carried all three: {seen:#?}");
        assert!(!seen[0].contains("Mcp-Session-Id"), "{}", seen[0]);
        assert!(seen[1].contains("Mcp-Session-Id: s1\r\n"), "{}", seen[1]);
        assert!(
            seen[1].contains("MCP-Protocol-Version: 2025-11-25\r\n"),
            "{}",
            seen[1]
        );
        assert!(
            seen[1].contains("Accept: application/json, text/event-stream\r\n"),
            "{}",
            seen[1]
        );
    }

    #[tokio::test]
    async fn statuses_and_broken_exchanges_are_classified() {
        let not_found = "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        let bad_gateway = "HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n";
        let (addr, server) = fake(vec![
            Some(not_found.to_string()),
            Some(bad_gateway.to_string()),
            None,
        ])
        .await;
        let mut c = HttpConn::connect(addr, soon()).await.expect("connect");
        let e = c.post(&ping(1), Some(1), soon()).await.expect_err("404");
        assert!(e.is_definite() && e.is_unknown_session(), "{e:?}");
        assert!(c.usable(), "a complete error response keeps the connection");
        let e = c.post(&ping(2), Some(2), soon()).await.expect_err("502");
        assert!(!e.is_definite(), "{e:?}");
        // The server closes after reading the request: the request's fate is unknown.
        let e = c
            .post(&ping(3), Some(3), soon())
            .await
            .expect_err("dropped");
        assert!(matches!(e, CallError::Dropped(_)), "{e:?}");
        assert!(!e.is_definite());
        server.await.expect("server");
        // Nobody listens any more: the reconnect fails before anything is sent.
        let e = c
            .post(&ping(4), Some(4), soon())
            .await
            .expect_err("refused");
        assert!(matches!(e, CallError::NotSent(_)), "{e:?}");
        assert!(e.is_definite());
    }

    #[tokio::test]
    async fn an_event_stream_that_ends_without_the_response_is_indeterminate() {
        let cut = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: 10\r\n\r\ndata: {}\n\n";
        let (addr, server) = fake(vec![Some(cut.to_string())]).await;
        let mut c = HttpConn::connect(addr, soon()).await.expect("connect");
        let e = c
            .post(&ping(1), Some(1), soon())
            .await
            .expect_err("no response");
        assert!(matches!(e, CallError::Dropped(_)), "{e:?}");
        server.await.expect("server");
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

    #[test]
    fn heads_are_parsed_for_status_framing_type_and_session() {
        let h = parse_head(
            "HTTP/1.1 200 OK",
            &[
                "content-type: text/event-stream".into(),
                "Transfer-Encoding: chunked".into(),
                "mcp-session-id: abc".into(),
            ],
        )
        .expect("head");
        assert_eq!(
            (h.status, h.kind, h.session.as_deref(), h.framing, h.close),
            (200, BodyKind::Sse, Some("abc"), Framing::Chunked, false)
        );
        let h = parse_head(
            "HTTP/1.1 404 Not Found",
            &[
                "Content-Type: application/json; charset=utf-8".into(),
                "Content-Length: 12".into(),
                "Connection: close".into(),
            ],
        )
        .expect("head");
        assert_eq!(
            (h.status, h.kind, h.framing, h.close),
            (404, BodyKind::Json, Framing::Length(12), true)
        );
        let h = parse_head("HTTP/1.1 202 Accepted", &["content-length: 0".into()]).expect("head");
        assert_eq!(h.framing, Framing::Empty);
        assert!(parse_head("SSH-2.0-OpenSSH", &[]).is_err());
        assert!(parse_head("HTTP/1.1 abc", &[]).is_err());
        assert!(parse_head("HTTP/1.1 200 OK", &["content-length: x".into()]).is_err());
    }
}
