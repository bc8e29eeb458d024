//! One reply abstraction for every transport: a client's outbound queue of typed items
//! ([`Outbound`]), and a [`Responder`] that guarantees each request gets exactly one response,
//! encoded as the request's revision asks ([`Shape`]).

use serde_json::Value;
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::mpsc::{self, error::TrySendError};

use crate::jsonrpc::{ErrorObject, Id, code};
use crate::server::Shape;

/// One item of a client's outbound queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    /// A notification or a server → client request, encoded (one line).
    Message(String),
    /// The response to a request, encoded, and the HTTP status to answer with when it is the
    /// only message of an HTTP reply (so a transport never parses what it sends).
    Response {
        /// The encoded response.
        body: String,
        /// HTTP status (200, or 4xx for the errors revision 2026-07-28 ties to one).
        status: u16,
        /// Whether it is a result (not an error).
        ok: bool,
    },
    /// "Close the current response stream now" (Streamable HTTP SSE polling, SEP-1699): the
    /// client resumes it with `Last-Event-ID`. Line transports skip it.
    CloseStream,
    /// The request was cancelled: no response will come (a response stream ends). Line
    /// transports skip it.
    Cancelled,
}

impl Outbound {
    /// The encoded message, if the item is one.
    pub fn text(&self) -> Option<&str> {
        match self {
            Outbound::Message(m) | Outbound::Response { body: m, .. } => Some(m),
            Outbound::CloseStream | Outbound::Cancelled => None,
        }
    }
}

/// A client's bounded outbound queue.
pub type ClientSink = mpsc::Sender<Outbound>;

/// Puts a notification (or a server → client request) on the queue; drops it if the client is
/// not reading (notifications are lossy under backpressure, responses never are).
pub fn send_lossy(sink: &ClientSink, line: String) -> bool {
    match sink.try_send(Outbound::Message(line)) {
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
fn send_reliable(sink: &ClientSink, item: Outbound, permit: Option<OwnedSemaphorePermit>) {
    match sink.try_send(item) {
        Ok(()) | Err(TrySendError::Closed(_)) => {}
        Err(TrySendError::Full(item)) => {
            let sink = sink.clone();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = sink.send(item).await;
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
    shape: Shape,
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
            shape: Shape::Session,
            done: false,
        }
    }

    /// Encodes the answer as `shape` says (revision 2026-07-28's decoration).
    pub fn with_shape(mut self, shape: Shape) -> Self {
        self.shape = shape;
        self
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
        let a = self.shape.encode(&self.id, result);
        send_reliable(
            &self.sink,
            Outbound::Response {
                body: a.body,
                status: a.status,
                ok: a.ok,
            },
            self.permit.take(),
        );
    }

    /// Sends an error response.
    pub fn error(self, e: ErrorObject) {
        self.respond(Err(e));
    }

    /// Ends the request without a response (it was cancelled, as MCP asks); a response
    /// stream waiting for it ends.
    pub fn cancelled(mut self) {
        self.done = true;
        let _ = self.sink.try_send(Outbound::Cancelled);
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if !self.done {
            let e = ErrorObject::new(
                code::INTERNAL_ERROR,
                "Internal error: the request was aborted (the actor serving it stopped)",
            );
            let a = self.shape.encode(&self.id, Err(e));
            send_reliable(
                &self.sink,
                Outbound::Response {
                    body: a.body,
                    status: a.status,
                    ok: false,
                },
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
            Outbound::Response {
                body: r#"{"jsonrpc":"2.0","id":1,"result":{"x":1}}"#.into(),
                status: 200,
                ok: true
            }
        );
        drop(Responder::new(Id::Num(2), tx.clone(), None));
        let item = rx.recv().await.unwrap();
        let line = item.text().unwrap();
        assert!(
            line.contains(r#""id":2"#) && line.contains("-32603"),
            "{line}"
        );
        Responder::new(Id::Num(3), tx.clone(), None).cancelled();
        drop(tx);
        assert_eq!(
            rx.recv().await,
            Some(Outbound::Cancelled),
            "a cancelled request gets no response, only the end of its stream"
        );
        assert_eq!(rx.recv().await, None);
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
        assert_eq!(rx.recv().await.unwrap(), Outbound::Message("n1".into()));
        assert!(
            rx.recv()
                .await
                .unwrap()
                .text()
                .unwrap()
                .contains(r#""id":1"#)
        );
    }
}
