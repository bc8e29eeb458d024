//! MCP Streamable HTTP (revision 2025-11-25 with sessions, or 2026-07-28 per request) as a load
//! transport.
//!
//! A 2025-11-25 session is `initialize` (its response carries the `Mcp-Session-Id`), then
//! `notifications/initialized`, then one `POST` per `tools/call`; a 2026-07-28 "session" is just
//! its connections, each request carrying its revision. HTTP/1.1 cannot have two requests
//! outstanding on one connection (no pipelining for this), so a session with `--concurrency C`
//! holds `C` keep-alive connections. A response is either one `application/json` body or a
//! `text/event-stream` whose `data:` events carry the request's messages and finally its
//! response; both are handed to the session driver message by message, as they arrive. A
//! response with a non-2xx status, or a stream that ends without the response, is reported to
//! the driver as a JSON-RPC error for its request.
//!
//! HTTP itself is hyper's HTTP/1.1 client connection (`hyper::client::conn::http1`, what
//! reqwest is built on) over a `TcpStream` with `TCP_NODELAY`. Not reqwest: on this 2-core
//! machine, one core of reqwest drives 25 000–37 000 req/s against a do-nothing server — about
//! what an erlmcp node answers on one core, so it would partly measure itself — while hyper's
//! connection API drives 40 000–84 000 (`examples/reqwest_load.rs`, bench/README.md). The SSE
//! body is read by [`BodyReader`].

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::scan::{Scanned, scan};
use super::transport::{MAX_MESSAGE, Transport};
use super::workload::{self, INITIALIZE_ID, PROTOCOL_VERSION, Workload};

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

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn http_error(e: hyper::Error) -> io::Error {
    io::Error::other(e)
}

// ---------------------------------------------------------------------------------------------
// Response bodies (no I/O)

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

impl BodyKind {
    /// The kind a `Content-Type` names (parameters such as `charset` ignored).
    pub fn of(content_type: Option<&HeaderValue>) -> Self {
        let mime = content_type
            .map(|v| v.as_bytes())
            .unwrap_or_default()
            .split(|&c| c == b';')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        if mime.eq_ignore_ascii_case(b"text/event-stream") {
            BodyKind::Sse
        } else if mime.eq_ignore_ascii_case(b"application/json") {
            BodyKind::Json
        } else {
            BodyKind::Other
        }
    }
}

/// Reads one response body into JSON-RPC messages, from pieces as they arrive: a JSON body is
/// one message at its end; an SSE stream gives one message per event with data (`data:` lines
/// joined by `\n`, other fields and comments skipped), as soon as the event's blank line
/// arrives.
#[derive(Debug, Default)]
pub struct BodyReader {
    kind: BodyKind,
    /// A JSON body being collected, or the SSE line being collected.
    buf: Vec<u8>,
    /// The data of the SSE event being collected.
    data: Vec<u8>,
}

impl BodyReader {
    /// A reader for a body of `kind`.
    pub fn new(kind: BodyKind) -> Self {
        Self {
            kind,
            ..Self::default()
        }
    }

    /// Reads the next piece of the body; `emit` gets each message it completes.
    pub fn feed(&mut self, bytes: &[u8], emit: &mut impl FnMut(&[u8])) -> io::Result<()> {
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
    fn sse_line(&mut self, line: &[u8], emit: &mut impl FnMut(&[u8])) -> io::Result<()> {
        let line = match line {
            [rest @ .., b'\r'] => rest,
            l => l,
        };
        if line.is_empty() {
            if !self.data.is_empty() {
                emit(&self.data);
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

    /// The body ended: a JSON body is its message. An SSE event cut off by the end of the
    /// stream is dropped, as SSE says.
    pub fn finish(&mut self, emit: &mut impl FnMut(&[u8])) {
        if self.kind == BodyKind::Json {
            let body = self.buf.trim_ascii();
            if !body.is_empty() {
                emit(body);
            }
        }
        self.buf.clear();
        self.data.clear();
    }
}

// ---------------------------------------------------------------------------------------------
// Connections

type ResponseFuture = Pin<Box<dyn Future<Output = hyper::Result<Response<Incoming>>> + Send>>;

/// Where a connection's exchange is.
#[derive(Default)]
enum Phase {
    /// No request in flight.
    #[default]
    Idle,
    /// Waiting for the response head.
    Head(ResponseFuture),
    /// Reading the response body.
    Body(Incoming, BodyReader),
}

/// What a connection's current exchange has seen.
#[derive(Debug, Default)]
struct Exchange {
    /// The `tools/call` id in flight on it (`None`: idle).
    request: Option<u64>,
    /// Its response was delivered.
    answered: bool,
    status: u16,
    /// The response said `Connection: close`.
    close: bool,
}

/// What polling a connection brought.
enum Step {
    /// The response head arrived.
    Head,
    /// A piece of the body.
    Data(Bytes),
    /// The body ended.
    End,
}

struct Conn {
    send: SendRequest<Full<Bytes>>,
    phase: Phase,
    ex: Exchange,
}

/// Whether a response head says the server closes the connection after it.
fn closes(headers: &HeaderMap) -> bool {
    headers.get_all(header::CONNECTION).iter().any(|v| {
        v.as_bytes()
            .split(|&c| c == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
    })
}

impl Conn {
    async fn connect(addr: SocketAddr, timeout: Duration) -> anyhow::Result<Self> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| anyhow!("connecting to {addr} timed out after {timeout:?}"))?
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let (send, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .with_context(|| format!("HTTP/1.1 handshake with {addr}"))?;
        // The connection's I/O runs on a task of its own; it ends when `send` is dropped.
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "HTTP connection ended");
            }
        });
        Ok(Self {
            send,
            phase: Phase::Idle,
            ex: Exchange::default(),
        })
    }

    /// Starts an exchange (the connection must be idle and ready).
    fn start(&mut self, request: Request<Full<Bytes>>) {
        self.phase = Phase::Head(Box::pin(self.send.send_request(request)));
    }

    /// Advances the exchange by one step (cancel-safe: every state lives in `self`).
    fn poll_step(&mut self, cx: &mut std::task::Context<'_>) -> Poll<io::Result<Step>> {
        match &mut self.phase {
            Phase::Idle => Poll::Pending,
            Phase::Head(fut) => match fut.as_mut().poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Err(e)) => Poll::Ready(Err(http_error(e))),
                Poll::Ready(Ok(resp)) => {
                    self.ex.status = resp.status().as_u16();
                    self.ex.close = closes(resp.headers());
                    let kind = BodyKind::of(resp.headers().get(header::CONTENT_TYPE));
                    self.phase = Phase::Body(resp.into_body(), BodyReader::new(kind));
                    Poll::Ready(Ok(Step::Head))
                }
            },
            Phase::Body(body, _) => match Pin::new(body).poll_frame(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(None) => Poll::Ready(Ok(Step::End)),
                Poll::Ready(Some(Err(e))) => Poll::Ready(Err(http_error(e))),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => Poll::Ready(Ok(Step::Data(data))),
                    // Trailers: nothing for us; the end follows.
                    Err(_) => Poll::Ready(Ok(Step::Data(Bytes::new()))),
                },
            },
        }
    }

    /// Sends one request and reads its whole response (the handshake's exchanges): status,
    /// `Mcp-Session-Id`, and the messages of a 2xx body.
    async fn roundtrip(
        &mut self,
        request: Request<Full<Bytes>>,
        timeout: Duration,
    ) -> anyhow::Result<(u16, Option<String>, Vec<Vec<u8>>)> {
        self.send.ready().await?;
        let exchange = async {
            let resp = self.send.send_request(request).await?;
            let status = resp.status().as_u16();
            let session = resp
                .headers()
                .get("mcp-session-id")
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            if closes(resp.headers()) {
                bail!("the server closes the connection after each response (no keep-alive)");
            }
            let mut reader =
                BodyReader::new(BodyKind::of(resp.headers().get(header::CONTENT_TYPE)));
            let mut body = resp.into_body();
            let mut messages = Vec::new();
            let mut text = Vec::new();
            while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
                if let Ok(data) = frame?.into_data() {
                    if text.len() < 512 {
                        text.extend_from_slice(&data[..data.len().min(512)]);
                    }
                    reader.feed(&data, &mut |m| messages.push(m.to_vec()))?;
                }
            }
            reader.finish(&mut |m| messages.push(m.to_vec()));
            if !(200..300).contains(&status) {
                // Not messages of the session: the error's text, for the report.
                messages = vec![text];
            }
            Ok((status, session, messages))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| anyhow!("no response within {timeout:?}"))?
    }
}

// ---------------------------------------------------------------------------------------------
// The transport

/// One MCP session over Streamable HTTP: `C` keep-alive connections (sharing a session id on
/// 2025-11-25).
pub struct HttpTransport {
    conns: Vec<Conn>,
    /// Connections without a request in flight.
    idle: Vec<usize>,
    /// Requests waiting for an idle connection.
    pending: VecDeque<u64>,
    work: Arc<Workload>,
    uri: Uri,
    /// The headers of every `tools/call` (values are shared bytes: cloning one is cheap).
    headers: HeaderMap,
    /// Where `recv` starts polling (round robin).
    next_poll: usize,
}

/// What a request's headers name besides the endpoint.
enum HeadFor<'a> {
    /// `initialize`: nothing.
    Handshake,
    /// A request in session `id` that negotiated `version`.
    Session(&'a str, &'a str),
    /// A revision 2026-07-28 `tools/call` of `tool` (its routing headers, no session).
    PerRequest(&'a str),
}

fn value(v: &str) -> anyhow::Result<HeaderValue> {
    HeaderValue::from_str(v).with_context(|| format!("{v:?} cannot be an HTTP header value"))
}

/// The headers of a `POST` to the endpoint.
fn request_headers(a: &HttpAddr, head_for: HeadFor<'_>) -> anyhow::Result<HeaderMap> {
    let mut h = HeaderMap::with_capacity(8);
    h.insert(header::HOST, value(&a.host)?);
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        header::ACCEPT,
        HeaderValue::from_static("application/json, text/event-stream"),
    );
    let version = HeaderName::from_static("mcp-protocol-version");
    match head_for {
        HeadFor::Handshake => {}
        HeadFor::Session(id, v) => {
            h.insert(HeaderName::from_static("mcp-session-id"), value(id)?);
            h.insert(version, value(v)?);
        }
        HeadFor::PerRequest(tool) => {
            h.insert(
                version,
                HeaderValue::from_static(workload::PER_REQUEST_VERSION),
            );
            h.insert(
                HeaderName::from_static("mcp-method"),
                HeaderValue::from_static("tools/call"),
            );
            h.insert(HeaderName::from_static("mcp-name"), value(tool)?);
        }
    }
    Ok(h)
}

fn request(uri: &Uri, headers: &HeaderMap, body: Vec<u8>) -> Request<Full<Bytes>> {
    let mut r = Request::new(Full::new(Bytes::from(body)));
    *r.method_mut() = Method::POST;
    *r.uri_mut() = uri.clone();
    *r.headers_mut() = headers.clone();
    r
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
    /// `initialize` and `notifications/initialized` on `conn`; returns the session's headers.
    async fn handshake(
        conn: &mut Conn,
        a: &HttpAddr,
        uri: &Uri,
        timeout: Duration,
    ) -> anyhow::Result<HeaderMap> {
        let headers = request_headers(a, HeadFor::Handshake)?;
        let init = request(uri, &headers, workload::initialize_body().into_bytes());
        let (status, session, messages) =
            conn.roundtrip(init, timeout).await.context("initialize")?;
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
        let headers = request_headers(a, HeadFor::Session(&session, &version))?;
        let initialized = request(uri, &headers, workload::initialized_body().into());
        let (status, _, _) = conn
            .roundtrip(initialized, timeout)
            .await
            .context("notifications/initialized")?;
        if !(200..300).contains(&status) {
            bail!("notifications/initialized: HTTP {status}");
        }
        Ok(headers)
    }

    /// Whether a message is the response to the connection's request.
    fn answers(m: &[u8], ex: &Exchange) -> bool {
        matches!(scan(m), Ok(Scanned::Response { id: Some(id), .. }) if Some(id) == ex.request)
    }

    /// Drives every connection with a request in flight as far as it goes; `on_message` gets
    /// each message. Ready once a message was delivered or a connection freed for a pending
    /// request.
    fn poll_recv<F: FnMut(&[u8], Instant)>(
        &mut self,
        cx: &mut std::task::Context<'_>,
        on_message: &mut F,
    ) -> Poll<io::Result<()>> {
        let n = self.conns.len();
        let first = self.next_poll;
        self.next_poll = (first + 1) % n;
        let mut delivered = false;
        let mut freed = false;
        for k in 0..n {
            let i = (first + k) % n;
            loop {
                let c = &mut self.conns[i];
                let step = match c.poll_step(cx) {
                    Poll::Pending => break,
                    Poll::Ready(step) => step?,
                };
                match step {
                    Step::Head => {}
                    Step::Data(data) => {
                        let now = Instant::now();
                        let Phase::Body(_, reader) = &mut c.phase else {
                            continue;
                        };
                        let ex = &mut c.ex;
                        reader.feed(&data, &mut |m| {
                            // A non-2xx body is not a message of the session: the end
                            // reports it.
                            if (200..300).contains(&ex.status) {
                                if Self::answers(m, ex) {
                                    ex.answered = true;
                                }
                                on_message(m, now);
                                delivered = true;
                            }
                        })?;
                    }
                    Step::End => {
                        let now = Instant::now();
                        let mut ex = std::mem::take(&mut c.ex);
                        if let Phase::Body(_, mut reader) = std::mem::take(&mut c.phase) {
                            reader.finish(&mut |m| {
                                if (200..300).contains(&ex.status) {
                                    if Self::answers(m, &ex) {
                                        ex.answered = true;
                                    }
                                    on_message(m, now);
                                    delivered = true;
                                }
                            });
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
                            return Poll::Ready(Err(io::Error::new(
                                io::ErrorKind::ConnectionAborted,
                                "the server closed a keep-alive connection (Connection: close)",
                            )));
                        }
                        self.idle.push(i);
                        freed = true;
                        break;
                    }
                }
            }
        }
        if delivered || (freed && !self.pending.is_empty()) {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }
}

impl Transport for HttpTransport {
    type Addr = HttpAddr;

    async fn open(a: &HttpAddr, work: Arc<Workload>, timeout: Duration) -> anyhow::Result<Self> {
        let uri: Uri = a
            .path
            .parse()
            .with_context(|| format!("{:?} is not a request path", a.path))?;
        let n = a.connections.max(1);
        let mut conns = Vec::with_capacity(n);
        let headers = if work.per_request() {
            // Revision 2026-07-28: no handshake, no session; the routing headers name the tool.
            request_headers(a, HeadFor::PerRequest(work.tool()))?
        } else {
            let mut first = Conn::connect(a.addr, timeout).await?;
            let headers = Self::handshake(&mut first, a, &uri, timeout).await?;
            conns.push(first);
            headers
        };
        while conns.len() < n {
            conns.push(Conn::connect(a.addr, timeout).await?);
        }
        Ok(Self {
            conns,
            idle: (0..n).rev().collect(),
            pending: VecDeque::new(),
            work,
            uri,
            headers,
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
            let mut body = Vec::with_capacity(160);
            self.work.write_body(&mut body, id);
            let req = request(&self.uri, &self.headers, body);
            let c = &mut self.conns[i];
            // Ready as soon as the connection has taken in the previous response's end; an
            // error here is a connection the server closed.
            c.send.ready().await.map_err(http_error)?;
            c.ex = Exchange {
                request: Some(id),
                ..Exchange::default()
            };
            c.start(req);
        }
        Ok(())
    }

    async fn recv<F: FnMut(&[u8], Instant) + Send>(
        &mut self,
        on_message: &mut F,
    ) -> io::Result<()> {
        poll_fn(|cx| self.poll_recv(cx, on_message)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The messages of a body given in `pieces`.
    fn read(kind: BodyKind, pieces: &[&[u8]]) -> Vec<String> {
        let mut r = BodyReader::new(kind);
        let mut out = Vec::new();
        for p in pieces {
            r.feed(p, &mut |m| {
                out.push(String::from_utf8_lossy(m).into_owned())
            })
            .unwrap();
        }
        r.finish(&mut |m| out.push(String::from_utf8_lossy(m).into_owned()));
        out
    }

    /// Every split of `whole` into two pieces reads the same as `whole`.
    fn same_when_split(kind: BodyKind, whole: &[u8]) -> Vec<String> {
        let all = read(kind, &[whole]);
        for k in 1..whole.len() {
            assert_eq!(read(kind, &[&whole[..k], &whole[k..]]), all, "split at {k}");
        }
        all
    }

    #[test]
    fn json_body_is_one_message_at_its_end() {
        assert_eq!(
            same_when_split(BodyKind::Json, b"{\"id\":0}\n"),
            ["{\"id\":0}"]
        );
        assert!(read(BodyKind::Json, &[b"  \n"]).is_empty());
        assert!(read(BodyKind::Other, &[b"{\"id\":0}"]).is_empty());
    }

    #[test]
    fn sse_like_rmcp_skips_the_priming_event() {
        let body = b"data: \nid: 0/0\nretry: 3000\n\ndata: {\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}\nid: 1/0\n\n";
        assert_eq!(
            same_when_split(BodyKind::Sse, body),
            ["{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}"]
        );
    }

    #[test]
    fn sse_multiline_data_crlf_and_comments() {
        let body = b": keep-alive\r\nevent: message\r\nid: 3:1\r\ndata: {\"a\":\r\ndata:1}\r\n\r\ndata\n\ndatax: 1\n\ndata: x\n";
        // The last event has no blank line before the end: dropped.
        assert_eq!(same_when_split(BodyKind::Sse, body), ["{\"a\":\n1}"]);
    }

    #[test]
    fn sse_events_are_emitted_as_they_complete() {
        let mut r = BodyReader::new(BodyKind::Sse);
        let mut out = Vec::new();
        r.feed(b"event: message\nid: 1:1\nda", &mut |m| {
            out.push(m.to_vec())
        })
        .unwrap();
        r.feed(b"ta: {\"id\":7}\n", &mut |m| out.push(m.to_vec()))
            .unwrap();
        assert!(out.is_empty(), "no event before its blank line");
        r.feed(b"\n", &mut |m| out.push(m.to_vec())).unwrap();
        assert_eq!(out, [b"{\"id\":7}".to_vec()]);
    }

    #[test]
    fn content_types() {
        let kind = |v: &'static str| BodyKind::of(Some(&HeaderValue::from_static(v)));
        assert_eq!(kind("text/event-stream"), BodyKind::Sse);
        assert_eq!(kind("Text/Event-Stream; charset=utf-8"), BodyKind::Sse);
        assert_eq!(kind("application/json"), BodyKind::Json);
        assert_eq!(kind("text/plain"), BodyKind::Other);
        assert_eq!(BodyKind::of(None), BodyKind::Other);
    }

    #[test]
    fn connection_close() {
        let mut h = HeaderMap::new();
        assert!(!closes(&h));
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        assert!(!closes(&h));
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("Upgrade, Close"),
        );
        assert!(closes(&h));
    }

    #[test]
    fn oversized_bodies_are_refused() {
        let big = vec![b'x'; MAX_MESSAGE + 1];
        assert!(
            BodyReader::new(BodyKind::Json)
                .feed(&big, &mut |_| {})
                .is_err()
        );
        assert!(
            BodyReader::new(BodyKind::Sse)
                .feed(&big, &mut |_| {})
                .is_err()
        );
    }
}
