//! Counting and reporting: sessions record into a few shared parts (one lock per received batch,
//! not per request); the summary merges them.

use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use crate::duration::format_duration;
use crate::procstat::CpuUsage;

/// Highest latency the histograms track (larger values are clamped).
pub const MAX_LATENCY: Duration = Duration::from_secs(60);

/// Errors by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorCounts {
    /// JSON-RPC error responses.
    pub jsonrpc: u64,
    /// Results with `isError: true` (the tool failed).
    pub is_error: u64,
    /// Connection failures (connect, read, write, server closed).
    pub transport: u64,
    /// Requests without a response within `--timeout`.
    pub timeout: u64,
    /// Lines from the server that are not JSON objects.
    pub invalid: u64,
}

impl ErrorCounts {
    /// All errors.
    pub fn total(&self) -> u64 {
        self.jsonrpc + self.is_error + self.transport + self.timeout + self.invalid
    }

    /// Adds `o`.
    pub fn add(&mut self, o: &ErrorCounts) {
        self.jsonrpc += o.jsonrpc;
        self.is_error += o.is_error;
        self.transport += o.transport;
        self.timeout += o.timeout;
        self.invalid += o.invalid;
    }
}

/// A session's results since its last flush.
#[derive(Debug, Default)]
pub struct Batch {
    /// Latencies (ns) of responses inside the measured window.
    pub latencies: Vec<u64>,
    /// Responses received (any time).
    pub responses: u64,
    /// Responses received inside the measured window.
    pub measured: u64,
    /// Errors inside the measured window.
    pub errors: ErrorCounts,
    /// Errors any time (progress lines).
    pub errors_any: u64,
}

impl Batch {
    /// Nothing to flush.
    pub fn is_empty(&self) -> bool {
        self.responses == 0 && self.errors_any == 0
    }
}

/// One shared accumulator.
pub struct Part {
    /// Latency in nanoseconds.
    pub hist: Histogram<u64>,
    /// See [`Batch`].
    pub responses: u64,
    /// See [`Batch`].
    pub measured: u64,
    /// See [`Batch`].
    pub errors: ErrorCounts,
    /// See [`Batch`].
    pub errors_any: u64,
}

/// A new latency histogram (1 ns .. [`MAX_LATENCY`], 3 significant digits).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY.as_nanos() as u64, 3)
        .expect("constant histogram bounds are valid")
}

/// The shared accumulators of a run.
pub struct Collector {
    parts: Vec<Mutex<Part>>,
}

impl Collector {
    /// `n` parts (sessions spread over them).
    pub fn new(n: usize) -> Self {
        Self {
            parts: (0..n.max(1))
                .map(|_| {
                    Mutex::new(Part {
                        hist: new_histogram(),
                        responses: 0,
                        measured: 0,
                        errors: ErrorCounts::default(),
                        errors_any: 0,
                    })
                })
                .collect(),
        }
    }

    fn lock(&self, i: usize) -> MutexGuard<'_, Part> {
        // A panic while holding the lock leaves plain counters: still usable.
        self.parts[i % self.parts.len()]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Moves a session's batch into part `i` and empties the batch.
    pub fn flush(&self, i: usize, b: &mut Batch) {
        if b.is_empty() {
            return;
        }
        {
            let mut p = self.lock(i);
            for &ns in &b.latencies {
                p.hist.saturating_record(ns.max(1));
            }
            p.responses += b.responses;
            p.measured += b.measured;
            p.errors.add(&b.errors);
            p.errors_any += b.errors_any;
        }
        b.latencies.clear();
        b.responses = 0;
        b.measured = 0;
        b.errors = ErrorCounts::default();
        b.errors_any = 0;
    }

    /// (responses, errors) so far, any time (progress lines).
    pub fn progress(&self) -> (u64, u64) {
        (0..self.parts.len()).fold((0, 0), |(r, e), i| {
            let p = self.lock(i);
            (r + p.responses, e + p.errors_any)
        })
    }

    /// Merged measured results.
    pub fn merged(&self) -> (Histogram<u64>, u64, ErrorCounts) {
        let mut h = new_histogram();
        let mut n = 0;
        let mut errors = ErrorCounts::default();
        for i in 0..self.parts.len() {
            let p = self.lock(i);
            // Same bounds everywhere: cannot fail.
            let _ = h.add(&p.hist);
            n += p.measured;
            errors.add(&p.errors);
        }
        (h, n, errors)
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th.
    pub p99: f64,
    /// 99.9th.
    pub p999: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl Latency {
    /// From a histogram of nanoseconds; `None` if empty.
    pub fn from_histogram(h: &Histogram<u64>) -> Option<Self> {
        if h.is_empty() {
            return None;
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        Some(Self {
            p50: us(h.value_at_quantile(0.50)),
            p90: us(h.value_at_quantile(0.90)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
            mean: h.mean() / 1000.0,
        })
    }
}

/// The summary of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Target as given.
    pub target: String,
    /// Sessions asked for.
    pub sessions: usize,
    /// Sessions that completed the handshake.
    pub sessions_ok: usize,
    /// Outstanding requests per session.
    pub concurrency: usize,
    /// Tool called.
    pub tool: String,
    /// MCP revision of the requests.
    pub revision: String,
    /// Measured period.
    pub duration: Duration,
    /// Warm-up.
    pub warmup: Duration,
    /// Target rate, if paced.
    pub rate: Option<f64>,
    /// Worker threads.
    pub threads: usize,
    /// Responses inside the measured window.
    pub requests: u64,
    /// Errors inside the measured window.
    pub errors: ErrorCounts,
    /// Latency of the responses inside the window.
    pub latency: Option<Latency>,
    /// Warm-up and measured period as they really ran.
    pub elapsed: Duration,
    /// Responses over `elapsed` (warm-up included).
    pub responses_all: u64,
    /// This process's CPU use over `elapsed`.
    pub client_cpu: Option<CpuUsage>,
    /// The server's (`--server-pid`) CPU use over `elapsed`.
    pub server_cpu: Option<(u32, CpuUsage)>,
}

impl Report {
    /// Responses per second over the measured period.
    pub fn requests_per_s(&self) -> f64 {
        let s = self.duration.as_secs_f64();
        if s > 0.0 {
            self.requests as f64 / s
        } else {
            0.0
        }
    }

    /// Human-readable summary.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let rate = match self.rate {
            Some(r) => format!("paced at {} req/s", group(r.round() as u64)),
            None => "unpaced".into(),
        };
        let _ = writeln!(
            s,
            "erlmcp-load {} (revision {}): {} session(s) x {} in flight, tools/call {}, {} measured after {} warm-up, {}, {} thread(s)",
            self.target,
            self.revision,
            self.sessions,
            self.concurrency,
            self.tool,
            format_duration(self.duration),
            format_duration(self.warmup),
            rate,
            self.threads
        );
        if self.sessions_ok < self.sessions {
            let _ = writeln!(
                s,
                "sessions      {} of {} completed the handshake",
                self.sessions_ok, self.sessions
            );
        }
        let errors = self.errors.total();
        let _ = writeln!(
            s,
            "requests      {} ({} ok, {} errors)",
            group(self.requests),
            group(
                self.requests
                    .saturating_sub(self.errors.jsonrpc + self.errors.is_error)
            ),
            group(errors)
        );
        let _ = writeln!(
            s,
            "throughput    {} req/s",
            group(self.requests_per_s().round() as u64)
        );
        match &self.latency {
            Some(l) => {
                let _ = writeln!(
                    s,
                    "latency (us)  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  mean {}",
                    us(l.p50),
                    us(l.p90),
                    us(l.p99),
                    us(l.p999),
                    us(l.max),
                    us(l.mean)
                );
            }
            None => {
                let _ = writeln!(s, "latency (us)  no responses in the measured period");
            }
        }
        let e = &self.errors;
        let _ = writeln!(
            s,
            "errors        json-rpc {}  isError {}  transport {}  timeout {}  invalid {}",
            e.jsonrpc, e.is_error, e.transport, e.timeout, e.invalid
        );
        let secs = self.elapsed.as_secs_f64();
        if let Some(c) = &self.client_cpu {
            let _ = writeln!(
                s,
                "client cpu    {:.2}s user + {:.2}s sys in {secs:.1}s ({:.0}% of a core); waited {:.2}s for a CPU",
                c.user,
                c.sys,
                100.0 * c.cpu() / secs.max(1e-9),
                c.runq_wait
            );
        }
        if let Some((pid, c)) = &self.server_cpu {
            let _ = writeln!(
                s,
                "server cpu    {:.2}s (pid {pid}, {:.0}% of a core), {} us per request; waited {:.2}s for a CPU",
                c.cpu(),
                100.0 * c.cpu() / secs.max(1e-9),
                us(self.cpu_per_request(c)),
                c.runq_wait
            );
        }
        s
    }

    /// CPU microseconds per response over the whole run (warm-up included).
    pub fn cpu_per_request(&self, c: &CpuUsage) -> f64 {
        c.cpu() * 1e6 / self.responses_all.max(1) as f64
    }

    /// Machine-readable summary.
    pub fn to_json(&self) -> Value {
        let latency = self.latency.map(|l| {
            json!({
                "p50": round2(l.p50), "p90": round2(l.p90), "p99": round2(l.p99),
                "p99_9": round2(l.p999), "max": round2(l.max), "mean": round2(l.mean),
            })
        });
        let e = &self.errors;
        let cpu = |c: &CpuUsage| {
            json!({
                "user_s": round2(c.user), "sys_s": round2(c.sys), "runq_wait_s": round2(c.runq_wait),
                "us_per_request": round2(self.cpu_per_request(c)),
            })
        };
        json!({
            "target": self.target,
            "sessions": self.sessions,
            "sessions_ok": self.sessions_ok,
            "concurrency": self.concurrency,
            "tool": self.tool,
            "revision": self.revision,
            "duration_s": self.duration.as_secs_f64(),
            "warmup_s": self.warmup.as_secs_f64(),
            "rate": self.rate,
            "threads": self.threads,
            "requests": self.requests,
            "requests_per_s": round2(self.requests_per_s()),
            "latency_us": latency,
            "errors": {
                "jsonrpc": e.jsonrpc, "is_error": e.is_error, "transport": e.transport,
                "timeout": e.timeout, "invalid": e.invalid, "total": e.total(),
            },
            "elapsed_s": round2(self.elapsed.as_secs_f64()),
            "responses_all": self.responses_all,
            "client_cpu": self.client_cpu.as_ref().map(cpu),
            "server_pid": self.server_cpu.as_ref().map(|(p, _)| *p),
            "server_cpu": self.server_cpu.as_ref().map(|(_, c)| cpu(c)),
        })
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Microseconds for people: one decimal below 100 µs, whole numbers above.
pub fn us(x: f64) -> String {
    if x < 100.0 {
        format!("{x:.1}")
    } else {
        group(x.round() as u64)
    }
}

/// `1234567` → `1 234 567`.
pub fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_and_units() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1 000");
        assert_eq!(group(1234567), "1 234 567");
        assert_eq!(us(52.345), "52.3");
        assert_eq!(us(1234.6), "1 235");
    }

    #[test]
    fn percentiles_of_a_known_distribution() {
        let c = Collector::new(2);
        // 1..=1000 µs, split over two parts.
        for i in 1..=1000u64 {
            let mut b = Batch {
                latencies: vec![i * 1000],
                responses: 1,
                measured: 1,
                ..Batch::default()
            };
            c.flush(i as usize, &mut b);
            assert!(b.is_empty() && b.latencies.is_empty());
        }
        let (h, n, errors) = c.merged();
        assert_eq!(n, 1000);
        assert_eq!(errors.total(), 0);
        let l = Latency::from_histogram(&h).unwrap();
        let near = |a: f64, b: f64| (a - b).abs() <= b * 0.002;
        assert!(near(l.p50, 500.0), "{l:?}");
        assert!(near(l.p90, 900.0), "{l:?}");
        assert!(near(l.p99, 990.0), "{l:?}");
        assert!(near(l.p999, 999.0), "{l:?}");
        assert!(near(l.max, 1000.0), "{l:?}");
        assert!(near(l.mean, 500.5), "{l:?}");
        assert_eq!(c.progress(), (1000, 0));
    }

    fn report() -> Report {
        Report {
            target: "tcp://127.0.0.1:7400".into(),
            sessions: 64,
            sessions_ok: 64,
            concurrency: 4,
            tool: "echo".into(),
            revision: "2025-11-25".into(),
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(1),
            rate: None,
            threads: 1,
            requests: 1_000_000,
            errors: ErrorCounts {
                jsonrpc: 1,
                is_error: 2,
                transport: 0,
                timeout: 3,
                invalid: 0,
            },
            latency: Some(Latency {
                p50: 52.34,
                p90: 80.0,
                p99: 150.0,
                p999: 1500.4,
                max: 12000.0,
                mean: 55.5,
            }),
            elapsed: Duration::from_secs(11),
            responses_all: 1_100_000,
            client_cpu: None,
            server_cpu: None,
        }
    }

    #[test]
    fn text_summary() {
        let t = report().to_text();
        assert!(t.contains("64 session(s) x 4 in flight"), "{t}");
        assert!(
            t.contains("requests      1 000 000 (999 997 ok, 6 errors)"),
            "{t}"
        );
        assert!(t.contains("throughput    100 000 req/s"), "{t}");
        assert!(
            t.contains(
                "latency (us)  p50 52.3  p90 80.0  p99 150  p99.9 1 500  max 12 000  mean 55.5"
            ),
            "{t}"
        );
        assert!(
            t.contains("errors        json-rpc 1  isError 2  transport 0  timeout 3  invalid 0"),
            "{t}"
        );
        assert!(!t.contains("handshake"), "{t}");
        let mut r = report();
        r.sessions_ok = 60;
        r.latency = None;
        r.rate = Some(20000.0);
        let t = r.to_text();
        assert!(t.contains("60 of 64 completed the handshake"), "{t}");
        assert!(t.contains("no responses"), "{t}");
        assert!(t.contains("paced at 20 000 req/s"), "{t}");
        assert!(!t.contains("cpu"), "{t}");
        r.client_cpu = Some(CpuUsage {
            user: 1.0,
            sys: 1.75,
            runq_wait: 0.5,
        });
        r.server_cpu = Some((
            7,
            CpuUsage {
                user: 10.0,
                sys: 1.0,
                runq_wait: 0.25,
            },
        ));
        let t = r.to_text();
        assert!(
            t.contains("client cpu    1.00s user + 1.75s sys in 11.0s (25% of a core); waited 0.50s for a CPU"),
            "{t}"
        );
        assert!(
            t.contains("server cpu    11.00s (pid 7, 100% of a core), 10.0 us per request; waited 0.25s for a CPU"),
            "{t}"
        );
        let j = r.to_json();
        assert_eq!(j["server_cpu"]["us_per_request"], json!(10.0));
        assert_eq!(j["server_pid"], json!(7));
        assert_eq!(j["client_cpu"]["runq_wait_s"], json!(0.5));
    }

    #[test]
    fn json_summary() {
        let j = report().to_json();
        assert_eq!(j["requests_per_s"], json!(100000.0));
        assert_eq!(j["latency_us"]["p50"], json!(52.34));
        assert_eq!(j["latency_us"]["p99_9"], json!(1500.4));
        assert_eq!(j["errors"]["total"], json!(6));
        assert_eq!(j["rate"], Value::Null);
        let mut r = report();
        r.latency = None;
        assert_eq!(r.to_json()["latency_us"], Value::Null);
    }
}
