//! A small blocking HTTP/1.1 client for the Streamable HTTP tests: one connection per request
//! (`Connection: close`), chunked or sized bodies, and SSE events read one at a time so a test
//! can drop a stream in the middle. Every read is bounded by [`WAIT`].

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};

use serde_json::{Value, json};

use super::WAIT;

/// A response: status and headers read, body not yet.
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    body: BufReader<BodyReader>,
}

enum Framing {
    Chunked { left: usize, done: bool },
    Length(usize),
    UntilClose,
}

struct BodyReader {
    conn: BufReader<TcpStream>,
    framing: Framing,
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match &mut self.framing {
            Framing::Length(0) => Ok(0),
            Framing::Length(left) => {
                let max = buf.len().min(*left);
                let n = self.conn.read(&mut buf[..max])?;
                *left -= n;
                Ok(n)
            }
            Framing::UntilClose => self.conn.read(buf),
            Framing::Chunked { done: true, .. } => Ok(0),
            Framing::Chunked { left, done } => {
                if *left == 0 {
                    let mut line = String::new();
                    self.conn.read_line(&mut line)?;
                    let size = line.trim().split(';').next().unwrap_or_default();
                    let size = usize::from_str_radix(size, 16).map_err(|e| {
                        std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            format!("bad chunk size {line:?}: {e}"),
                        )
                    })?;
                    if size == 0 {
                        *done = true;
                        return Ok(0);
                    }
                    *left = size;
                }
                let max = buf.len().min(*left);
                let n = self.conn.read(&mut buf[..max])?;
                if n == 0 {
                    return Ok(0);
                }
                *left -= n;
                if *left == 0 {
                    let mut crlf = [0u8; 2];
                    self.conn.read_exact(&mut crlf)?;
                }
                Ok(n)
            }
        }
    }
}

/// One SSE event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub id: Option<String>,
    pub retry: Option<u64>,
    pub data: String,
}

impl SseEvent {
    /// The data as JSON (panics if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("event data is not JSON ({e}): {self:?}"))
    }
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn content_type(&self) -> &str {
        self.header("content-type").unwrap_or_default()
    }

    /// The whole body as text.
    pub fn text(mut self) -> String {
        let mut s = String::new();
        self.body.read_to_string(&mut s).expect("read the body");
        s
    }

    /// The whole body as JSON.
    pub fn json(self) -> Value {
        let status = self.status;
        let text = self.text();
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("body of {status} is not JSON ({e}): {text:?}"))
    }

    /// The next SSE event (comments skipped; fields without data included, as the priming
    /// event has an empty `data:`); `None` at the end of the stream.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        let mut ev = SseEvent::default();
        let mut fields = 0;
        let mut data: Vec<String> = Vec::new();
        loop {
            let mut line = String::new();
            let n = self
                .body
                .read_line(&mut line)
                .unwrap_or_else(|e| panic!("reading the SSE stream: {e}"));
            if n == 0 {
                return None;
            }
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if fields > 0 {
                    ev.data = data.join("\n");
                    return Some(ev);
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value).to_string();
            fields += 1;
            match field {
                "event" => ev.event = Some(value),
                "id" => ev.id = Some(value),
                "retry" => ev.retry = value.parse().ok(),
                "data" => data.push(value),
                _ => {}
            }
        }
    }

    /// Every remaining event until the stream ends.
    pub fn events(&mut self) -> Vec<SseEvent> {
        std::iter::from_fn(|| self.next_event()).collect()
    }
}

/// Sends one request and reads the status line and headers.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> HttpResponse {
    let mut s = TcpStream::connect(addr).expect("connect to the HTTP listener");
    s.set_nodelay(true).ok();
    s.set_read_timeout(Some(WAIT)).ok();
    let mut head = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    match body {
        Some(b) if chunked => {
            head.push_str("\r\n");
            s.write_all(head.as_bytes()).expect("write");
            for piece in b.as_bytes().chunks(512) {
                s.write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                    .expect("write");
                s.write_all(piece).expect("write");
                s.write_all(b"\r\n").expect("write");
            }
            s.write_all(b"0\r\n\r\n").expect("write");
        }
        Some(b) => {
            head.push_str(&format!("Content-Length: {}\r\n\r\n", b.len()));
            s.write_all(head.as_bytes()).expect("write");
            // The server may refuse early (413) and close: a failed write is then expected.
            let _ = s.write_all(b.as_bytes());
        }
        None => {
            head.push_str("\r\n");
            s.write_all(head.as_bytes()).expect("write");
        }
    }
    let mut conn = BufReader::new(s);
    let mut status_line = String::new();
    conn.read_line(&mut status_line)
        .expect("read the status line");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {status_line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        conn.read_line(&mut line).expect("read a header");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let framing = if get("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        Framing::Chunked {
            left: 0,
            done: false,
        }
    } else if let Some(len) = get("content-length").and_then(|l| l.parse().ok()) {
        Framing::Length(len)
    } else if status == 204 || status == 304 {
        Framing::Length(0)
    } else {
        Framing::UntilClose
    };
    HttpResponse {
        status,
        headers,
        body: BufReader::new(BodyReader { conn, framing }),
    }
}

pub const ACCEPT_BOTH: &str = "application/json, text/event-stream";

/// An MCP client over Streamable HTTP (revision 2025-11-25).
pub struct HttpMcp {
    pub addr: SocketAddr,
    pub session: Option<String>,
    /// Sent as `MCP-Protocol-Version` once initialized.
    pub version: Option<String>,
}

impl HttpMcp {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            session: None,
            version: None,
        }
    }

    /// The standard headers of a POST plus the session ones (and `extra`).
    pub fn post_with(&self, body: &Value, extra: &[(&str, &str)]) -> HttpResponse {
        let mut headers: Vec<(&str, &str)> = vec![
            ("Content-Type", "application/json"),
            ("Accept", ACCEPT_BOTH),
        ];
        if let Some(s) = &self.session {
            headers.push(("Mcp-Session-Id", s));
        }
        if let Some(v) = &self.version
            && !extra
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("mcp-protocol-version"))
        {
            headers.push(("MCP-Protocol-Version", v));
        }
        headers.extend_from_slice(extra);
        request(self.addr, "POST", "/mcp", &headers, Some(&body.to_string()))
    }

    pub fn post(&self, body: &Value) -> HttpResponse {
        self.post_with(body, &[])
    }

    /// `initialize` (asking for `capabilities`) + `notifications/initialized`; returns the
    /// initialize result.
    pub fn initialize_with(&mut self, capabilities: Value) -> Value {
        let r = self.post(
            &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": capabilities,
            "clientInfo": {"name": "node-http-tests", "version": "0"}}}),
        );
        assert_eq!(r.status, 200);
        let session = r
            .header("mcp-session-id")
            .expect("initialize returns Mcp-Session-Id")
            .to_string();
        let body = r.json();
        let result = body["result"].clone();
        assert!(result.is_object(), "initialize failed: {body}");
        self.session = Some(session);
        self.version = result["protocolVersion"].as_str().map(str::to_string);
        let r = self.post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        assert_eq!(r.status, 202, "initialized is accepted");
        assert_eq!(r.text(), "", "202 has no body");
        result
    }

    pub fn initialize(&mut self) -> Value {
        self.initialize_with(json!({}))
    }

    /// Sends a request and returns its response (from a JSON body, or the SSE stream's events,
    /// notifications skipped) and the response's content type.
    pub fn call(&self, id: u64, method: &str, params: Value) -> (String, Value) {
        let mut r =
            self.post(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        assert_eq!(r.status, 200, "{method}");
        let ct = r.content_type().to_string();
        if ct.starts_with("application/json") {
            return (ct, r.json());
        }
        assert!(ct.starts_with("text/event-stream"), "content type {ct:?}");
        while let Some(ev) = r.next_event() {
            if ev.data.is_empty() {
                continue;
            }
            let m = ev.json();
            if m.get("id") == Some(&json!(id)) && m.get("method").is_none() {
                return (ct, m);
            }
        }
        panic!("the stream of {method} ended without its response");
    }

    /// `GET /mcp` (the standalone stream, or a resumption with `last_event_id`).
    pub fn get(&self, last_event_id: Option<&str>) -> HttpResponse {
        let mut headers: Vec<(&str, &str)> = vec![("Accept", "text/event-stream")];
        if let Some(s) = &self.session {
            headers.push(("Mcp-Session-Id", s));
        }
        if let Some(v) = &self.version {
            headers.push(("MCP-Protocol-Version", v));
        }
        if let Some(l) = last_event_id {
            headers.push(("Last-Event-ID", l));
        }
        request(self.addr, "GET", "/mcp", &headers, None)
    }

    pub fn delete(&self) -> HttpResponse {
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(s) = &self.session {
            headers.push(("Mcp-Session-Id", s));
        }
        if let Some(v) = &self.version {
            headers.push(("MCP-Protocol-Version", v));
        }
        request(self.addr, "DELETE", "/mcp", &headers, None)
    }
}

/// Asserts an HTTP error: its status, and a JSON-RPC error body whose message contains each of
/// `needles`; returns the body.
pub fn assert_error(r: HttpResponse, status: u16, needles: &[&str]) -> Value {
    assert_eq!(r.status, status, "status");
    assert!(
        r.content_type().starts_with("application/json"),
        "JSON error body: {:?}",
        r.headers
    );
    let body = r.json();
    assert_eq!(body["jsonrpc"], "2.0", "{body}");
    assert!(body.get("id").is_some(), "has an id (maybe null): {body}");
    assert!(body["error"]["code"].is_i64(), "{body}");
    let msg = body["error"]["message"].as_str().unwrap_or_default();
    for n in needles {
        assert!(msg.contains(n), "{n:?} in {msg:?}");
    }
    body
}
