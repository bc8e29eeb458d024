//! A small blocking HTTP client for the Streamable HTTP tests (reqwest's blocking client): one
//! connection per request (`Connection: close`), chunked or sized bodies, and SSE events read
//! one at a time as they arrive so a test can drop a stream in the middle. Every read is bounded
//! by [`WAIT`].

use std::io::{BufRead, BufReader, Cursor, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::OnceLock;

use reqwest::blocking::{Body, Client};
use reqwest::header::{CONNECTION, TRANSFER_ENCODING};
use serde_json::{Value, json};

use super::WAIT;

/// The client every helper uses: no proxy, no redirects, no pooling (each request on a
/// connection of its own, as a test expects), every read bounded by [`WAIT`]. Header names go
/// out in title case (`Mcp-Session-Id`), as the tests write them.
pub fn client() -> &'static Client {
    static CLIENT: OnceLock<Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(0)
            .http1_title_case_headers()
            .timeout(WAIT)
            .build()
            .expect("the blocking HTTP client")
    })
}

/// A response: status and headers read, body not yet.
pub struct HttpResponse {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    body: Box<dyn BufRead + Send>,
}

impl HttpResponse {
    fn from_reqwest(r: reqwest::blocking::Response) -> Self {
        let headers = r
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        Self {
            status: r.status().as_u16(),
            headers,
            body: Box::new(BufReader::new(r)),
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

/// Sends one request and reads the status line and headers. A `Transfer-Encoding: chunked`
/// header sends the body chunked (as a stream of unknown length).
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> HttpResponse {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
    let mut req = client()
        .request(method, format!("http://{addr}{path}"))
        .header(CONNECTION, "close");
    let mut chunked = false;
    for (k, v) in headers {
        if k.eq_ignore_ascii_case(TRANSFER_ENCODING.as_str()) && v.contains("chunked") {
            chunked = true; // the body below is sent chunked; hyper writes the header
        } else {
            req = req.header(*k, *v);
        }
    }
    if let Some(b) = body {
        req = if chunked {
            req.body(Body::new(Cursor::new(b.as_bytes().to_vec())))
        } else {
            req.body(b.to_string())
        };
    }
    let r = req
        .send()
        .unwrap_or_else(|e| panic!("{path}: no answer from {addr}: {e:?}"));
    HttpResponse::from_reqwest(r)
}

/// Sends `raw` (a whole request, head and body, with `Connection: close`) on a socket of its
/// own and reads the answer to the end. Only for requests reqwest will not send: it adds
/// `Accept: */*` to a request without an Accept header, so a test of a missing Accept needs
/// this.
pub fn raw_request(addr: SocketAddr, raw: &str) -> HttpResponse {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).ok();
    s.write_all(raw.as_bytes()).expect("write");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read the answer");
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("bad HTTP: {text:?}"));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {head:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    // axum sizes these small answers (Content-Length), so the rest is the body.
    assert!(
        !headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked")),
        "a chunked answer: {head}"
    );
    HttpResponse {
        status,
        headers,
        body: Box::new(Cursor::new(body.as_bytes().to_vec())),
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
