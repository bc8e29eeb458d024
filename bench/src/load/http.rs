//! MCP Streamable HTTP (revision 2025-11-25, with sessions) as a load transport.
//!
//! A session is `initialize` (its response carries the `Mcp-Session-Id`), then
//! `notifications/initialized`, then one `POST` per `tools/call`, each on a keep-alive HTTP/1.1
//! connection. HTTP/1.1 cannot have two requests outstanding on one connection (no pipelining
//! for this), so a session with `--concurrency C` holds `C` connections sharing its session id.
//! A response is either one `application/json` body or a `text/event-stream` whose `data:`
//! events carry the request's messages and finally its response; both are handed to the
//! session driver message by message, when they arrive.
//!
//! The client is hand-rolled over `TcpStream` (with `TCP_NODELAY`): a request is one write of
//! pre-rendered bytes, and [`ResponseParser`] reads responses (`Content-Length` or chunked) in
//! place without building header maps. A response with a non-2xx status, or a stream that ends
//! without the response, is reported to the driver as a JSON-RPC error for its request.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::scan::{Scanned, scan};
use super::transport::{MAX_MESSAGE, Transport};
use super::workload::{self, INITIALIZE_ID, PROTOCOL_VERSION, Workload};

/// Largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Initial read buffer of a connection (it grows up to the message limit).
const READ_BUFFER: usize = 16 * 1024;
/// JSON-RPC code of the errors this transport makes up for failed HTTP exchanges.
const HTTP_FAILURE: i64 = -32000;

/// Where a Streamable HTTP target is.
#[derive(Debug, Clone)]
pub struct HttpAddr {
    /// Resolved socket address.
    pub addr: SocketAddr,
    /// `Host` header value (`HOST:PORT` as given).
    pub host: String,
    /// Path of the MCP endpoint, e.g. `/mcp`.
    pub path: String,
    /// Connections per session (the session's window size).
    pub connections: usize,
}

// ---------------------------------------------------------------------------------------------
// Response parsing (no I/O)

/// How a response body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body (`Content-Length: 0`, 204, 304).
    Empty,
    /// `Content-Length: n`.
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// What a response body holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyKind {
    /// `application/json`: one JSON-RPC message.
    #[default]
    Json,
    /// `text/event-stream`: SSE events, each `data` one JSON-RPC message.
    Sse,
    /// Anything else (its bytes are read and dropped).
    Other,
}

/// The parts of a response head the load generator uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head<'a> {
    /// Status code.
    pub status: u16,
    /// Body type.
    pub kind: BodyKind,
    /// `Mcp-Session-Id`, if present.
    pub session_id: Option<&'a [u8]>,
    /// `Connection: close` (or HTTP/1.0 without keep-alive).
    pub close: bool,
    framing: Framing,
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn trim(b: &[u8]) -> &[u8] {
    b.trim_ascii()
}

fn contains_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&c| c == b',')
        .any(|t| trim(t).eq_ignore_ascii_case(token))
}

/// Parses a response head (without its final blank line).
pub fn parse_head(head: &[u8]) -> io::Result<Head<'_>> {
    let mut lines = head.split(|&c| c == b'\n').map(|l| match l {
        [rest @ .., b'\r'] => rest,
        l => l,
    });
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, |&c| c == b' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with(b"HTTP/1.") {
        return Err(invalid(format!(
            "not an HTTP/1.x response: {:?}",
            String::from_utf8_lossy(&status_line[..status_line.len().min(80)])
        )));
    }
    let status = parts
        .next()
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (100..1000).contains(s))
        .ok_or_else(|| invalid("malformed HTTP status line"))?;
    let mut close = version == b"HTTP/1.0";
    let (mut length, mut chunked, mut kind, mut session_id) = (None, false, BodyKind::Other, None);
    for line in lines {
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let (name, value) = (trim(&line[..colon]), trim(&line[colon + 1..]));
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                .ok_or_else(|| invalid("malformed Content-Length"))?;
            length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            chunked = contains_token(value, b"chunked");
        } else if name.eq_ignore_ascii_case(b"content-type") {
            let mime = trim(value.split(|&c| c == b';').next().unwrap_or_default());
            kind = if mime.eq_ignore_ascii_case(b"text/event-stream") {
                BodyKind::Sse
            } else if mime.eq_ignore_ascii_case(b"application/json") {
                BodyKind::Json
            } else {
                BodyKind::Other
            };
        } else if name.eq_ignore_ascii_case(b"mcp-session-id") {
            session_id = Some(value);
        } else if name.eq_ignore_ascii_case(b"connection") {
            if contains_token(value, b"close") {
                close = true;
            } else if contains_token(value, b"keep-alive") {
                close = false;
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
            None => {
                return Err(invalid(
                    "response without Content-Length or chunked encoding (read-until-close bodies are not supported)",
                ));
            }
        }
    };
    Ok(Head {
        status,
        kind,
        session_id,
        close,
        framing,
    })
}

/// What the parser found in the bytes it was given.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// A response head.
    Head(Head<'a>),
    /// A JSON-RPC message: the JSON body, or one SSE event's data.
    Message(&'a [u8]),
    /// The response is complete.
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Length(usize),
    ChunkSize,
    ChunkData(usize),
    ChunkEnd,
    Trailers,
}

/// Reads HTTP/1.1 responses incrementally: give it bytes, it reports heads, messages and ends,
/// and says how many bytes it consumed (the rest is an incomplete line or head: give it again
/// with more bytes after it).
#[derive(Debug)]
pub struct ResponseParser {
    state: State,
    kind: BodyKind,
    /// Status of the response being read.
    status: u16,
    /// A JSON body being collected, or the SSE line being collected.
    buf: Vec<u8>,
    /// The data of the SSE event being collected.
    data: Vec<u8>,
}

impl Default for ResponseParser {
    fn default() -> Self {
        Self {
            state: State::Head,
            kind: BodyKind::Json,
            status: 0,
            buf: Vec::new(),
            data: Vec::new(),
        }
    }
}

impl ResponseParser {
    /// True between responses.
    pub fn idle(&self) -> bool {
        self.state == State::Head
    }

    /// Consumes what it can of `input`; stops after a response's end.
    pub fn feed(&mut self, input: &[u8], emit: &mut impl FnMut(Parsed<'_>)) -> io::Result<usize> {
        let mut pos = 0;
        loop {
            let rest = &input[pos..];
            match self.state {
                State::Head => {
                    let Some(k) = memchr::memmem::find(rest, b"\r\n\r\n") else {
                        if rest.len() > MAX_HEAD {
                            return Err(invalid(format!(
                                "response head longer than {MAX_HEAD} bytes"
                            )));
                        }
                        return Ok(pos);
                    };
                    let head = parse_head(&rest[..k])?;
                    pos += k + 4;
                    if head.status < 200 {
                        // 1xx: informational, the real response follows.
                        continue;
                    }
                    self.status = head.status;
                    self.kind = head.kind;
                    self.buf.clear();
                    self.data.clear();
                    let framing = head.framing;
                    emit(Parsed::Head(head));
                    match framing {
                        Framing::Empty => {
                            self.finish(emit);
                            return Ok(pos);
                        }
                        Framing::Length(n) => self.state = State::Length(n),
                        Framing::Chunked => self.state = State::ChunkSize,
                    }
                }
                State::Length(remaining) => {
                    let take = remaining.min(rest.len());
                    if take == 0 {
                        return Ok(pos);
                    }
                    self.body(&rest[..take], emit)?;
                    pos += take;
                    if take == remaining {
                        self.finish(emit);
                        return Ok(pos);
                    }
                    self.state = State::Length(remaining - take);
                    return Ok(pos);
                }
                State::ChunkSize => {
                    let Some(k) = memchr::memchr(b'\n', rest) else {
                        if rest.len() > 1024 {
                            return Err(invalid("chunk size line too long"));
                        }
                        return Ok(pos);
                    };
                    let line = &rest[..k];
                    let hex = trim(
                        line.split(|&c| c == b';' || c == b'\r')
                            .next()
                            .unwrap_or(line),
                    );
                    let size = std::str::from_utf8(hex)
                        .ok()
                        .and_then(|h| usize::from_str_radix(h, 16).ok())
                        .ok_or_else(|| {
                            invalid(format!(
                                "malformed chunk size {:?}",
                                String::from_utf8_lossy(line)
                            ))
                        })?;
                    pos += k + 1;
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::ChunkData(size)
                    };
                }
                State::ChunkData(remaining) => {
                    let take = remaining.min(rest.len());
                    if take == 0 {
                        return Ok(pos);
                    }
                    self.body(&rest[..take], emit)?;
                    pos += take;
                    self.state = if take == remaining {
                        State::ChunkEnd
                    } else {
                        State::ChunkData(remaining - take)
                    };
                }
                State::ChunkEnd => match rest {
                    [b'\r', b'\n', ..] => {
                        pos += 2;
                        self.state = State::ChunkSize;
                    }
                    [b'\n', ..] => {
                        pos += 1;
                        self.state = State::ChunkSize;
                    }
                    [] | [b'\r'] => return Ok(pos),
                    _ => return Err(invalid("chunk not followed by CRLF")),
                },
                State::Trailers => {
                    let Some(k) = memchr::memchr(b'\n', rest) else {
                        if rest.len() > MAX_HEAD {
                            return Err(invalid("trailer line too long"));
                        }
                        return Ok(pos);
                    };
                    let blank = matches!(&rest[..k], [] | [b'\r']);
                    pos += k + 1;
                    if blank {
                        self.finish(emit);
                        return Ok(pos);
                    }
                }
            }
        }
    }

    fn body(&mut self, bytes: &[u8], emit: &mut impl FnMut(Parsed<'_>)) -> io::Result<()> {
        match self.kind {
            BodyKind::Other => Ok(()),
            BodyKind::Json => {
                if self.buf.len() + bytes.len() > MAX_MESSAGE {
                    return Err(invalid(format!(
                        "response body longer than {MAX_MESSAGE} bytes"
                    )));
                }
                self.buf.extend_from_slice(bytes);
                Ok(())
            }
            BodyKind::Sse => {
                let mut rest = bytes;
                while let Some(k) = memchr::memchr(b'\n', rest) {
                    if self.buf.is_empty() {
                        self.sse_line(&rest[..k], emit)?;
                    } else {
                        self.buf.extend_from_slice(&rest[..k]);
                        let line = std::mem::take(&mut self.buf);
                        let r = self.sse_line(&line, emit);
                        self.buf = line;
                        self.buf.clear();
                        r?;
                    }
                    rest = &rest[k + 1..];
                }
                if self.buf.len() + rest.len() > MAX_MESSAGE {
                    return Err(invalid(format!("SSE line longer than {MAX_MESSAGE} bytes")));
                }
                self.buf.extend_from_slice(rest);
                Ok(())
            }
        }
    }

    /// One SSE line (without its `\n`): `data` is collected, a blank line dispatches the event,
    /// other fields (`event`, `id`, `retry`) and comments are skipped.
    fn sse_line(&mut self, line: &[u8], emit: &mut impl FnMut(Parsed<'_>)) -> io::Result<()> {
        let line = match line {
            [rest @ .., b'\r'] => rest,
            l => l,
        };
        if line.is_empty() {
            if !self.data.is_empty() {
                emit(Parsed::Message(&self.data));
                self.data.clear();
            }
            return Ok(());
        }
        if let Some(value) = line.strip_prefix(b"data") {
            let value = match value {
                [] => value,
                [b':', b' ', v @ ..] | [b':', v @ ..] => v,
                _ => return Ok(()), // a field named e.g. "datax"
            };
            if self.data.len() + value.len() + 1 > MAX_MESSAGE {
                return Err(invalid(format!(
                    "SSE event longer than {MAX_MESSAGE} bytes"
                )));
            }
            if !self.data.is_empty() {
                self.data.push(b'\n');
            }
            self.data.extend_from_slice(value);
        }
        Ok(())
    }

    fn finish(&mut self, emit: &mut impl FnMut(Parsed<'_>)) {
        if self.kind == BodyKind::Json && (200..300).contains(&self.status) {
            let body = trim(&self.buf);
            if !body.is_empty() {
                emit(Parsed::Message(body));
            }
        }
        // An SSE event cut off by the end of the stream is dropped, as SSE says.
        self.buf.clear();
        self.data.clear();
        self.state = State::Head;
        emit(Parsed::End);
    }
}

// ---------------------------------------------------------------------------------------------
// Connections

/// What a connection's current exchange has seen.
#[derive(Debug, Default)]
struct Exchange {
    /// The `tools/call` id in flight on it (`None`: idle).
    request: Option<u64>,
    /// Its response was delivered.
    answered: bool,
    status: u16,
    close: bool,
}

struct Conn {
    stream: TcpStream,
    rbuf: Vec<u8>,
    start: usize,
    end: usize,
    wbuf: Vec<u8>,
    parser: ResponseParser,
    ex: Exchange,
}

impl Conn {
    async fn connect(addr: SocketAddr, timeout: Duration) -> anyhow::Result<Self> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| anyhow!("connecting to {addr} timed out after {timeout:?}"))?
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            rbuf: vec![0; READ_BUFFER],
            start: 0,
            end: 0,
            wbuf: Vec::with_capacity(1024),
            parser: ResponseParser::default(),
            ex: Exchange::default(),
        })
    }

    /// Makes room for a read: moves unparsed bytes to the front, or grows the buffer.
    fn make_room(&mut self) -> io::Result<()> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.end < self.rbuf.len() {
            return Ok(());
        }
        if self.start > 0 {
            self.rbuf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        } else if self.rbuf.len() < MAX_MESSAGE + MAX_HEAD {
            let n = (self.rbuf.len() * 2).min(MAX_MESSAGE + MAX_HEAD);
            self.rbuf.resize(n, 0);
        } else {
            return Err(invalid("server response too large"));
        }
        Ok(())
    }

    /// Reads once (cancel-safe: the bytes land in `rbuf` within the poll that reads them).
    fn poll_fill(&mut self, cx: &mut std::task::Context<'_>) -> Poll<io::Result<()>> {
        if let Err(e) = self.make_room() {
            return Poll::Ready(Err(e));
        }
        let mut rb = ReadBuf::new(&mut self.rbuf[self.end..]);
        match Pin::new(&mut self.stream).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                if n == 0 {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "server closed the connection",
                    )));
                }
                self.end += n;
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Parses what was read; `on_message` gets each message. Returns true when the exchange
    /// ended.
    fn parse(&mut self, on_message: &mut impl FnMut(&[u8], &mut Exchange)) -> io::Result<bool> {
        let mut ended = false;
        let ex = &mut self.ex;
        let n = self
            .parser
            .feed(&self.rbuf[self.start..self.end], &mut |p| match p {
                Parsed::Head(h) => {
                    ex.status = h.status;
                    ex.close = h.close;
                }
                Parsed::Message(m) => on_message(m, ex),
                Parsed::End => ended = true,
            })?;
        self.start += n;
        Ok(ended)
    }

    /// Sends one request and reads its whole response (the handshake's exchanges).
    async fn roundtrip(
        &mut self,
        request: &[u8],
        timeout: Duration,
    ) -> anyhow::Result<(u16, Option<String>, Vec<Vec<u8>>)> {
        self.stream.write_all(request).await?;
        let mut messages = Vec::new();
        let mut session = None;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let ex = &mut self.ex;
            let mut ended = false;
            let n = self
                .parser
                .feed(&self.rbuf[self.start..self.end], &mut |p| match p {
                    Parsed::Head(h) => {
                        ex.status = h.status;
                        ex.close = h.close;
                        session = h
                            .session_id
                            .map(|s| String::from_utf8_lossy(s).into_owned());
                    }
                    Parsed::Message(m) => messages.push(m.to_vec()),
                    Parsed::End => ended = true,
                })?;
            self.start += n;
            if ended {
                if self.ex.close {
                    bail!("the server closes the connection after each response (no keep-alive)");
                }
                return Ok((self.ex.status, session, messages));
            }
            tokio::time::timeout_at(deadline, poll_fn(|cx| self.poll_fill(cx)))
                .await
                .map_err(|_| anyhow!("no response within {timeout:?}"))??;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The transport

/// One MCP session over Streamable HTTP: `C` keep-alive connections sharing a session id.
pub struct HttpTransport {
    conns: Vec<Conn>,
    /// Connections without a request in flight.
    idle: Vec<usize>,
    /// Requests waiting for an idle connection.
    pending: VecDeque<u64>,
    /// Connections with a request to write.
    dirty: Vec<usize>,
    work: Arc<Workload>,
    /// The request head up to the `Content-Length` value.
    head: Vec<u8>,
    /// Scratch for a request body.
    body: Vec<u8>,
    /// Where `recv` starts polling (round robin).
    next_poll: usize,
}

/// What a request's head names besides the endpoint.
enum HeadFor<'a> {
    /// `initialize`: nothing.
    Handshake,
    /// A request in session `id` that negotiated `version`.
    Session(&'a str, &'a str),
    /// A revision 2026-07-28 `tools/call` of `tool` (its routing headers, no session).
    PerRequest(&'a str),
}

/// `POST` head lines shared by every request, ending before `Content-Length`.
fn request_head(a: &HttpAddr, head_for: HeadFor<'_>) -> Vec<u8> {
    let mut h = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n",
        a.path, a.host
    );
    match head_for {
        HeadFor::Handshake => {}
        HeadFor::Session(id, version) => h.push_str(&format!(
            "Mcp-Session-Id: {id}\r\nMCP-Protocol-Version: {version}\r\n"
        )),
        HeadFor::PerRequest(tool) => h.push_str(&format!(
            "MCP-Protocol-Version: {}\r\nMcp-Method: tools/call\r\nMcp-Name: {tool}\r\n",
            workload::PER_REQUEST_VERSION
        )),
    }
    h.push_str("Content-Length: ");
    h.into_bytes()
}

fn render(out: &mut Vec<u8>, head: &[u8], body: &[u8]) {
    out.extend_from_slice(head);
    out.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
}

/// The JSON-RPC error reported for a request whose HTTP exchange failed.
fn failure(id: u64, why: &str) -> Vec<u8> {
    serde_json::json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {"code": HTTP_FAILURE, "message": why},
    })
    .to_string()
    .into_bytes()
}

impl HttpTransport {
    async fn handshake(a: &HttpAddr, timeout: Duration) -> anyhow::Result<(Conn, Vec<u8>)> {
        let mut conn = Conn::connect(a.addr, timeout).await?;
        let mut req = Vec::new();
        render(
            &mut req,
            &request_head(a, HeadFor::Handshake),
            workload::initialize_body().as_bytes(),
        );
        let (status, session, messages) =
            conn.roundtrip(&req, timeout).await.context("initialize")?;
        if !(200..300).contains(&status) {
            let body = messages
                .first()
                .map(|m| String::from_utf8_lossy(m).into_owned())
                .unwrap_or_default();
            bail!("initialize: HTTP {status} {body}");
        }
        let response = messages
            .iter()
            .find(|m| {
                matches!(
                    scan(m),
                    Ok(Scanned::Response {
                        id: Some(INITIALIZE_ID),
                        ..
                    })
                )
            })
            .ok_or_else(|| anyhow!("initialize: no response in the HTTP {status} reply"))?;
        let version = workload::check_initialize_response(response).map_err(|e| anyhow!(e))?;
        let session = session.ok_or_else(|| {
            anyhow!(
                "initialize: no Mcp-Session-Id in the response (protocol {version}; sessions are for revisions before 2026-07-28, we asked for {PROTOCOL_VERSION})"
            )
        })?;
        let head = request_head(a, HeadFor::Session(&session, &version));
        req.clear();
        render(&mut req, &head, workload::initialized_body().as_bytes());
        let (status, _, _) = conn
            .roundtrip(&req, timeout)
            .await
            .context("notifications/initialized")?;
        if !(200..300).contains(&status) {
            bail!("notifications/initialized: HTTP {status}");
        }
        Ok((conn, head))
    }

    /// Whether a message is the response to the connection's request.
    fn answers(m: &[u8], ex: &Exchange) -> bool {
        matches!(scan(m), Ok(Scanned::Response { id: Some(id), .. }) if Some(id) == ex.request)
    }
}

impl Transport for HttpTransport {
    type Addr = HttpAddr;

    async fn open(a: &HttpAddr, work: Arc<Workload>, timeout: Duration) -> anyhow::Result<Self> {
        let n = a.connections.max(1);
        let mut conns = Vec::with_capacity(n);
        let head = if work.per_request() {
            // Revision 2026-07-28: no handshake, no session; the routing headers name the tool.
            request_head(a, HeadFor::PerRequest(work.tool()))
        } else {
            let (first, head) = Self::handshake(a, timeout).await?;
            conns.push(first);
            head
        };
        while conns.len() < n {
            conns.push(Conn::connect(a.addr, timeout).await?);
        }
        Ok(Self {
            conns,
            idle: (0..n).rev().collect(),
            pending: VecDeque::new(),
            dirty: Vec::with_capacity(n),
            work,
            head,
            body: Vec::with_capacity(256),
            next_poll: 0,
        })
    }

    fn queue(&mut self, id: u64) {
        self.pending.push_back(id);
    }

    fn ready_to_send(&self) -> bool {
        !self.pending.is_empty() && !self.idle.is_empty()
    }

    async fn flush(&mut self) -> io::Result<()> {
        while !self.pending.is_empty()
            && let Some(i) = self.idle.pop()
        {
            let id = self.pending.pop_front().unwrap_or_default();
            self.body.clear();
            self.work.write_body(&mut self.body, id);
            let c = &mut self.conns[i];
            render(&mut c.wbuf, &self.head, &self.body);
            c.ex = Exchange {
                request: Some(id),
                ..Exchange::default()
            };
            self.dirty.push(i);
        }
        for i in self.dirty.drain(..) {
            let c = &mut self.conns[i];
            c.stream.write_all(&c.wbuf).await?;
            c.wbuf.clear();
        }
        Ok(())
    }

    async fn recv<F: FnMut(&[u8], Instant) + Send>(
        &mut self,
        on_message: &mut F,
    ) -> io::Result<()> {
        loop {
            let n = self.conns.len();
            let first = self.next_poll;
            // The only await: a read lands in its buffer within the poll that makes it.
            let i = poll_fn(|cx| {
                for k in 0..n {
                    let i = (first + k) % n;
                    let c = &mut self.conns[i];
                    if c.ex.request.is_none() {
                        continue;
                    }
                    match c.poll_fill(cx) {
                        Poll::Ready(Ok(())) => return Poll::Ready(Ok(i)),
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => {}
                    }
                }
                Poll::Pending
            })
            .await?;
            self.next_poll = (i + 1) % n;
            let now = Instant::now();
            let c = &mut self.conns[i];
            let mut delivered = false;
            let ended = c.parse(&mut |m, ex| {
                // A non-2xx body is not a message of the session: the end reports it.
                if (200..300).contains(&ex.status) {
                    if Self::answers(m, ex) {
                        ex.answered = true;
                    }
                    on_message(m, now);
                    delivered = true;
                }
            })?;
            if ended {
                // `parse` stops after an end; nothing may follow it (no pipelining).
                let ex = std::mem::take(&mut c.ex);
                if c.start != c.end {
                    return Err(invalid(
                        "bytes after a response with no request outstanding",
                    ));
                }
                if let Some(id) = ex.request
                    && !ex.answered
                {
                    let why = if (200..300).contains(&ex.status) {
                        format!("HTTP {} reply ended without the response", ex.status)
                    } else {
                        format!("HTTP {}", ex.status)
                    };
                    on_message(&failure(id, &why), now);
                    delivered = true;
                }
                if ex.close {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "the server closed a keep-alive connection (Connection: close)",
                    ));
                }
                self.idle.push(i);
            }
            if delivered || (ended && !self.pending.is_empty()) {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<String> {
        let mut p = ResponseParser::default();
        let mut out = Vec::new();
        let mut buf = Vec::new();
        for c in chunks {
            buf.extend_from_slice(c);
            loop {
                let n = p
                    .feed(&buf, &mut |e| {
                        out.push(match e {
                            Parsed::Head(h) => format!(
                                "head {} {:?} {:?}",
                                h.status,
                                h.kind,
                                h.session_id
                                    .map(|s| String::from_utf8_lossy(s).into_owned())
                            ),
                            Parsed::Message(m) => format!("msg {}", String::from_utf8_lossy(m)),
                            Parsed::End => "end".into(),
                        })
                    })
                    .unwrap();
                buf.drain(..n);
                if n == 0 || buf.is_empty() {
                    break;
                }
            }
        }
        assert!(
            buf.is_empty(),
            "unconsumed: {:?}",
            String::from_utf8_lossy(&buf)
        );
        out
    }

    /// Every split of `whole` into two reads parses the same as `whole`.
    fn same_when_split(whole: &[u8]) -> Vec<String> {
        let all = parse_all(&[whole]);
        for k in 1..whole.len() {
            assert_eq!(parse_all(&[&whole[..k], &whole[k..]]), all, "split at {k}");
        }
        all
    }

    #[test]
    fn json_body_with_session_id() {
        let r = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nMcp-Session-Id: abc-1\r\ncontent-length: 9\r\n\r\n{\"id\":0}\n";
        assert_eq!(
            same_when_split(r),
            ["head 200 Json Some(\"abc-1\")", "msg {\"id\":0}", "end"]
        );
    }

    #[test]
    fn accepted_without_body() {
        let r = b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        assert_eq!(same_when_split(r), ["head 202 Other None", "end"]);
        let r = b"HTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(same_when_split(r), ["head 204 Other None", "end"]);
    }

    /// A chunked response with these chunks.
    fn chunked(head: &str, chunks: &[&str]) -> Vec<u8> {
        let mut r = format!("{head}transfer-encoding: chunked\r\n\r\n");
        for c in chunks {
            r.push_str(&format!("{:x}\r\n{c}\r\n", c.len()));
        }
        r.push_str("0\r\n\r\n");
        r.into_bytes()
    }

    #[test]
    fn chunked_sse_like_rmcp() {
        let r = chunked(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n",
            &[
                "data: \nid: 0/0\nretry: 3000\n\n",
                "data: {\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}\nid: 1/0\n\n",
            ],
        );
        assert_eq!(
            same_when_split(&r),
            [
                "head 200 Sse None",
                "msg {\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}",
                "end"
            ]
        );
    }

    #[test]
    fn sse_multiline_data_crlf_and_comments() {
        let body = b": keep-alive\r\nevent: message\r\nid: 3:1\r\ndata: {\"a\":\r\ndata:1}\r\n\r\ndata\n\ndata: x\n";
        let mut r = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(body);
        // The last event has no blank line before the end: dropped.
        assert_eq!(
            same_when_split(&r),
            ["head 200 Sse None", "msg {\"a\":\n1}", "end"]
        );
        // Events split across chunks, as erlmcp writes them (priming, message, end).
        let r = chunked(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n",
            &[
                "id: 1:0\nretry: 1000\ndata: \n\n",
                "event: message\nid: 1:1\nda",
                "ta: {\"id\":7}\n",
                "\n",
            ],
        );
        assert_eq!(
            same_when_split(&r),
            ["head 200 Sse None", "msg {\"id\":7}", "end"]
        );
    }

    #[test]
    fn error_status_body_is_not_a_message() {
        let r = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(same_when_split(r), ["head 404 Json None", "end"]);
    }

    #[test]
    fn stops_after_each_response() {
        let one =
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        let mut two = one.to_vec();
        two.extend_from_slice(one);
        let mut p = ResponseParser::default();
        let n = p.feed(&two, &mut |_| {}).unwrap();
        assert_eq!(n, one.len());
        assert!(p.idle());
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            &b"SSH-2.0-OpenSSH\r\n\r\n"[..],
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\nxyz",
        ] {
            let mut p = ResponseParser::default();
            assert!(
                p.feed(bad, &mut |_| {}).is_err(),
                "{:?} should fail",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn connection_close() {
        let h = parse_head(b"HTTP/1.1 200 OK\r\nConnection: close\r\ncontent-length: 0").unwrap();
        assert!(h.close);
        let h =
            parse_head(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\ncontent-length: 0").unwrap();
        assert!(!h.close);
    }
}
