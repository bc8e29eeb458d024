//! The SSE streams of a 2025-11-25 session: what the HTTP transport keeps *with the session*
//! ([`HttpStreams`], the session's [`TransportState`]): its event log, the streams whose task
//! runs, and its standalone stream. The node holds no table of sessions: a request names its
//! session, the [`Router`] reaches it, and the session hands its streams over
//! ([`HttpStreams::of`]).
//!
//! A request whose first outbound item is not its response becomes an SSE stream: a
//! [`StreamTask`] logs every message before writing it (with an event id `<stream>:<seq>`), so a
//! client that loses the connection resumes with `Last-Event-ID` and misses nothing; a
//! disconnect is not a cancellation on this revision. The stream ends with the response, or
//! without one when the request is cancelled or the session ends.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use erlmcp_actors::route::Router;
use erlmcp_actors::session::{SessionMsg, TransportState};
use erlmcp_runtime::http::{self as h, EventId, EventLog, HttpError, StreamId};
use erlmcp_runtime::jsonrpc::ErrorObject;
use erlmcp_runtime::reply::{ClientSink, Outbound};
use erlmcp_runtime::session::SessionState;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// A comment is written on a stream that has been quiet this long.
pub const KEEPALIVE: Duration = Duration::from_secs(15);
/// SSE frames buffered per connected stream before its writer waits for the client.
pub const BODY_QUEUE: usize = 64;
/// How long the session may take to hand over its streams.
const HANDOVER_TIMEOUT: Duration = Duration::from_secs(5);

/// A connected client's end of a stream: SSE frames for its HTTP response body.
pub type BodyTx = mpsc::Sender<Bytes>;

/// Where a newly attached client starts.
pub enum AttachAt {
    /// The stream's start: its priming event `<stream>:0`.
    Start,
    /// Now: a fresh priming event, nothing replayed (a GET without `Last-Event-ID`).
    Now,
    /// After this event: replay what the log has after it (a GET with `Last-Event-ID`).
    After(EventId),
}

struct Streams {
    log: EventLog,
    /// Attach channels of the streams whose task runs.
    live: HashMap<StreamId, mpsc::Sender<(BodyTx, AttachAt)>>,
    /// The standalone stream and the sink the session sends unsolicited messages to.
    standalone: Option<(StreamId, ClientSink)>,
}

/// The SSE state of one session (see the module docs).
pub struct HttpStreams {
    /// Whether streams start with a priming event (the session negotiated 2025-11-25 or later).
    primes: bool,
    streams: Mutex<Streams>,
    /// Cancelled when the session ends for good: every stream closes.
    ended: CancellationToken,
}

impl TransportState for HttpStreams {
    fn session_ended(&self) {
        self.ended.cancel();
    }
    fn in_use(&self) -> bool {
        !self.lock().live.is_empty()
    }
    fn standalone(&self) -> Option<ClientSink> {
        self.lock()
            .standalone
            .as_ref()
            .map(|(_, sink)| sink.clone())
            .filter(|sink| !sink.is_closed())
    }
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

fn make(state: &SessionState) -> Arc<dyn TransportState> {
    Arc::new(HttpStreams {
        primes: h::priming_applies(&state.protocol_version),
        streams: Mutex::new(Streams {
            log: EventLog::default(),
            live: HashMap::new(),
            standalone: None,
        }),
        ended: CancellationToken::new(),
    })
}

impl HttpStreams {
    /// The streams of session `id`, from the session itself (made on first use). An unknown
    /// session is 404.
    pub async fn of(router: &Router, id: &Arc<str>) -> Result<Arc<HttpStreams>, HttpError> {
        let (tx, rx) = oneshot::channel();
        router.send(id, SessionMsg::Transport(make, tx.into()));
        let state = match tokio::time::timeout(HANDOVER_TIMEOUT, rx).await {
            Ok(Ok(Ok(state))) => state,
            Ok(Ok(Err(e))) if erlmcp_actors::route::is_unknown_session(&e) => {
                return Err(h::unknown_session(id));
            }
            Ok(Ok(Err(e))) => return Err(unavailable(e)),
            Ok(Err(_)) | Err(_) => {
                return Err(unavailable(ErrorObject::internal(
                    "the session did not hand over its streams in time",
                )));
            }
        };
        state.into_any().downcast::<HttpStreams>().map_err(|_| {
            unavailable(ErrorObject::internal(
                "the session holds another transport's state",
            ))
        })
    }

    fn lock(&self) -> MutexGuard<'_, Streams> {
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes what a newly attached client gets first (priming event or replay); returns the
    /// body if the client is still there.
    async fn attach(&self, stream: StreamId, body: BodyTx, from: AttachAt) -> Option<BodyTx> {
        let frames: Vec<Bytes> = {
            let mut st = self.lock();
            match from {
                AttachAt::Start if self.primes => {
                    vec![h::sse_priming(EventId { stream, seq: 0 }, h::SSE_RETRY_MS).into()]
                }
                AttachAt::Now if self.primes => st
                    .log
                    .reserve(stream)
                    .map(|id| h::sse_priming(id, h::SSE_RETRY_MS).into())
                    .into_iter()
                    .collect(),
                AttachAt::Start | AttachAt::Now => Vec::new(),
                AttachAt::After(after) => replay_frames(&st.log, after),
            }
        };
        for f in frames {
            if !self.send(&body, f).await {
                return None;
            }
        }
        Some(body)
    }

    /// Sends a frame to a connected client; false when it is gone (or the session ended).
    async fn send(&self, body: &BodyTx, frame: Bytes) -> bool {
        tokio::select! {
            r = body.send(frame) => r.is_ok(),
            _ = self.ended.cancelled() => false,
        }
    }

    /// Makes a request's outbound queue (`first` already taken from it) an SSE stream; the
    /// client's body gets the frames.
    pub fn stream_request(
        self: &Arc<Self>,
        first: Outbound,
        rx: mpsc::Receiver<Outbound>,
        drain: &crate::pump::Drain,
    ) -> mpsc::Receiver<Bytes> {
        let (attach_tx, attach_rx) = mpsc::channel(4);
        let stream = {
            let mut st = self.lock();
            // Finished streams past their retention go when a new one opens (a stream is opened
            // only when a request sends something before its response, so this is rare).
            st.log.purge(Instant::now(), h::FINISHED_STREAM_RETENTION);
            let stream = st.log.open();
            st.live.insert(stream, attach_tx);
            stream
        };
        let (body, frames) = mpsc::channel(BODY_QUEUE);
        let task = StreamTask {
            session: self.clone(),
            stream,
            request: true,
            drain: drain.token.clone(),
        };
        drain
            .tracker
            .spawn(task.run(Some(first), rx, attach_rx, (body, AttachAt::Start)));
        frames
    }

    /// The session's standalone stream for a GET without `Last-Event-ID` (created on first use;
    /// a later GET takes it over). `Some(sink)`: a new stream, whose sink the session must be
    /// told ([`SessionMsg::AttachStandalone`]).
    pub async fn standalone(
        self: &Arc<Self>,
        outbound_queue: usize,
        drain: &crate::pump::Drain,
    ) -> Result<(mpsc::Receiver<Bytes>, Option<ClientSink>), HttpError> {
        let (body, frames) = mpsc::channel(BODY_QUEUE);
        // Take over the running standalone stream, or start one (atomically: two GETs at once
        // must not start two).
        let existing = {
            let mut st = self.lock();
            let running = st
                .standalone
                .as_ref()
                .and_then(|(id, _)| st.live.get(id))
                .cloned();
            match running {
                Some(attach) => Ok(attach),
                None => {
                    let stream = st.log.open();
                    let (attach_tx, attach_rx) = mpsc::channel(4);
                    let (sink, rx) = mpsc::channel(outbound_queue.max(1));
                    st.live.insert(stream, attach_tx);
                    st.standalone = Some((stream, sink.clone()));
                    Err((stream, attach_rx, sink, rx))
                }
            }
        };
        match existing {
            Ok(attach) => {
                if attach.send((body, AttachAt::Now)).await.is_err() {
                    return Err(unavailable(ErrorObject::internal(
                        "the standalone stream ended while it was being taken over; retry",
                    )));
                }
                Ok((frames, None))
            }
            Err((stream, attach_rx, sink, rx)) => {
                let task = StreamTask {
                    session: self.clone(),
                    stream,
                    request: false,
                    drain: drain.token.clone(),
                };
                drain
                    .tracker
                    .spawn(task.run(None, rx, attach_rx, (body, AttachAt::Start)));
                Ok((frames, Some(sink)))
            }
        }
    }

    /// The rest of the stream event `last` belongs to (a GET with `Last-Event-ID`).
    pub async fn resume(
        self: &Arc<Self>,
        last: &str,
        drain: &crate::pump::Drain,
    ) -> Result<mpsc::Receiver<Bytes>, HttpError> {
        let Some(after) = EventId::parse(last) else {
            return Err(HttpError::bad_request(format!(
                "Bad Request: invalid Last-Event-ID {last:?} (this server's event ids look like 3:7)"
            )));
        };
        let (body, frames) = mpsc::channel(BODY_QUEUE);
        let attach = {
            let st = self.lock();
            if st.log.after(after).is_none() {
                return Err(HttpError::bad_request(format!(
                    "Bad Request: Last-Event-ID {last:?} names no stream of this session that can be resumed (finished too long ago, or never issued)"
                )));
            }
            st.live.get(&after.stream).cloned()
        };
        let body = match attach {
            Some(attach) => match attach.send((body, AttachAt::After(after))).await {
                Ok(()) => return Ok(frames),
                // The stream ended meanwhile: everything is in the log now.
                Err(mpsc::error::SendError((body, _))) => body,
            },
            None => body,
        };
        // A finished stream: replay the rest of it.
        let frames_now = replay_frames(&self.lock().log, after);
        drain.tracker.spawn(async move {
            for f in frames_now {
                if body.send(f).await.is_err() {
                    break;
                }
            }
        });
        Ok(frames)
    }
}

fn unavailable(e: ErrorObject) -> HttpError {
    HttpError::new(503, e.code, e.message)
}

fn replay_frames(log: &EventLog, after: EventId) -> Vec<Bytes> {
    match log.after(after) {
        Some(r) => {
            if r.gap {
                tracing::debug!(%after, "resumed stream lost events to the log bound");
            }
            r.events
                .iter()
                .map(|e| h::sse_message(e.id, &e.data).into())
                .collect()
        }
        None => Vec::new(),
    }
}

/// Drives one stream: logs every message the session sends on it, writes it to the attached
/// client (if one is), takes over new clients (resumption), and ends with the response.
struct StreamTask {
    session: Arc<HttpStreams>,
    stream: StreamId,
    /// A request's stream (ends with its response); false: the standalone stream.
    request: bool,
    /// The node is shutting down (ends the standalone stream; request streams finish).
    drain: CancellationToken,
}

enum End {
    /// The response was logged (it stays resumable for a while, in case the client's
    /// connection broke before it arrived).
    Responded,
    /// No response will come (the request was cancelled), or the session or node is ending.
    Abandoned,
}

impl StreamTask {
    async fn run(
        self,
        first: Option<Outbound>,
        mut rx: mpsc::Receiver<Outbound>,
        mut attach: mpsc::Receiver<(BodyTx, AttachAt)>,
        client: (BodyTx, AttachAt),
    ) {
        let s = self.session.clone();
        let mut body = s.attach(self.stream, client.0, client.1).await;
        let mut keepalive =
            tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let end = match first {
            Some(item) => self.deliver(item, &mut body).await,
            None => None,
        };
        let end = match end {
            Some(e) => e,
            None => loop {
                tokio::select! {
                    biased;
                    _ = s.ended.cancelled() => break End::Abandoned,
                    _ = self.drain.cancelled(), if !self.request => break End::Abandoned,
                    Some((b, from)) = attach.recv() => {
                        body = s.attach(self.stream, b, from).await;
                        keepalive.reset();
                    }
                    item = rx.recv() => match item {
                        None => break End::Abandoned,
                        Some(item) => {
                            if let Some(e) = self.deliver(item, &mut body).await {
                                break e;
                            }
                            keepalive.reset();
                        }
                    },
                    _ = keepalive.tick(), if body.is_some() => {
                        if let Some(b) = &body
                            && !s.send(b, Bytes::from_static(h::SSE_KEEPALIVE.as_bytes())).await
                        {
                            body = None;
                        }
                    }
                }
            },
        };
        drop(body);
        self.end(end, attach).await;
    }

    /// Logs and writes one item; `Some` when the stream is over.
    async fn deliver(&self, item: Outbound, body: &mut Option<BodyTx>) -> Option<End> {
        let (data, is_response) = match item {
            // SSE polling: end this HTTP response now; the client resumes with Last-Event-ID.
            Outbound::CloseStream => {
                *body = None;
                return None;
            }
            Outbound::Cancelled if self.request => return Some(End::Abandoned),
            Outbound::Cancelled => return None,
            Outbound::Message(m) => (m, false),
            Outbound::Response { body: m, .. } => (m, self.request),
        };
        let data: Arc<str> = Arc::from(data);
        let event = {
            let mut st = self.session.lock();
            let e = st.log.append(self.stream, data.clone());
            if is_response {
                st.log.finish(self.stream, Instant::now());
            }
            e
        };
        if let (Some(b), Some(event)) = (body.as_ref(), event)
            && !self
                .session
                .send(b, h::sse_message(event, &data).into())
                .await
        {
            *body = None;
        }
        is_response.then_some(End::Responded)
    }

    /// Unregisters the stream; clients that attached meanwhile get the rest from the log.
    async fn end(self, end: End, mut attach: mpsc::Receiver<(BodyTx, AttachAt)>) {
        let s = &self.session;
        {
            let mut st = s.lock();
            st.live.remove(&self.stream);
            if st
                .standalone
                .as_ref()
                .is_some_and(|(id, _)| *id == self.stream)
            {
                st.standalone = None;
            }
            st.log.finish(self.stream, Instant::now());
        }
        attach.close();
        let mut pending = Vec::new();
        while let Ok(p) = attach.try_recv() {
            pending.push(p);
        }
        if let End::Responded = end {
            for (b, from) in pending {
                drop(s.attach(self.stream, b, from).await);
            }
        } else {
            // No response will come: nothing to resume.
            s.lock().log.forget(self.stream);
        }
    }
}
