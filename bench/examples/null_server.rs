//! A do-nothing MCP responder over TCP (NDJSON) to calibrate `erlmcp-load`: it answers
//! `initialize` and every request with a canned result, so what it measures is the load
//! generator's own ceiling (and the kernel's loopback), not an MCP engine.
//!
//! ```text
//! cargo run --release -p erlmcp-bench --example null_server -- 127.0.0.1:17401
//! ```

use erlmcp_bench::load::scan::{Scanned, scan};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const INIT: &[u8] = br#"{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"null","version":"0"}}}"#;

async fn serve(mut s: TcpStream) -> std::io::Result<()> {
    s.set_nodelay(true)?;
    let mut buf = vec![0u8; 64 * 1024];
    let (mut start, mut end) = (0usize, 0usize);
    let mut out = Vec::with_capacity(64 * 1024);
    let mut id = itoa::Buffer::new();
    loop {
        if end == buf.len() {
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
            if end == buf.len() {
                return Ok(()); // line too long for a calibration server
            }
        }
        let n = s.read(&mut buf[end..]).await?;
        if n == 0 {
            return Ok(());
        }
        end += n;
        while let Some(k) = memchr::memchr(b'\n', &buf[start..end]) {
            let line = &buf[start..start + k];
            match scan(line) {
                Ok(Scanned::Response { .. }) | Ok(Scanned::Notification) | Err(_) => {}
                Ok(Scanned::Request) => {
                    if memchr::memmem::find(line, br#""method":"initialize""#).is_some() {
                        out.extend_from_slice(INIT);
                    } else {
                        out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
                        out.extend_from_slice(id.format(numeric_id(line)).as_bytes());
                        out.extend_from_slice(
                            br#","result":{"content":[{"type":"text","text":"hello"}],"isError":false}}"#,
                        );
                    }
                    out.push(b'\n');
                }
            }
            start += k + 1;
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

/// The first `"id":N` of a line (0 if none): enough for the requests `erlmcp-load` sends.
fn numeric_id(line: &[u8]) -> u64 {
    let Some(i) = memchr::memmem::find(line, br#""id":"#) else {
        return 0;
    };
    line[i + 5..]
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .fold(0u64, |n, &c| {
            n.wrapping_mul(10).wrapping_add(u64::from(c - b'0'))
        })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:17401".into());
    let l = TcpListener::bind(&addr).await?;
    eprintln!("null_server listening on {addr}");
    loop {
        let (s, _) = l.accept().await?;
        tokio::spawn(serve(s));
    }
}
