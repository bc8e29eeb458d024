//! One reply abstraction for every transport: a client's outbound queue, and a [`Responder`]
//! that guarantees each request gets exactly one response.

use serde_json::Value;
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::mpsc::{self, error::TrySendError};

use crate::jsonrpc::{self, ErrorObject, Id, code};

/// A client's bounded outbound queue of encoded JSON-RPC messages (one per line/event).
pub type ClientSink = mpsc::Sender<String>;

/// A control item on a [`ClientSink`], not a message: "close the current response stream".
/// Stream transports (Streamable HTTP) act on it; line transports skip it.
pub const CLOSE_STREAM: &str = "";

/// Whether an outbound item is the [`CLOSE_STREAM`] control item.
pub fn is_close_stream(item: &str) -> bool {
    item.is_empty()
}

/// Puts a notification (or a server → client request) on the queue; drops it if the client is
/// not reading (notifications are lossy under backpressure, responses never are).
pub fn send_lossy(sink: &ClientSink, line: String) -> bool {
    match sink.try_send(line) {
        Ok(()) => true,
        Err(TrySendError::Full(_)) => {
            tracing::debug!("client outbound queue full: notification dropped");
            false
        }
        Err(TrySendError::Closed(_)) => false,
    }
}

/// Queues a response without blocking; if the queue is momentarily full, a task waits for room
/// (the per-connection in-flight limit bounds how many such tasks can exist).
/// The in-flight `permit` is released only once the line is queued, so a reader that waits for
/// all permits (end of input) knows every answer is in the queue.
fn send_reliable(sink: &ClientSink, line: String, permit: Option<OwnedSemaphorePermit>) {
    match sink.try_send(line) {
        Ok(()) | Err(TrySendError::Closed(_)) => {}
        Err(TrySendError::Full(line)) => {
            let sink = sink.clone();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = sink.send(line).await;
                    drop(permit);
                });
            }
        }
    }
}

/// The obligation to answer one request. Answer it with [`Responder::respond`]; if it is dropped
/// unanswered (its worker crashed or was killed, its session stopped, its message was dropped),
/// it answers with an internal error itself. [`Responder::cancelled`] ends it without an answer,
/// as MCP asks for cancelled requests.
pub struct Responder {
    id: Id,
    sink: ClientSink,
    permit: Option<OwnedSemaphorePermit>,
    done: bool,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder")
            .field("id", &self.id)
            .field("done", &self.done)
            .finish()
    }
}

impl Responder {
    /// A responder for request `id`; `permit` (the connection's in-flight slot) is released with it.
    pub fn new(id: Id, sink: ClientSink, permit: Option<OwnedSemaphorePermit>) -> Self {
        Self {
            id,
            sink,
            permit,
            done: false,
        }
    }

    /// The request id.
    pub fn id(&self) -> &Id {
        &self.id
    }

    /// The client's queue (for notifications tied to this request).
    pub fn sink(&self) -> &ClientSink {
        &self.sink
    }

    /// Sends the response.
    pub fn respond(mut self, result: Result<Value, ErrorObject>) {
        self.done = true;
        let line = match &result {
            Ok(v) => jsonrpc::encode_result(&self.id, v),
            Err(e) => jsonrpc::encode_error(Some(&self.id), e),
        };
        send_reliable(&self.sink, line, self.permit.take());
    }

    /// Sends an error response.
    pub fn error(self, e: ErrorObject) {
        self.respond(Err(e));
    }

    /// Ends the request without a response (it was cancelled).
    pub fn cancelled(mut self) {
        self.done = true;
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if !self.done {
            let e = ErrorObject::new(
                code::INTERNAL_ERROR,
                "Internal error: the request was aborted (the actor serving it stopped)",
            );
            send_reliable(
                &self.sink,
                jsonrpc::encode_error(Some(&self.id), &e),
                self.permit.take(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn responds_once_and_dropping_unanswered_sends_an_error() {
        let (tx, mut rx) = mpsc::channel(8);
        Responder::new(Id::Num(1), tx.clone(), None).respond(Ok(json!({"x": 1})));
        assert_eq!(
            rx.recv().await.unwrap(),
            r#"{"jsonrpc":"2.0","id":1,"result":{"x":1}}"#
        );
        drop(Responder::new(Id::Num(2), tx.clone(), None));
        let line = rx.recv().await.unwrap();
        assert!(
            line.contains(r#""id":2"#) && line.contains("-32603"),
            "{line}"
        );
        Responder::new(Id::Num(3), tx.clone(), None).cancelled();
        drop(tx);
        assert_eq!(
            rx.recv().await,
            None,
            "a cancelled request gets no response"
        );
    }

    #[tokio::test]
    async fn a_full_queue_delays_a_response_but_does_not_lose_it() {
        let (tx, mut rx) = mpsc::channel(1);
        assert!(send_lossy(&tx, "n1".into()));
        assert!(
            !send_lossy(&tx, "n2".into()),
            "notifications are dropped when full"
        );
        Responder::new(Id::Num(1), tx.clone(), None).respond(Ok(json!(1)));
        assert_eq!(rx.recv().await.unwrap(), "n1");
        assert!(rx.recv().await.unwrap().contains(r#""id":1"#));
    }
}
