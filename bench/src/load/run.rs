//! Running a load: one task per session, each keeping its window of requests outstanding
//! (closed loop) or sending on a schedule (open loop, `--rate`), and a progress line a second.

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use super::args::LoadArgs;
use super::http::HttpTransport;
use super::scan::{Scanned, scan};
use super::stats::{Batch, Collector, Latency, Report, group};
use super::transport::{Endpoint, TcpTransport, Transport};
use super::window::Window;
use crate::procstat::CpuUsage;

/// How often a session checks for timed-out requests and publishes its counts when idle.
const TICK: Duration = Duration::from_millis(100);

/// Sessions doing their handshake at the same time.
const SETUP_PARALLELISM: usize = 256;

/// A paced session that finds nothing due when woken looks again this much later (the pacer
/// thread normally wakes it first).
const PACE_FALLBACK: Duration = Duration::from_millis(2);

/// A request due within this much of now is sent now (timer slack).
const PACE_SLACK: Duration = Duration::from_micros(50);

/// Open-loop schedule: `rate` requests/s in total, request `j` due at `start + j / rate` and sent
/// by session `j mod sessions`. Session `index` sends its `k`-th request at
/// `start + (index + k * sessions) / rate`: every `sessions / rate` seconds, phases spread evenly.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    /// Time of request 0.
    pub start: Instant,
    /// Total requests per second.
    pub rate: f64,
    /// This session's place in the rotation.
    pub index: u64,
    /// Sessions in the rotation.
    pub sessions: u64,
}

impl Pacing {
    /// When this session's `k`-th request is due.
    pub fn due(&self, k: u64) -> Instant {
        nth_due(self.start, self.rate, self.index + k * self.sessions)
    }
}

/// When request `j` of the whole schedule is due.
fn nth_due(start: Instant, rate: f64, j: u64) -> Instant {
    start + Duration::from_secs_f64(j as f64 / rate)
}

/// The pacer thread: wakes the session that owns each request of the schedule when it comes
/// due, with the OS's sleep resolution (tens of µs) rather than tokio's 1 ms timer wheel, which
/// would send each millisecond's requests as one burst.
fn pacer(start: Instant, end: Instant, rate: f64, wakers: Vec<Arc<Notify>>) {
    let n = wakers.len() as u64;
    if n == 0 {
        return;
    }
    let mut j: u64 = 0;
    loop {
        let t = nth_due(start, rate, j);
        if t >= end {
            return;
        }
        let now = Instant::now();
        if t > now + PACE_SLACK {
            std::thread::sleep(t - now);
        }
        wakers[(j % n) as usize].notify_one();
        j += 1;
    }
}

/// The timeline of one session.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Sending starts.
    pub start: Instant,
    /// Recording starts (after the warm-up).
    pub measure_from: Instant,
    /// Everything stops.
    pub end: Instant,
    /// Window size.
    pub concurrency: usize,
    /// A request older than this is a timeout.
    pub timeout: Duration,
    /// Schedule, when paced.
    pub pacing: Option<Pacing>,
    /// Woken by the pacer thread when a request of this session comes due.
    pub wake: Option<Arc<Notify>>,
}

impl Plan {
    fn measured(&self, at: Instant) -> bool {
        at >= self.measure_from && at < self.end
    }
}

/// Accounts for one message from the server.
pub fn on_message(line: &[u8], at: Instant, win: &mut Window, b: &mut Batch, plan: &Plan) {
    let measured = plan.measured(at);
    match scan(line) {
        Ok(Scanned::Response {
            id,
            error,
            is_error,
        }) => match id.and_then(|id| win.complete(id)) {
            Some(start) => {
                b.responses += 1;
                if measured {
                    b.measured += 1;
                    b.latencies
                        .push(at.saturating_duration_since(start).as_nanos() as u64);
                }
                if error || is_error {
                    b.errors_any += 1;
                    if measured {
                        if error {
                            b.errors.jsonrpc += 1;
                        } else {
                            b.errors.is_error += 1;
                        }
                    }
                }
            }
            // An error for no request of ours (e.g. id null: the server could not parse a line).
            None if error => {
                b.errors_any += 1;
                if measured {
                    b.errors.jsonrpc += 1;
                }
            }
            // A late response to a request already counted as a timeout.
            None => {}
        },
        // Notifications (progress, logs) and server → client requests are not part of the load.
        Ok(Scanned::Notification | Scanned::Request) => {}
        Err(_) => {
            b.errors_any += 1;
            if measured {
                b.errors.invalid += 1;
            }
        }
    }
}

/// Drives one session until `plan.end` or a transport failure.
pub async fn drive<T: Transport>(mut t: T, part: usize, plan: Plan, c: &Collector) {
    let mut win = Window::new(plan.concurrency);
    let mut batch = Batch {
        latencies: Vec::with_capacity(plan.concurrency.min(4096)),
        ..Batch::default()
    };
    tokio::time::sleep_until(plan.start.into()).await;
    let result = session_loop(&mut t, part, &plan, c, &mut win, &mut batch).await;
    if result.is_err() {
        // A dead session matters whether it died in the warm-up or not.
        batch.errors_any += 1;
        batch.errors.transport += 1;
    }
    c.flush(part, &mut batch);
}

async fn session_loop<T: Transport>(
    t: &mut T,
    part: usize,
    plan: &Plan,
    c: &Collector,
    win: &mut Window,
    batch: &mut Batch,
) -> std::io::Result<()> {
    let mut next_tick = plan.start + TICK;
    // Paced: the next request's number and due time.
    let mut k = 0u64;
    let mut due = plan.pacing.map(|p| p.due(0));
    // Paced: requests came due while the window was full; they count from their due time.
    let mut behind = false;
    let mut armed = next_tick;
    let sleep = tokio::time::sleep_until(armed.into());
    tokio::pin!(sleep);
    loop {
        let now = Instant::now();
        if now >= plan.end {
            return Ok(());
        }
        if now >= next_tick {
            if let Some(cutoff) = now.checked_sub(plan.timeout) {
                let n = win.expire(cutoff) as u64;
                batch.errors_any += n;
                if plan.measured(now) {
                    batch.errors.timeout += n;
                }
            }
            c.flush(part, batch);
            next_tick = now + TICK;
        }

        let mut queued = false;
        match (plan.pacing, due.as_mut()) {
            (Some(p), Some(d)) => {
                while *d <= now + PACE_SLACK {
                    let start = if behind { (*d).min(now) } else { now };
                    match win.issue(start) {
                        Some(id) => {
                            t.queue(id);
                            queued = true;
                            k += 1;
                            *d = p.due(k);
                        }
                        None => {
                            behind = true;
                            break;
                        }
                    }
                }
                if *d > now + PACE_SLACK {
                    behind = false;
                }
            }
            _ => {
                while let Some(id) = win.issue(now) {
                    t.queue(id);
                    queued = true;
                }
            }
        }
        if queued || t.ready_to_send() {
            t.flush().await?;
        }

        let mut wake = plan.end.min(next_tick);
        if let Some(d) = due
            && win.free() > 0
        {
            wake = wake.min(if plan.wake.is_some() {
                d + PACE_FALLBACK
            } else {
                d
            });
        }
        if wake != armed {
            sleep.as_mut().reset(wake.into());
            armed = wake;
        }
        let received = {
            let mut handle = |line: &[u8], at| on_message(line, at, win, batch, plan);
            let paced = async {
                match &plan.wake {
                    Some(w) => w.notified().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                r = t.recv(&mut handle) => Some(r),
                _ = paced => None,
                _ = &mut sleep => None,
            }
        };
        if let Some(r) = received {
            r?;
            c.flush(part, batch);
        }
    }
}

/// Runs the load described by `args` and returns its summary.
pub async fn run(args: &LoadArgs) -> anyhow::Result<Report> {
    match Endpoint::resolve(&args.target, args.concurrency).await? {
        Endpoint::Tcp(addr) => run_with::<TcpTransport>(args, addr).await,
        Endpoint::Http(addr) => run_with::<HttpTransport>(args, addr).await,
    }
}

/// What `--open-only` did.
#[derive(Debug, Clone, PartialEq)]
pub struct Opened {
    /// Sessions asked for.
    pub sessions: usize,
    /// Sessions whose handshake completed.
    pub opened: usize,
    /// The first failure, if any.
    pub first_error: Option<String>,
    /// How long it took.
    pub elapsed: Duration,
}

impl Opened {
    /// Human-readable summary.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "opened {} of {} sessions in {:.2}s (connections closed, sessions left idle)\n",
            self.opened,
            self.sessions,
            self.elapsed.as_secs_f64()
        );
        if let Some(e) = &self.first_error {
            s.push_str(&format!("first error: {e}\n"));
        }
        s
    }

    /// As one JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "sessions": self.sessions,
            "opened": self.opened,
            "failed": self.sessions - self.opened,
            "first_error": self.first_error,
            "elapsed_s": self.elapsed.as_secs_f64(),
        })
    }
}

/// `--open-only`: opens `args.sessions` sessions (the full handshake), closing each one's
/// connections once it is open, and sends nothing else: the server is left with idle sessions.
pub async fn open_sessions(args: &LoadArgs) -> anyhow::Result<Opened> {
    match Endpoint::resolve(&args.target, 1).await? {
        Endpoint::Tcp(addr) => open_with::<TcpTransport>(args, addr).await,
        Endpoint::Http(addr) => open_with::<HttpTransport>(args, addr).await,
    }
}

async fn open_with<T: Transport>(args: &LoadArgs, addr: T::Addr) -> anyhow::Result<Opened> {
    let work = Arc::new(args.workload());
    let setup = Arc::new(Semaphore::new(SETUP_PARALLELISM));
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..args.sessions {
        let (addr, work, setup) = (addr.clone(), work.clone(), setup.clone());
        let timeout = args.setup_timeout;
        tasks.spawn(async move {
            let _permit = setup.acquire().await;
            T::open(&addr, work, timeout).await.map(drop)
        });
    }
    let (mut opened, mut first_error) = (0, None);
    let mut next_report = started + Duration::from_secs(1);
    loop {
        let joined = tokio::time::timeout_at(next_report.into(), tasks.join_next()).await;
        match joined {
            Ok(None) => break,
            Ok(Some(Ok(Ok(())))) => opened += 1,
            Ok(Some(Ok(Err(e)))) => {
                first_error.get_or_insert_with(|| format!("{e:#}"));
            }
            Ok(Some(Err(e))) => {
                first_error.get_or_insert_with(|| format!("session task failed: {e}"));
            }
            Err(_) => {
                progress(
                    args.quiet,
                    format_args!("opening: {opened}/{} sessions", args.sessions),
                );
                next_report += Duration::from_secs(1);
            }
        }
    }
    Ok(Opened {
        sessions: args.sessions,
        opened,
        first_error,
        elapsed: started.elapsed(),
    })
}

fn progress(quiet: bool, line: std::fmt::Arguments<'_>) {
    if !quiet {
        let mut e = std::io::stderr().lock();
        let _ = writeln!(e, "{line}");
    }
}

/// The start signal: the common timeline and, when paced, every session's waker.
struct Go {
    start: Instant,
    measure_from: Instant,
    end: Instant,
    rate: Option<f64>,
    wakers: Vec<Arc<Notify>>,
}

async fn run_with<T: Transport>(args: &LoadArgs, addr: T::Addr) -> anyhow::Result<Report> {
    let work = Arc::new(args.workload());
    let n = args.sessions;
    let collector = Arc::new(Collector::new(args.threads * 2));
    let (ready_tx, mut ready_rx) = mpsc::channel::<Result<(), String>>(n);
    let (go_tx, go_rx) = watch::channel::<Option<Arc<Go>>>(None);
    let opened_count = Arc::new(AtomicUsize::new(0));
    let setup = Arc::new(Semaphore::new(SETUP_PARALLELISM));
    let mut tasks = JoinSet::new();
    for i in 0..n {
        let (addr, work, collector) = (addr.clone(), work.clone(), collector.clone());
        let (ready_tx, mut go_rx, setup) = (ready_tx.clone(), go_rx.clone(), setup.clone());
        let opened_count = opened_count.clone();
        let (concurrency, timeout, setup_timeout) =
            (args.concurrency, args.timeout, args.setup_timeout);
        tasks.spawn(async move {
            let opened = {
                let _permit = setup.acquire().await;
                T::open(&addr, work, setup_timeout).await
            };
            let (t, index) = match opened {
                Ok(t) => {
                    let index = opened_count.fetch_add(1, Ordering::Relaxed);
                    let _ = ready_tx.send(Ok(())).await;
                    (t, index)
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("{e:#}"))).await;
                    return;
                }
            };
            drop(ready_tx);
            let go = loop {
                if let Some(go) = go_rx.borrow_and_update().clone() {
                    break go;
                }
                if go_rx.changed().await.is_err() {
                    return;
                }
            };
            let plan = Plan {
                start: go.start,
                measure_from: go.measure_from,
                end: go.end,
                concurrency,
                timeout,
                pacing: go.rate.map(|rate| Pacing {
                    start: go.start,
                    rate,
                    index: index as u64,
                    sessions: go.wakers.len() as u64,
                }),
                wake: go.wakers.get(index).cloned(),
            };
            drive(t, i, plan, &collector).await;
        });
    }
    drop(ready_tx);

    // Handshakes.
    let setup_started = Instant::now();
    let mut ok = 0usize;
    let mut failed = 0usize;
    let mut first_error = None;
    let mut next_report = setup_started + Duration::from_secs(1);
    let setup_deadline = setup_started + args.setup_timeout + Duration::from_secs(5);
    while ok + failed < n {
        let msg = tokio::time::timeout_at(next_report.min(setup_deadline).into(), ready_rx.recv());
        match msg.await {
            Ok(Some(Ok(()))) => ok += 1,
            Ok(Some(Err(e))) => {
                failed += 1;
                first_error.get_or_insert(e);
            }
            Ok(None) => break,
            Err(_) if Instant::now() >= setup_deadline => break,
            Err(_) => {
                progress(
                    args.quiet,
                    format_args!("connecting: {ok}/{n} sessions ready, {failed} failed"),
                );
                next_report += Duration::from_secs(1);
            }
        }
    }
    if ok == 0 {
        tasks.abort_all();
        bail!(
            "no session could be opened to {}: {}",
            args.target,
            first_error.unwrap_or_else(|| "setup timed out".into())
        );
    }
    if ok < n {
        progress(
            args.quiet,
            format_args!(
                "warning: {} of {n} sessions failed to open (first error: {})",
                n - ok,
                first_error.as_deref().unwrap_or("setup timed out")
            ),
        );
    }

    // Go.
    let start = Instant::now() + Duration::from_millis(10);
    let measure_from = start + args.warmup;
    let end = measure_from + args.duration;
    // Sessions that opened have indices 0..ok (in the order they opened).
    let wakers: Vec<Arc<Notify>> = match args.rate {
        Some(_) => (0..ok).map(|_| Arc::new(Notify::new())).collect(),
        None => Vec::new(),
    };
    if let Some(rate) = args.rate {
        let w = wakers.clone();
        std::thread::Builder::new()
            .name("erlmcp-load-pacer".into())
            .spawn(move || pacer(start, end, rate, w))?;
    }
    let _ = go_tx.send(Some(Arc::new(Go {
        start,
        measure_from,
        end,
        rate: args.rate,
        wakers,
    })));
    let cpu_at_start = (
        CpuUsage::read(None),
        args.server_pid.and_then(|p| CpuUsage::read(Some(p))),
    );
    progress(
        args.quiet,
        format_args!(
            "{ok} sessions ready in {:.2}s; running {:.1}s warm-up + {:.1}s",
            setup_started.elapsed().as_secs_f64(),
            args.warmup.as_secs_f64(),
            args.duration.as_secs_f64()
        ),
    );
    let mut tick = start + Duration::from_secs(1);
    let mut last = (start, 0u64);
    loop {
        let at = tick.min(end);
        tokio::time::sleep_until(at.into()).await;
        let now = Instant::now();
        let (responses, errors) = collector.progress();
        let recent = (responses - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
        let avg = responses as f64 / now.duration_since(start).as_secs_f64();
        let phase = if last.0 < measure_from {
            "warm-up"
        } else {
            "run"
        };
        progress(
            args.quiet,
            format_args!(
                "[{:>6.1}s {phase:>7}] {:>9} req/s (avg {:>9})  errors {}",
                now.duration_since(start).as_secs_f64(),
                group(recent.round() as u64),
                group(avg.round() as u64),
                errors
            ),
        );
        last = (now, responses);
        if at >= end {
            break;
        }
        tick += Duration::from_secs(1);
    }

    let elapsed = Instant::now().saturating_duration_since(start);
    let client_cpu = cpu_at_start
        .0
        .zip(CpuUsage::read(None))
        .map(|(a, b)| b.since(&a));
    let server_cpu = args.server_pid.zip(
        cpu_at_start
            .1
            .zip(args.server_pid.and_then(|p| CpuUsage::read(Some(p))))
            .map(|(a, b)| b.since(&a)),
    );
    let (responses_all, _) = collector.progress();

    // Sessions stop at `end` by themselves; one blocked in a write to a stalled server is cut.
    let drained = tokio::time::timeout(Duration::from_secs(5), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tasks.abort_all();
    }

    let (hist, requests, errors) = collector.merged();
    Ok(Report {
        target: args.target.to_string(),
        sessions: n,
        sessions_ok: ok,
        concurrency: args.concurrency,
        tool: args.tool.clone(),
        revision: args.revision.clone(),
        duration: args.duration,
        warmup: args.warmup,
        rate: args.rate,
        threads: args.threads,
        requests,
        errors,
        latency: Latency::from_histogram(&hist),
        elapsed,
        responses_all,
        client_cpu,
        server_cpu,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(now: Instant) -> Plan {
        Plan {
            start: now,
            measure_from: now + Duration::from_secs(1),
            end: now + Duration::from_secs(2),
            concurrency: 4,
            timeout: Duration::from_secs(1),
            pacing: None,
            wake: None,
        }
    }

    fn line(id: u64, tail: &str) -> Vec<u8> {
        format!(r#"{{"jsonrpc":"2.0","id":{id},{tail}}}"#).into_bytes()
    }

    #[test]
    fn matches_responses_and_classifies_errors() {
        let t0 = Instant::now();
        let p = plan(t0);
        let mut w = Window::new(4);
        let mut b = Batch::default();
        let ids: Vec<u64> = (0..4).map(|_| w.issue(t0).unwrap()).collect();
        let in_window = t0 + Duration::from_millis(1500);

        // Warm-up response: counted for progress, not measured.
        on_message(
            &line(ids[0], r#""result":{"content":[]}"#),
            t0 + Duration::from_millis(10),
            &mut w,
            &mut b,
            &p,
        );
        assert_eq!((b.responses, b.measured, b.latencies.len()), (1, 0, 0));

        on_message(
            &line(ids[1], r#""result":{"isError":true}"#),
            in_window,
            &mut w,
            &mut b,
            &p,
        );
        on_message(
            &line(ids[2], r#""error":{"code":-32602,"message":"x"}"#),
            in_window,
            &mut w,
            &mut b,
            &p,
        );
        on_message(
            &line(ids[3], r#""result":{}"#),
            in_window,
            &mut w,
            &mut b,
            &p,
        );
        assert_eq!((b.responses, b.measured), (4, 3));
        assert_eq!(b.latencies, vec![1_500_000_000; 3]);
        assert_eq!(
            (b.errors.is_error, b.errors.jsonrpc, b.errors_any),
            (1, 1, 2)
        );

        // Duplicates and unknown ids are ignored; unparsable lines and stray errors are not.
        on_message(
            &line(ids[3], r#""result":{}"#),
            in_window,
            &mut w,
            &mut b,
            &p,
        );
        on_message(
            &line(999_999, r#""result":{}"#),
            in_window,
            &mut w,
            &mut b,
            &p,
        );
        assert_eq!(b.responses, 4);
        on_message(b"not json", in_window, &mut w, &mut b, &p);
        on_message(
            br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}"#,
            in_window,
            &mut w,
            &mut b,
            &p,
        );
        on_message(
            br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{}}"#,
            in_window,
            &mut w,
            &mut b,
            &p,
        );
        assert_eq!(
            (b.errors.invalid, b.errors.jsonrpc, b.errors_any),
            (1, 2, 4)
        );
        assert_eq!(w.free(), 4);
    }

    #[test]
    fn pacing_spreads_sessions_over_the_interval() {
        let t0 = Instant::now();
        let p = |index| Pacing {
            start: t0,
            rate: 20_000.0,
            index,
            sessions: 64,
        };
        let us = |t: Instant| (t - t0).as_micros();
        assert_eq!(us(p(0).due(0)), 0);
        assert_eq!(us(p(1).due(0)), 50);
        assert_eq!(us(p(63).due(0)), 3150);
        assert_eq!(us(p(0).due(1)), 3200);
        assert_eq!(us(p(1).due(10)), 32_050);
        // The whole schedule: request j at j / rate, owned by session j mod 64.
        for j in [0u64, 1, 63, 64, 65, 1000] {
            assert_eq!(p(j % 64).due(j / 64), nth_due(t0, 20_000.0, j));
        }
    }
}
