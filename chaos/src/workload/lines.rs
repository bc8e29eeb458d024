//! NDJSON MCP over a byte stream (a TCP connection, or one bidirectional QUIC stream): one
//! JSON-RPC message per line.
//!
//! A reader task owns the read half and hands complete lines over a channel, so the client can
//! tell, *before* it writes a request, whether the peer has already closed the connection (the
//! channel is closed): a request on such a connection is never sent, which keeps an idle
//! connection that a node dropped from turning a definite failure into an indeterminate one.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc::{self, error::TryRecvError};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout_at};

use super::client::CallError;

/// Longest line accepted from a node (a response larger than this is malformed for the
/// workload, whose messages are tiny).
pub const MAX_LINE: usize = 4 * 1024 * 1024;
/// Lines buffered between the reader task and the client.
const INBOX: usize = 64;

/// What the reader task hands over: a line, or why the stream ended abnormally. The channel
/// closing without an error is a clean end of stream.
type Inbound = Result<String, String>;

/// One NDJSON connection.
pub struct LineConn {
    write: Box<dyn AsyncWrite + Send + Unpin>,
    inbox: mpsc::Receiver<Inbound>,
    reader: JoinHandle<()>,
    /// The QUIC connection the stream belongs to (closed when this is dropped).
    quic: Option<quinn::Connection>,
    /// Set once the connection is known to be unusable (closed, or a request's fate on it is
    /// unknown): the client then reconnects.
    broken: bool,
}

impl LineConn {
    /// Wraps the two halves of a stream; `quic` is the connection a QUIC stream belongs to.
    pub fn new(
        read: impl AsyncRead + Send + Unpin + 'static,
        write: impl AsyncWrite + Send + Unpin + 'static,
        quic: Option<quinn::Connection>,
    ) -> Self {
        let (tx, inbox) = mpsc::channel(INBOX);
        let reader = tokio::spawn(read_lines(read, tx));
        Self {
            write: Box::new(write),
            inbox,
            reader,
            quic,
            broken: false,
        }
    }

    /// Whether a request could be sent now: drops anything that arrived unasked (a late
    /// response to a request that timed out, a notification) and checks that the peer has not
    /// closed the stream.
    pub fn usable(&mut self) -> bool {
        if self.broken {
            return false;
        }
        if let Some(q) = &self.quic
            && q.close_reason().is_some()
        {
            self.broken = true;
            return false;
        }
        loop {
            match self.inbox.try_recv() {
                Ok(Ok(_)) => continue,
                Ok(Err(_)) | Err(TryRecvError::Disconnected) => {
                    self.broken = true;
                    return false;
                }
                Err(TryRecvError::Empty) => return true,
            }
        }
    }

    /// Sends a notification (no answer expected).
    pub async fn notify(&mut self, msg: &Value, deadline: Instant) -> Result<(), CallError> {
        if !self.usable() {
            return Err(CallError::NotSent("the connection was closed".into()));
        }
        self.send(msg, deadline).await
    }

    /// Sends request `msg` (whose id is `id`) and returns the response message carrying that
    /// id (a `result` or an `error`); other messages on the way are skipped.
    pub async fn request(
        &mut self,
        msg: &Value,
        id: u64,
        deadline: Instant,
    ) -> Result<Value, CallError> {
        if !self.usable() {
            return Err(CallError::NotSent("the connection was closed".into()));
        }
        let started = Instant::now();
        let result = match self.send(msg, deadline).await {
            Ok(()) => self.await_response(id, deadline).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(m) => Ok(m),
            Err(e) => {
                // After a timeout the response may still come; after a drop or garbage nothing
                // on this connection can be trusted: either way, start afresh.
                self.broken = true;
                Err(match e {
                    CallError::Timeout(_) => CallError::Timeout(started.elapsed()),
                    e => e,
                })
            }
        }
    }

    async fn send(&mut self, msg: &Value, deadline: Instant) -> Result<(), CallError> {
        let mut line = msg.to_string().into_bytes();
        line.push(b'\n');
        let write = async {
            self.write.write_all(&line).await?;
            self.write.flush().await
        };
        match timeout_at(deadline, write).await {
            Ok(Ok(())) => Ok(()),
            // Part of the line may have reached the node: the request's fate is unknown (the
            // node acts on complete lines only, but whether the newline got out is unknown).
            Ok(Err(e)) => {
                self.broken = true;
                Err(CallError::Dropped(format!("while sending: {e}")))
            }
            Err(_) => {
                self.broken = true;
                Err(CallError::Timeout(Duration::ZERO))
            }
        }
    }

    async fn await_response(&mut self, id: u64, deadline: Instant) -> Result<Value, CallError> {
        loop {
            let line = match timeout_at(deadline, self.inbox.recv()).await {
                Err(_) => return Err(CallError::Timeout(Duration::ZERO)),
                Ok(None) => {
                    return Err(CallError::Dropped(
                        "the connection closed before the response".into(),
                    ));
                }
                Ok(Some(Err(e))) => return Err(CallError::Dropped(e)),
                Ok(Some(Ok(line))) => line,
            };
            let msg: Value = serde_json::from_str(&line)
                .map_err(|e| CallError::Malformed(format!("not JSON ({e}): {}", excerpt(&line))))?;
            if msg.get("id").and_then(Value::as_u64) == Some(id)
                && (msg.get("result").is_some() || msg.get("error").is_some())
            {
                return Ok(msg);
            }
            // A notification, a server → client request, or a late response: not ours.
        }
    }
}

impl Drop for LineConn {
    fn drop(&mut self) {
        self.reader.abort();
        if let Some(q) = &self.quic {
            q.close(0u32.into(), b"client done");
        }
    }
}

/// The first 200 characters of `s` (error messages stay readable).
pub fn excerpt(s: &str) -> String {
    match s.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Reads lines until the end of the stream, an error, or the client going away.
async fn read_lines(read: impl AsyncRead + Send + Unpin, tx: mpsc::Sender<Inbound>) {
    let mut reader = BufReader::new(read);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let mut limited = (&mut reader).take(MAX_LINE as u64 + 1);
        let item = match limited.read_until(b'\n', &mut buf).await {
            Ok(0) => return,
            Ok(_) if buf.last() != Some(&b'\n') => {
                let why = if buf.len() > MAX_LINE {
                    format!("a line longer than {MAX_LINE} bytes")
                } else {
                    "the connection closed in the middle of a line".to_string()
                };
                let _ = tx.send(Err(why)).await;
                return;
            }
            Ok(_) => {
                buf.pop();
                if buf.last() == Some(&b'\r') {
                    buf.pop();
                }
                match String::from_utf8(std::mem::take(&mut buf)) {
                    Ok(l) if l.trim().is_empty() => continue,
                    Ok(l) => Ok(l),
                    Err(_) => Err("a line that is not UTF-8".to_string()),
                }
            }
            Err(e) => Err(format!("read failed: {e}")),
        };
        let end = item.is_err();
        if tx.send(item).await.is_err() || end {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tokio::io::duplex;

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    #[tokio::test]
    async fn a_response_is_matched_by_id_past_notifications_and_other_ids() {
        let (client, server) = duplex(1 << 16);
        let (cr, cw) = tokio::io::split(client);
        let (sr, mut sw) = tokio::io::split(server);
        let mut conn = LineConn::new(cr, cw, None);
        let server = tokio::spawn(async move {
            let mut lines = BufReader::new(sr).lines();
            let req = lines.next_line().await.expect("read").expect("a line");
            let req: Value = serde_json::from_str(&req).expect("json");
            assert_eq!(req["method"], "ping");
            sw.write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\"}\n\n")
                .await
                .expect("write");
            sw.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":6,\"result\":{}}\r\n")
                .await
                .expect("write");
            sw.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"x\":1}}\n")
                .await
                .expect("write");
            sw
        });
        let r = conn
            .request(&json!({"jsonrpc":"2.0","id":7,"method":"ping"}), 7, soon())
            .await
            .expect("response");
        assert_eq!(r["result"]["x"], 1);
        let _sw = server.await.expect("server");
        assert!(conn.usable());
    }

    #[tokio::test]
    async fn a_closed_peer_is_noticed_before_sending() {
        let (client, server) = duplex(1 << 16);
        let (cr, cw) = tokio::io::split(client);
        let mut conn = LineConn::new(cr, cw, None);
        drop(server);
        // The reader task sees the end of stream; wait for it through the channel, bounded.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while conn.usable() {
            assert!(std::time::Instant::now() < deadline, "EOF never noticed");
            tokio::task::yield_now().await;
        }
        let e = conn
            .request(&json!({"jsonrpc":"2.0","id":1,"method":"ping"}), 1, soon())
            .await
            .expect_err("not sent");
        assert!(matches!(e, CallError::NotSent(_)), "{e:?}");
        assert!(e.is_definite());
    }

    #[tokio::test]
    async fn eof_after_sending_is_indeterminate_and_garbage_is_malformed() {
        let (client, server) = duplex(1 << 16);
        let (cr, cw) = tokio::io::split(client);
        let mut conn = LineConn::new(cr, cw, None);
        let server = tokio::spawn(async move {
            let (sr, sw) = tokio::io::split(server);
            let mut lines = BufReader::new(sr).lines();
            let _ = lines.next_line().await;
            drop(sw);
            drop(lines);
        });
        let e = conn
            .request(&json!({"jsonrpc":"2.0","id":1,"method":"ping"}), 1, soon())
            .await
            .expect_err("dropped");
        assert!(matches!(e, CallError::Dropped(_)), "{e:?}");
        assert!(!e.is_definite());
        server.await.expect("server");

        let (client, server) = duplex(1 << 16);
        let (cr, cw) = tokio::io::split(client);
        let mut conn = LineConn::new(cr, cw, None);
        let server = tokio::spawn(async move {
            let (sr, mut sw) = tokio::io::split(server);
            let mut lines = BufReader::new(sr).lines();
            let _ = lines.next_line().await;
            sw.write_all(b"{\"id\":1,\"res\n").await.expect("write");
            (lines, sw)
        });
        let e = conn
            .request(&json!({"jsonrpc":"2.0","id":1,"method":"ping"}), 1, soon())
            .await
            .expect_err("malformed");
        assert!(matches!(e, CallError::Malformed(_)), "{e:?}");
        assert!(!e.is_definite());
        assert!(!conn.usable());
        let _keep = server.await.expect("server");
    }

    #[tokio::test]
    async fn no_answer_times_out_at_the_deadline() {
        let (client, _server) = duplex(1 << 16);
        let (cr, cw) = tokio::io::split(client);
        let mut conn = LineConn::new(cr, cw, None);
        let t0 = Instant::now();
        // The outer bound only keeps a broken deadline from hanging the test.
        let e = tokio::time::timeout(
            Duration::from_secs(60),
            conn.request(
                &json!({"jsonrpc":"2.0","id":1,"method":"ping"}),
                1,
                t0 + Duration::from_millis(100),
            ),
        )
        .await
        .expect("the request ends at its deadline")
        .expect_err("timeout");
        assert!(matches!(e, CallError::Timeout(_)), "{e:?}");
        // A lower bound: a timer never fires early, however busy the machine.
        assert!(t0.elapsed() >= Duration::from_millis(100));
        assert!(!conn.usable(), "a timed-out connection is not reused");
    }
}
