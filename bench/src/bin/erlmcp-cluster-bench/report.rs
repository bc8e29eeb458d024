//! What a run measured, its goals, and how it is printed.

use super::*;

pub(super) struct CpuPair {
    pub(super) bench: CpuUsage,
    pub(super) peer: Option<CpuUsage>,
}

impl CpuPair {
    pub(super) fn read(peer_pid: u32) -> Self {
        Self {
            bench: CpuUsage::read(None).unwrap_or_default(),
            peer: CpuUsage::read(Some(peer_pid)),
        }
    }

    pub(super) fn since(&self, earlier: &CpuPair) -> CpuPair {
        CpuPair {
            bench: self.bench.since(&earlier.bench),
            peer: match (&self.peer, &earlier.peer) {
                (Some(a), Some(b)) => Some(a.since(b)),
                _ => None,
            },
        }
    }

    pub(super) fn json(&self, wall: Duration, ops: u64) -> Value {
        let one = |c: &CpuUsage| {
            json!({
                "user_s": round3(c.user),
                "sys_s": round3(c.sys),
                "us_per_op": round3(c.cpu() * 1e6 / ops.max(1) as f64),
                "cores": round3(c.cpu() / wall.as_secs_f64()),
                "runq_wait_s": round3(c.runq_wait),
            })
        };
        json!({"bench": one(&self.bench), "peer": self.peer.as_ref().map(one)})
    }

    pub(super) fn text(&self, wall: Duration, ops: u64, op: &str) -> String {
        let one = |c: &CpuUsage| {
            format!(
                "{:.2} s = {:.1} us per {op} ({:.0}% user {:.0}% sys of a core), waited {:.0} ms for a CPU",
                c.cpu(),
                c.cpu() * 1e6 / ops.max(1) as f64,
                100.0 * c.user / wall.as_secs_f64(),
                100.0 * c.sys / wall.as_secs_f64(),
                c.runq_wait * 1e3
            )
        };
        let peer = self.peer.as_ref().map_or("unknown".into(), one);
        format!("  cpu bench {}\n  cpu peer  {}\n", one(&self.bench), peer)
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

pub(super) struct CastResult {
    pub(super) casts: u64,
    pub(super) senders: usize,
    /// First cast → every cast handed to ractor.
    pub(super) enqueue: Duration,
    /// First cast → `Counted` reached the target.
    pub(super) total: Duration,
    pub(super) cpu: CpuPair,
}

impl CastResult {
    pub(super) fn per_s(&self) -> f64 {
        self.casts as f64 / self.total.as_secs_f64()
    }
}

pub(super) struct CallResult {
    pub(super) calls: u64,
    pub(super) total: Duration,
    pub(super) hist: Histogram<u64>,
    pub(super) cpu: CpuPair,
}

impl CallResult {
    pub(super) fn q_us(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1e3
    }
}

pub(super) struct KillResult {
    /// Kill → down, per round, ms.
    pub(super) down_ms: Vec<f64>,
    /// Kill → suspect, per round where it came first, ms.
    pub(super) suspect_ms: Vec<f64>,
    /// Start of the process → up, per round, ms.
    pub(super) up_ms: Vec<f64>,
}

pub(super) struct Report {
    pub(super) threads: usize,
    pub(super) peer_threads: Option<usize>,
    pub(super) nproc: usize,
    pub(super) kernel: String,
    pub(super) load_start: String,
    pub(super) load_end: String,
    pub(super) tuning: TransportTuning,
    pub(super) suspect_after: Duration,
    pub(super) join_ms: f64,
    pub(super) rtt_us: Option<u64>,
    pub(super) casts: Option<CastResult>,
    pub(super) calls: Option<CallResult>,
    pub(super) kills: Option<KillResult>,
    pub(super) logs: PathBuf,
}

const GOAL_CASTS_PER_S: f64 = 300_000.0;
const GOAL_CALL_P50_US: f64 = 150.0;
const GOAL_DETECT_P99_MS: f64 = 1_000.0;

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

impl Report {
    pub(super) fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "erlmcp-cluster-bench: this process (node {BENCH_NODE}, {} tokio thread(s)) and an `erlmcp node` process ({} tokio thread(s)) over QUIC loopback",
            self.threads,
            self.peer_threads
                .map_or_else(|| format!("{}, its default", self.nproc), |n| n.to_string())
        );
        let _ = writeln!(
            s,
            "machine       {} CPUs, Linux {}, load average {} at start, {} at end",
            self.nproc, self.kernel, self.load_start, self.load_end
        );
        let _ = writeln!(
            s,
            "transport     keep-alive {} ms, idle timeout {} ms (suspect after {} ms silent); joined in {:.0} ms; QUIC RTT {}",
            self.tuning.keepalive.as_millis(),
            self.tuning.idle_timeout.as_millis(),
            self.suspect_after.as_millis(),
            self.join_ms,
            self.rtt_us.map_or("unknown".into(), |r| format!("{r} us"))
        );
        if let Some(c) = &self.casts {
            let _ = writeln!(
                s,
                "remote casts  {} casts from {} sender(s): {} casts/s (enqueued in {:.0} ms, all counted after {:.0} ms)   goal >= {} casts/s: {}",
                group(c.casts),
                c.senders,
                group(c.per_s().round() as u64),
                ms(c.enqueue),
                ms(c.total),
                group(GOAL_CASTS_PER_S as u64),
                verdict(c.per_s() >= GOAL_CASTS_PER_S)
            );
            s.push_str(&c.cpu.text(c.total, c.casts, "cast"));
        }
        if let Some(c) = &self.calls {
            let p50 = c.q_us(0.5);
            let _ = writeln!(
                s,
                "remote calls  {} sequential Ping calls, {} calls/s; latency (us) p50 {}  p90 {}  p99 {}  p99.9 {}  max {}   goal p50 <= {} us: {}",
                group(c.calls),
                group((c.calls as f64 / c.total.as_secs_f64()).round() as u64),
                us(p50),
                us(c.q_us(0.9)),
                us(c.q_us(0.99)),
                us(c.q_us(0.999)),
                us(c.hist.max() as f64 / 1e3),
                GOAL_CALL_P50_US,
                verdict(p50 <= GOAL_CALL_P50_US)
            );
            s.push_str(&c.cpu.text(c.total, c.calls, "call"));
        }
        if let Some(k) = &self.kills {
            let mut d = k.down_ms.clone();
            d.sort_by(f64::total_cmp);
            let p99 = pct(&d, 99.0);
            let _ = writeln!(
                s,
                "detection     {} kill -9 rounds, kill -> down seen by {BENCH_NODE} (ms): p50 {:.0}  p99 {:.0}  min {:.0}  max {:.0}   goal p99 <= {} ms: {}",
                d.len(),
                pct(&d, 50.0),
                p99,
                d.first().copied().unwrap_or(f64::NAN),
                d.last().copied().unwrap_or(f64::NAN),
                GOAL_DETECT_P99_MS,
                verdict(p99 <= GOAL_DETECT_P99_MS)
            );
            let mut su = k.suspect_ms.clone();
            su.sort_by(f64::total_cmp);
            if !su.is_empty() {
                let _ = writeln!(
                    s,
                    "              kill -> suspect (ms), {} of {} rounds: p50 {:.0}  max {:.0}",
                    su.len(),
                    d.len(),
                    pct(&su, 50.0),
                    su.last().copied().unwrap_or(f64::NAN)
                );
            }
            let mut up = k.up_ms.clone();
            up.sort_by(f64::total_cmp);
            let _ = writeln!(
                s,
                "              process start -> up (ms): p50 {:.0}  max {:.0}",
                pct(&up, 50.0),
                up.last().copied().unwrap_or(f64::NAN)
            );
        }
        let _ = writeln!(s, "peer logs     {}", self.logs.display());
        s
    }

    pub(super) fn to_json(&self) -> Value {
        let casts = self.casts.as_ref().map(|c| {
            json!({
                "casts": c.casts,
                "senders": c.senders,
                "casts_per_s": c.per_s().round(),
                "enqueue_ms": round3(ms(c.enqueue)),
                "total_ms": round3(ms(c.total)),
                "goal_casts_per_s": GOAL_CASTS_PER_S,
                "goal_met": c.per_s() >= GOAL_CASTS_PER_S,
                "cpu": c.cpu.json(c.total, c.casts),
            })
        });
        let calls = self.calls.as_ref().map(|c| {
            json!({
                "calls": c.calls,
                "calls_per_s": (c.calls as f64 / c.total.as_secs_f64()).round(),
                "latency_us": {
                    "p50": round3(c.q_us(0.5)),
                    "p90": round3(c.q_us(0.9)),
                    "p99": round3(c.q_us(0.99)),
                    "p999": round3(c.q_us(0.999)),
                    "max": round3(c.hist.max() as f64 / 1e3),
                    "mean": round3(c.hist.mean() / 1e3),
                },
                "goal_p50_us": GOAL_CALL_P50_US,
                "goal_met": c.q_us(0.5) <= GOAL_CALL_P50_US,
                "cpu": c.cpu.json(c.total, c.calls),
            })
        });
        let kills = self.kills.as_ref().map(|k| {
            let mut d = k.down_ms.clone();
            d.sort_by(f64::total_cmp);
            let mut su = k.suspect_ms.clone();
            su.sort_by(f64::total_cmp);
            let mut up = k.up_ms.clone();
            up.sort_by(f64::total_cmp);
            let r = |v: &[f64]| v.iter().map(|x| x.round()).collect::<Vec<_>>();
            json!({
                "rounds": d.len(),
                "down_ms": {
                    "p50": pct(&d, 50.0).round(),
                    "p99": pct(&d, 99.0).round(),
                    "min": d.first().map(|x| x.round()),
                    "max": d.last().map(|x| x.round()),
                    "samples": r(&k.down_ms),
                },
                "suspect_ms": {"rounds": su.len(), "p50": su.first().map(|_| pct(&su, 50.0).round()), "samples": r(&k.suspect_ms)},
                "up_ms": {"p50": pct(&up, 50.0).round(), "max": up.last().map(|x| x.round())},
                "goal_p99_ms": GOAL_DETECT_P99_MS,
                "goal_met": pct(&d, 99.0) <= GOAL_DETECT_P99_MS,
            })
        });
        json!({
            "machine": {
                "nproc": self.nproc,
                "kernel": self.kernel,
                "loadavg_start": self.load_start,
                "loadavg_end": self.load_end,
            },
            "threads": self.threads,
            "peer_threads": self.peer_threads.unwrap_or(self.nproc),
            "transport": {
                "keepalive_ms": self.tuning.keepalive.as_millis() as u64,
                "idle_timeout_ms": self.tuning.idle_timeout.as_millis() as u64,
                "suspect_after_ms": self.suspect_after.as_millis() as u64,
            },
            "join_ms": self.join_ms.round(),
            "rtt_us": self.rtt_us,
            "casts": casts,
            "calls": calls,
            "detection": kills,
            "logs": self.logs.display().to_string(),
        })
    }
}
