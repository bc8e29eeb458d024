//! `erlmcp-session-mem`: resident memory per idle MCP session (active and passivated), in-process
//! through the engine API. See `bench/README.md`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};

use anyhow::{Context, anyhow, bail};
use clap::Parser;
use erlmcp_bench::mem::{self, MemArgs, Probe, ProbeResult};
use serde_json::json;

/// The system allocator, counting live heap bytes: RSS says what the process costs, this says
/// what the program holds, without the allocator's slack.
struct CountingAlloc;

static LIVE_HEAP: AtomicI64 = AtomicI64::new(0);

// SAFETY: every call is forwarded unchanged to `System`; the counter has no effect on memory.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE_HEAP.fetch_add(layout.size() as i64, Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE_HEAP.fetch_add(layout.size() as i64, Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        LIVE_HEAP.fetch_sub(layout.size() as i64, Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE_HEAP.fetch_add(new_size as i64 - layout.size() as i64, Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn live_heap() -> i64 {
    LIVE_HEAP.load(Relaxed)
}

/// Runs `probe` in a fresh process (this binary) and reads its JSON result.
fn run_child(args: &MemArgs, probe: Probe) -> anyhow::Result<ProbeResult> {
    let exe = std::env::current_exe().context("locating this binary")?;
    let out = Command::new(exe)
        .args(args.probe_args(probe))
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running the {} probe", probe.name()))?;
    if !out.status.success() {
        bail!("the {} probe failed ({})", probe.name(), out.status);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or_else(|| anyhow!("the {} probe printed no result", probe.name()))?;
    let v = serde_json::from_str(line).context("parsing the probe result")?;
    ProbeResult::from_json(&v).map_err(|e| anyhow!(e))
}

fn main() -> ExitCode {
    let args = MemArgs::parse();
    if let Err(e) = args.validate() {
        eprintln!("erlmcp-session-mem: {e}");
        return ExitCode::from(2);
    }
    let result = match args.probe {
        Some(probe) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.workers)
            .enable_all()
            .build()
            .context("starting the runtime")
            .and_then(|rt| rt.block_on(mem::probe(&args, probe, live_heap)))
            .map(|r| {
                println!("{}", r.to_json());
                // Exit without stopping the runtime: tearing down 100 000 sessions measures nothing.
                std::process::exit(0)
            }),
        None => run_child(&args, Probe::Active).and_then(|active| {
            let passivated = run_child(&args, Probe::Passivated)?;
            if args.json {
                println!(
                    "{}",
                    json!({
                        "sessions": args.sessions,
                        "passivate_after_ms": args.passivate_after.as_millis() as u64,
                        "connection_idle_timeout_ms": args.connection_idle_timeout.as_millis() as u64,
                        "goal_passivated_bytes": mem::GOAL_PASSIVATED_BYTES,
                        "active": active.to_json(),
                        "passivated": passivated.to_json(),
                    })
                );
            } else {
                print!(
                    "{}",
                    mem::summary_text(&active, &passivated, &args)
                );
            }
            Ok(())
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("erlmcp-session-mem: {e:#}");
            ExitCode::FAILURE
        }
    }
}
