//! How a session reaches the server. The session driver only queues requests by id, flushes, and
//! receives whole messages; each transport supplies framing and the MCP handshake: NDJSON over
//! TCP here, MCP Streamable HTTP in [`super::http`].

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::args::Target;
use super::http::HttpAddr;
use super::workload::{self, INITIALIZE_ID, Workload};
use crate::load::scan::{Scanned, scan};

/// Largest message accepted from the server.
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// One session's connection to the server.
pub trait Transport: Sized + Send + 'static {
    /// A resolved address.
    type Addr: Clone + Send + Sync + 'static;

    /// Connects and completes the MCP handshake (`initialize`, then `notifications/initialized`).
    fn open(
        addr: &Self::Addr,
        work: Arc<Workload>,
        timeout: Duration,
    ) -> impl Future<Output = anyhow::Result<Self>> + Send;

    /// Queues the `tools/call` request with `id`; it goes out at the next [`Transport::flush`].
    fn queue(&mut self, id: u64);

    /// Sends everything queued (that it can: a transport may hold requests until it has a
    /// free connection, see [`Transport::ready_to_send`]).
    fn flush(&mut self) -> impl Future<Output = io::Result<()>> + Send;

    /// Requests are queued that a [`Transport::flush`] would now send (a transport that sends
    /// everything at once never has such requests).
    fn ready_to_send(&self) -> bool {
        false
    }

    /// Waits for data and calls `on_message(message, arrival)` for every complete message it
    /// brought; returns after at least one message, or when [`Transport::ready_to_send`]
    /// became true, or with an error. Cancel-safe: dropping the future before it completes
    /// loses nothing.
    fn recv<F: FnMut(&[u8], Instant) + Send>(
        &mut self,
        on_message: &mut F,
    ) -> impl Future<Output = io::Result<()>> + Send;
}

/// A resolved target.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// NDJSON over TCP.
    Tcp(SocketAddr),
    /// MCP Streamable HTTP.
    Http(HttpAddr),
}

async fn lookup(addr: &str) -> anyhow::Result<SocketAddr> {
    tokio::net::lookup_host(addr)
        .await
        .with_context(|| format!("cannot resolve {addr}"))?
        .next()
        .ok_or_else(|| anyhow!("{addr} resolves to no address"))
}

impl Endpoint {
    /// Resolves the target's host name once; `concurrency` is the connections per HTTP session.
    pub async fn resolve(target: &Target, concurrency: usize) -> anyhow::Result<Self> {
        match target {
            Target::Tcp { addr } => Ok(Endpoint::Tcp(lookup(addr).await?)),
            Target::Http { addr, path } => Ok(Endpoint::Http(HttpAddr {
                addr: lookup(addr).await?,
                host: addr.clone(),
                path: path.clone(),
                connections: concurrency,
            })),
        }
    }
}

/// MCP over TCP, one JSON-RPC message per line.
pub struct TcpTransport {
    stream: TcpStream,
    work: Arc<Workload>,
    /// Inbound bytes: `rbuf[start..end]` is a partial line not yet scanned past `scanned`.
    rbuf: Vec<u8>,
    start: usize,
    end: usize,
    /// Outbound bytes queued since the last flush.
    wbuf: Vec<u8>,
}

impl TcpTransport {
    /// Wraps a connected stream (no handshake).
    pub fn new(stream: TcpStream, work: Arc<Workload>) -> io::Result<Self> {
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            work,
            rbuf: vec![0; 64 * 1024],
            start: 0,
            end: 0,
            wbuf: Vec::with_capacity(16 * 1024),
        })
    }

    /// Queues a raw message (adds the newline).
    pub fn queue_raw(&mut self, body: &[u8]) {
        self.wbuf.extend_from_slice(body);
        self.wbuf.push(b'\n');
    }

    /// Makes room for a read: moves a partial line to the front, or grows the buffer.
    fn make_room(&mut self) -> io::Result<()> {
        if self.end < self.rbuf.len() {
            return Ok(());
        }
        if self.start > 0 {
            self.rbuf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        } else if self.rbuf.len() < MAX_MESSAGE {
            let n = (self.rbuf.len() * 2).min(MAX_MESSAGE);
            self.rbuf.resize(n, 0);
        } else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("server message longer than {MAX_MESSAGE} bytes"),
            ));
        }
        Ok(())
    }

    async fn handshake(&mut self, timeout: Duration) -> anyhow::Result<()> {
        self.queue_raw(workload::initialize_body().as_bytes());
        self.flush().await.context("sending initialize")?;
        let mut response: Option<Result<String, String>> = None;
        let deadline = tokio::time::Instant::now() + timeout;
        while response.is_none() {
            tokio::time::timeout_at(
                deadline,
                self.recv(&mut |line: &[u8], _| {
                    if response.is_none()
                        && let Ok(Scanned::Response {
                            id: Some(INITIALIZE_ID),
                            ..
                        }) = scan(line)
                    {
                        response = Some(workload::check_initialize_response(line));
                    }
                }),
            )
            .await
            .map_err(|_| anyhow!("no initialize response within {timeout:?}"))?
            .context("reading the initialize response")?;
        }
        match response {
            Some(Ok(_version)) => {}
            Some(Err(e)) => bail!(e),
            None => bail!("no initialize response"),
        }
        self.queue_raw(workload::initialized_body().as_bytes());
        self.flush()
            .await
            .context("sending notifications/initialized")?;
        Ok(())
    }
}

impl Transport for TcpTransport {
    type Addr = SocketAddr;

    async fn open(
        addr: &SocketAddr,
        work: Arc<Workload>,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| anyhow!("connecting to {addr} timed out after {timeout:?}"))?
            .with_context(|| format!("connecting to {addr}"))?;
        let per_request = work.per_request();
        let mut t = TcpTransport::new(stream, work)?;
        // Revision 2026-07-28 has no handshake: every request carries its `_meta`.
        if !per_request {
            t.handshake(timeout).await?;
        }
        Ok(t)
    }

    fn queue(&mut self, id: u64) {
        self.work.write_line(&mut self.wbuf, id);
    }

    async fn flush(&mut self) -> io::Result<()> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        self.stream.write_all(&self.wbuf).await?;
        self.wbuf.clear();
        Ok(())
    }

    async fn recv<F: FnMut(&[u8], Instant) + Send>(
        &mut self,
        on_message: &mut F,
    ) -> io::Result<()> {
        loop {
            self.make_room()?;
            // The only await: cancelling here loses nothing.
            let n = self.stream.read(&mut self.rbuf[self.end..]).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "server closed the connection",
                ));
            }
            let now = Instant::now();
            // The partial line before the new bytes has no newline: scan the new bytes only.
            let mut search = self.end;
            self.end += n;
            let mut delivered = false;
            while let Some(k) = memchr::memchr(b'\n', &self.rbuf[search..self.end]) {
                let nl = search + k;
                let mut line = &self.rbuf[self.start..nl];
                if let [rest @ .., b'\r'] = line {
                    line = rest;
                }
                if !line.is_empty() {
                    on_message(line, now);
                    delivered = true;
                }
                self.start = nl + 1;
                search = self.start;
            }
            if self.start == self.end {
                self.start = 0;
                self.end = 0;
            }
            if delivered {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A peer that writes `chunks` with pauses, so lines arrive split across reads.
    async fn pair(chunks: Vec<Vec<u8>>) -> TcpTransport {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            for c in chunks {
                s.write_all(&c).await.unwrap();
                s.flush().await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        let s = TcpStream::connect(addr).await.unwrap();
        TcpTransport::new(
            s,
            Arc::new(Workload::tools_call("echo", &serde_json::json!({}))),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn frames_lines_across_reads() {
        let big = format!("{{\"id\":3,\"result\":\"{}\"}}", "x".repeat(200_000));
        let mut chunks = vec![b"{\"id\":1}\r\n{\"id\"".to_vec(), b":2}\n\n".to_vec()];
        for part in big.as_bytes().chunks(50_000) {
            chunks.push(part.to_vec());
        }
        chunks.push(b"\n".to_vec());
        let mut t = pair(chunks).await;
        let mut got: Vec<String> = Vec::new();
        while got.len() < 3 {
            t.recv(&mut |l: &[u8], _| got.push(String::from_utf8_lossy(l).into_owned()))
                .await
                .unwrap();
        }
        assert_eq!(got[0], "{\"id\":1}");
        assert_eq!(got[1], "{\"id\":2}");
        assert_eq!(got[2], big);
        let e = t.recv(&mut |_: &[u8], _| {}).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }
}
