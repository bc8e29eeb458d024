//! A do-nothing MCP Streamable HTTP responder to calibrate `erlmcp-load --target http://…`: it
//! answers `initialize` with a session id, notifications with 202, and every request with a
//! canned result as a one-event SSE stream (chunked, written in one piece), so what it measures
//! is the load generator's own ceiling (and the kernel's loopback), not an MCP server.
//!
//! ```text
//! cargo run --release -p erlmcp-bench --example null_http_server -- 127.0.0.1:17402
//! ```

use erlmcp_bench::load::scan::{Scanned, scan};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const INIT: &str = r#"{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"null","version":"0"}}}"#;

/// Where the id goes in the canned response: `{"jsonrpc":"2.0","id":` ID `,"result":…}`.
const RESULT_PREFIX: &str = r#"{"jsonrpc":"2.0","id":"#;
const RESULT_SUFFIX: &str = r#","result":{"content":[{"type":"text","text":"hello"}],"structuredContent":{"text":"hello"},"isError":false}}"#;

fn content_length(head: &[u8]) -> usize {
    for line in head.split(|&c| c == b'\n') {
        if let Some(colon) = memchr::memchr(b':', line)
            && line[..colon]
                .trim_ascii()
                .eq_ignore_ascii_case(b"content-length")
        {
            return std::str::from_utf8(line[colon + 1..].trim_ascii())
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
        }
    }
    0
}

fn respond(body: &[u8], out: &mut Vec<u8>) {
    match scan(body) {
        Ok(Scanned::Request) if memchr::memmem::find(body, br#""initialize""#).is_some() => {
            out.extend_from_slice(
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nmcp-session-id: null-session\r\ncontent-length: {}\r\n\r\n{INIT}",
                    INIT.len()
                )
                .as_bytes(),
            );
        }
        Ok(Scanned::Request) => {
            // The id is the first number after `"id":` in the generator's requests.
            let id = memchr::memmem::find(body, br#""id":"#)
                .map(|k| {
                    let rest = &body[k + 5..];
                    let n = rest.iter().take_while(|c| c.is_ascii_digit()).count();
                    String::from_utf8_lossy(&rest[..n]).into_owned()
                })
                .unwrap_or_else(|| "null".into());
            let event = format!("event: message\ndata: {RESULT_PREFIX}{id}{RESULT_SUFFIX}\n\n");
            out.extend_from_slice(
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{event}\r\n0\r\n\r\n",
                    event.len()
                )
                .as_bytes(),
            );
        }
        _ => out.extend_from_slice(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n"),
    }
}

async fn serve(mut s: TcpStream) -> std::io::Result<()> {
    s.set_nodelay(true)?;
    let mut buf = vec![0u8; 64 * 1024];
    let (mut start, mut end) = (0usize, 0usize);
    let mut out = Vec::with_capacity(4096);
    loop {
        if end == buf.len() {
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
            if end == buf.len() {
                return Ok(()); // request too large for a calibration server
            }
        }
        let n = s.read(&mut buf[end..]).await?;
        if n == 0 {
            return Ok(());
        }
        end += n;
        while let Some(k) = memchr::memmem::find(&buf[start..end], b"\r\n\r\n") {
            let len = content_length(&buf[start..start + k]);
            let body_at = start + k + 4;
            if end < body_at + len {
                break;
            }
            respond(&buf[body_at..body_at + len], &mut out);
            start = body_at + len;
        }
        if start == end {
            start = 0;
            end = 0;
        }
        if !out.is_empty() {
            s.write_all(&out).await?;
            out.clear();
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:17402".into());
    let l = TcpListener::bind(&addr).await?;
    eprintln!("null_http_server on http://{}/mcp", l.local_addr()?);
    loop {
        let (s, _) = l.accept().await?;
        tokio::spawn(async move {
            let _ = serve(s).await;
        });
    }
}
