//! What the `inject` tests share: the command line parser, and a stub admin API (an HTTP
//! server with a canned answer that records the requests it got).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::InjectCmd;

/// Upper bound of every wait: generous, the machine may be busy with builds.
pub const WAIT: Duration = Duration::from_secs(10);

#[derive(Parser, Debug)]
struct Cli {
    #[command(subcommand)]
    cmd: InjectCmd,
}

/// `erlmcp-chaos inject ARGS` as clap parses it.
pub fn parse(args: &[&str]) -> Result<InjectCmd, clap::Error> {
    Cli::try_parse_from(std::iter::once("inject").chain(args.iter().copied())).map(|c| c.cmd)
}

pub fn addr(s: &str) -> SocketAddr {
    s.parse().expect("addr")
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One request as the stub server received it.
#[derive(Debug)]
pub struct Recorded {
    pub request_line: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP server that answers every request with the same canned response and records
/// the requests.
pub struct Stub {
    pub addr: SocketAddr,
    requests: mpsc::UnboundedReceiver<Recorded>,
    task: JoinHandle<()>,
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stub {
    pub async fn start(status_line: &'static str, body: String) -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind stub");
        let addr = listener.local_addr().expect("stub addr");
        let (tx, requests) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let Some(req) = read_request(&mut s).await else {
                    continue;
                };
                let _ = tx.send(req);
                let resp = format!(
                    "HTTP/1.1 {status_line}\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
                let _ = s.shutdown().await;
            }
        });
        Stub {
            addr,
            requests,
            task,
        }
    }

    pub async fn next(&mut self) -> Recorded {
        tokio::time::timeout(WAIT, self.requests.recv())
            .await
            .expect("a request in time")
            .expect("stub gone")
    }

    pub fn nothing_more(&mut self) {
        assert!(self.requests.try_recv().is_err(), "an unexpected request");
    }
}

/// Reads one request: headers, then a Content-Length body.
async fn read_request(s: &mut TcpStream) -> Option<Recorded> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        if let Some(i) = find(&raw, b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8(raw[..end].to_vec()).ok()?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.to_string(), v.trim().to_string()))
        .collect();
    let len = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = raw[end + 4..].to_vec();
    while body.len() < len {
        let n = s.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&buf[..n]);
    }
    Some(Recorded {
        request_line,
        headers,
        body,
    })
}
