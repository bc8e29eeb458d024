//! SSE framing for Streamable HTTP: the event-id scheme `<stream>:<seq>`, message and priming
//! events, and a session's bounded [`EventLog`] that `Last-Event-ID` resumes from.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A stream of a session: one per SSE-answered request, one for the standalone GET stream.
pub type StreamId = u64;

/// An SSE event id: `<stream>:<seq>`, unique within the session and naming the stream it
/// belongs to (so `Last-Event-ID` resumes the right one). Sequence 0 is a stream's priming
/// event; its messages count from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId {
    /// The stream.
    pub stream: StreamId,
    /// Position in the stream.
    pub seq: u64,
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.stream, self.seq)
    }
}

impl EventId {
    /// Parses `<stream>:<seq>` (what a client sends back as `Last-Event-ID`).
    pub fn parse(s: &str) -> Option<Self> {
        let (stream, seq) = s.trim().split_once(':')?;
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(stream) || !digits(seq) {
            return None;
        }
        Some(Self {
            stream: stream.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

/// An SSE `message` event carrying one JSON-RPC message. The engine's JSON is compact (one
/// line); should a message ever contain a line break, each line gets its own `data:` field, as
/// the SSE format requires.
pub fn sse_message(id: EventId, json: &str) -> String {
    let mut out = String::with_capacity(json.len() + 40);
    out.push_str("event: message\nid: ");
    out.push_str(&id.to_string());
    out.push('\n');
    for line in json.split(['\n', '\r']).filter(|l| !l.is_empty()) {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    if json.is_empty() {
        out.push_str("data: \n");
    }
    out.push('\n');
    out
}

/// The priming event that opens a stream: an id to resume from, the reconnection delay, and
/// an empty `data:` line (without one, EventSource parsers never dispatch the event).
pub fn sse_priming(id: EventId, retry_ms: u64) -> String {
    format!("id: {id}\nretry: {retry_ms}\ndata: \n\n")
}

/// One logged event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedEvent {
    /// Its id.
    pub id: EventId,
    /// The JSON-RPC message.
    pub data: Arc<str>,
}

#[derive(Debug, Default)]
struct StreamRecord {
    next_seq: u64,
    /// When its response was logged.
    finished: Option<Instant>,
    /// The highest sequence number evicted from the log (0: none).
    evicted: u64,
}

/// Default bound of a session's event log: events.
pub const EVENT_LOG_MAX_EVENTS: usize = 1024;
/// Default bound of a session's event log: bytes of message data.
pub const EVENT_LOG_MAX_BYTES: usize = 1 << 20;
/// How long a finished stream stays resumable: a client whose connection broke just before the
/// response reached it (or that the server closed for polling) has this long to come back.
pub const FINISHED_STREAM_RETENTION: Duration = Duration::from_secs(60);

/// A session's bounded log of SSE events for `Last-Event-ID` replay.
///
/// Every event sent on a stream is appended (with a fresh [`EventId`]); when the log is over
/// its bounds the oldest events go first. A stream is *finished* once its response is logged;
/// [`EventLog::purge`] drops finished streams after a retention period (so idle sessions end
/// up keeping nothing), [`EventLog::forget`] drops a stream at once (a cancelled request).
#[derive(Debug)]
pub struct EventLog {
    events: VecDeque<LoggedEvent>,
    bytes: usize,
    max_events: usize,
    max_bytes: usize,
    streams: HashMap<StreamId, StreamRecord>,
    next_stream: StreamId,
}

impl Default for EventLog {
    fn default() -> Self {
        Self::new(EVENT_LOG_MAX_EVENTS, EVENT_LOG_MAX_BYTES)
    }
}

/// What [`EventLog::after`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    /// Events after the given id, oldest first.
    pub events: Vec<LoggedEvent>,
    /// Whether the stream's response is among what was logged (nothing more will come).
    pub finished: bool,
    /// Whether some events after the given id were already evicted.
    pub gap: bool,
}

impl EventLog {
    /// A log holding at most `max_events` events and `max_bytes` bytes of data.
    pub fn new(max_events: usize, max_bytes: usize) -> Self {
        Self {
            events: VecDeque::new(),
            bytes: 0,
            max_events: max_events.max(1),
            max_bytes,
            streams: HashMap::new(),
            next_stream: 1,
        }
    }

    /// Opens a stream; its priming event is `<stream>:0`.
    pub fn open(&mut self) -> StreamId {
        let s = self.next_stream;
        self.next_stream += 1;
        self.streams.insert(
            s,
            StreamRecord {
                next_seq: 1,
                ..StreamRecord::default()
            },
        );
        s
    }

    /// A fresh id on `stream` for an event that is not logged (a priming event when a client
    /// attaches to a stream that already has events).
    pub fn reserve(&mut self, stream: StreamId) -> Option<EventId> {
        let r = self.streams.get_mut(&stream)?;
        let id = EventId {
            stream,
            seq: r.next_seq,
        };
        r.next_seq += 1;
        Some(id)
    }

    /// Logs a message on `stream` and returns its id (`None`: unknown or finished stream).
    pub fn append(&mut self, stream: StreamId, data: Arc<str>) -> Option<EventId> {
        let r = self
            .streams
            .get_mut(&stream)
            .filter(|r| r.finished.is_none())?;
        let id = EventId {
            stream,
            seq: r.next_seq,
        };
        r.next_seq += 1;
        self.bytes += data.len();
        self.events.push_back(LoggedEvent { id, data });
        self.evict();
        Some(id)
    }

    fn evict(&mut self) {
        while self.events.len() > self.max_events
            || (self.bytes > self.max_bytes && self.events.len() > 1)
        {
            let Some(e) = self.events.pop_front() else {
                break;
            };
            self.bytes -= e.data.len();
            let stream = e.id.stream;
            let finished = match self.streams.get_mut(&stream) {
                Some(r) => {
                    r.evicted = r.evicted.max(e.id.seq);
                    r.finished.is_some()
                }
                None => false,
            };
            if finished && !self.events.iter().any(|x| x.id.stream == stream) {
                self.streams.remove(&stream);
            }
        }
    }

    /// Marks `stream` finished at `now`: its response is logged, nothing more will be appended.
    pub fn finish(&mut self, stream: StreamId, now: Instant) {
        if let Some(r) = self.streams.get_mut(&stream) {
            r.finished.get_or_insert(now);
        }
    }

    /// Forgets the streams finished for at least `retention` before `now`.
    pub fn purge(&mut self, now: Instant, retention: Duration) {
        let old: Vec<StreamId> = self
            .streams
            .iter()
            .filter(|(_, r)| {
                r.finished
                    .is_some_and(|t| now.saturating_duration_since(t) >= retention)
            })
            .map(|(s, _)| *s)
            .collect();
        for s in old {
            self.forget(s);
        }
    }

    /// Forgets a stream and its events (its response reached the client).
    pub fn forget(&mut self, stream: StreamId) {
        if self.streams.remove(&stream).is_some() {
            let mut freed = 0;
            self.events.retain(|e| {
                let keep = e.id.stream != stream;
                if !keep {
                    freed += e.data.len();
                }
                keep
            });
            self.bytes -= freed;
        }
        if self.events.is_empty() && self.events.capacity() > 64 {
            self.events = VecDeque::new();
        }
    }

    /// Whether `stream` is known, and if so whether it is finished.
    pub fn stream_finished(&self, stream: StreamId) -> Option<bool> {
        self.streams.get(&stream).map(|r| r.finished.is_some())
    }

    /// The events of `after.stream` that come after `after` (`None`: the log does not know the
    /// stream, or `after` is an id it never issued).
    pub fn after(&self, after: EventId) -> Option<Replay> {
        let r = self.streams.get(&after.stream)?;
        if after.seq >= r.next_seq {
            return None;
        }
        let events: Vec<LoggedEvent> = self
            .events
            .iter()
            .filter(|e| e.id.stream == after.stream && e.id.seq > after.seq)
            .cloned()
            .collect();
        Some(Replay {
            events,
            finished: r.finished.is_some(),
            gap: r.evicted > after.seq,
        })
    }

    /// Logged events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether nothing is logged.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Logged bytes of message data.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Streams the log knows.
    pub fn streams(&self) -> usize {
        self.streams.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_framing() {
        let id = EventId { stream: 3, seq: 9 };
        assert_eq!(id.to_string(), "3:9");
        assert_eq!(EventId::parse("3:9"), Some(id));
        for bad in ["", "3", "3:", ":9", "a:1", "1:2:3", "-1:2", "1:+2"] {
            assert_eq!(EventId::parse(bad), None, "{bad:?}");
        }
        assert_eq!(
            sse_message(id, r#"{"a":1}"#),
            "event: message\nid: 3:9\ndata: {\"a\":1}\n\n"
        );
        assert_eq!(
            sse_message(id, "{\n\"a\":1}"),
            "event: message\nid: 3:9\ndata: {\ndata: \"a\":1}\n\n"
        );
        assert_eq!(
            sse_priming(EventId { stream: 3, seq: 0 }, 1000),
            "id: 3:0\nretry: 1000\ndata: \n\n"
        );
    }

    fn msg(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    #[test]
    fn event_log_replays_one_stream_after_an_id() {
        let mut log = EventLog::default();
        let a = log.open();
        let b = log.open();
        assert_ne!(a, b);
        let a1 = log.append(a, msg("a1")).unwrap();
        let b1 = log.append(b, msg("b1")).unwrap();
        let a2 = log.append(a, msg("a2")).unwrap();
        assert_eq!(a1, EventId { stream: a, seq: 1 });
        assert_eq!(b1, EventId { stream: b, seq: 1 });
        let r = log.after(EventId { stream: a, seq: 0 }).unwrap();
        assert_eq!(
            r.events.iter().map(|e| &*e.data).collect::<Vec<_>>(),
            ["a1", "a2"]
        );
        assert!(!r.finished && !r.gap);
        let r = log.after(a1).unwrap();
        assert_eq!(r.events.len(), 1);
        assert_eq!(r.events[0].id, a2);
        assert!(log.after(a2).unwrap().events.is_empty());
        assert_eq!(
            log.after(EventId { stream: a, seq: 3 }),
            None,
            "never issued"
        );
        assert_eq!(log.after(EventId { stream: 99, seq: 0 }), None);

        log.append(a, msg("response")).unwrap();
        let t0 = Instant::now();
        log.finish(a, t0);
        assert_eq!(
            log.append(a, msg("late")),
            None,
            "finished streams take nothing"
        );
        assert!(log.after(a2).unwrap().finished);
        assert_eq!(log.stream_finished(a), Some(true));

        let p = log.reserve(b).unwrap();
        assert_eq!(p, EventId { stream: b, seq: 2 });
        assert_eq!(log.append(b, msg("b3")).unwrap().seq, 3);
        assert_eq!(log.after(p).unwrap().events.len(), 1);

        log.purge(t0 + Duration::from_secs(59), Duration::from_secs(60));
        assert_eq!(log.stream_finished(a), Some(true), "retained for a while");
        log.purge(t0 + Duration::from_secs(60), Duration::from_secs(60));
        assert_eq!(log.stream_finished(a), None, "then purged");
        assert_eq!(
            log.stream_finished(b),
            Some(false),
            "unfinished streams stay"
        );
        assert_eq!(log.len(), 2);
        assert_eq!(log.bytes(), 4);
        log.forget(b);
        assert!(log.is_empty() && log.streams() == 0);
    }

    #[test]
    fn event_log_is_bounded_and_reports_gaps() {
        let mut log = EventLog::new(3, 1 << 20);
        let a = log.open();
        for i in 0..5 {
            log.append(a, msg(&format!("m{i}"))).unwrap();
        }
        assert_eq!(log.len(), 3);
        let r = log.after(EventId { stream: a, seq: 0 }).unwrap();
        assert_eq!(
            r.events.iter().map(|e| &*e.data).collect::<Vec<_>>(),
            ["m2", "m3", "m4"]
        );
        assert!(r.gap, "m0 and m1 were evicted");
        assert!(!log.after(EventId { stream: a, seq: 2 }).unwrap().gap);

        let mut log = EventLog::new(100, 10);
        let s = log.open();
        log.append(s, msg("123456")).unwrap();
        log.append(s, msg("abcdef")).unwrap();
        assert_eq!((log.len(), log.bytes()), (1, 6));
        // A finished stream whose events are all evicted is forgotten.
        log.finish(s, Instant::now());
        let t = log.open();
        log.append(t, msg("0123456789")).unwrap();
        assert_eq!(log.stream_finished(s), None);
        assert_eq!(log.streams(), 1);
    }
}
