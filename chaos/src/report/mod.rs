//! Reports of a run: the terminal table, `report.json` and a self-contained `report.html`
//! (inline CSS and SVG plots: throughput and latency over time with the fault windows shaded,
//! availability per node), plus the progress display while a run goes ([`progress`]).
//!
//! Everything is computed from the [`Report`]: the run's [`History`] and the checkers'
//! [`CheckResult`]s. Plot figures come from the history itself, so a report can be drawn for a
//! history whatever checkers ran.

mod html;
pub mod progress;
mod stats;
mod svg;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write as _};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::check::{self, CheckResult, Verdict};
use crate::history::{History, Outcome};

pub use progress::Progress;

/// How many error messages [`Summary::top_errors`] keeps.
const TOP_ERRORS: usize = 5;

/// Error messages longer than this are cut in the table (the full text stays in report.json).
const MAX_MESSAGE_CHARS: usize = 100;

/// Name of the lost-writes checker's [`CheckResult`].
const LOST_WRITES_CHECK: &str = "lost-writes";
/// Name of the linearizability checker's [`CheckResult`].
const LINEARIZABLE_CHECK: &str = "linearizable";
/// Name of the availability checker's [`CheckResult`].
const AVAILABILITY_CHECK: &str = "availability";

/// Colours of the HTML report. Public so that the screenshot test can look for them in the
/// rendered page.
pub mod palette {
    /// Throughput line of operations that succeeded.
    pub const OK: &str = "#2ca02c";
    /// Throughput line of operations that failed.
    pub const FAIL: &str = "#d62728";
    /// Throughput line of operations whose outcome is unknown.
    pub const UNKNOWN: &str = "#e6a000";
    /// Median latency line.
    pub const P50: &str = "#1f77b4";
    /// 99th percentile latency line.
    pub const P99: &str = "#9467bd";
    /// Fault window shading (drawn with [`SHADE_OPACITY`]).
    pub const SHADE: &str = "#f4a261";
    /// Opacity of the fault window shading.
    pub const SHADE_OPACITY: f64 = 0.3;
    /// Availability bar over the whole run.
    pub const BAR_ALL: &str = "#2a9d8f";
    /// Availability bar during fault windows.
    pub const BAR_FAULT: &str = "#e76f51";
    /// Verdict badge of a passing run.
    pub const PASS_BADGE: &str = "#1a7f37";
    /// Verdict badge of a failing run.
    pub const FAIL_BADGE: &str = "#cf222e";
}

/// Everything known about a finished run: what ran, what happened, what the checkers found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Scenario name (e.g. `partition-minority`).
    pub scenario: String,
    /// The workload and fault seed (replaying it replays the run's decisions).
    pub seed: u64,
    /// Number of nodes in the mesh.
    pub nodes: usize,
    /// When the run started, wall clock, RFC 3339 (see [`rfc3339_utc`]).
    pub started_at: String,
    /// The recorded history.
    pub history: History,
    /// What each checker found.
    pub checks: Vec<CheckResult>,
    /// The faults as applied, one line each (the nemesis log).
    pub faults_applied: Vec<String>,
}

/// Whether the run was linearizable, as the linearizability checker said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Linearizable {
    /// The checker found a linearization for every register.
    Yes,
    /// The checker proved some register's history not linearizable.
    No,
    /// The checker gave up (search capped).
    Unknown,
    /// The checker did not run.
    NotChecked,
}

impl Linearizable {
    /// `yes`, `no`, `unknown` or `not checked`.
    pub fn as_str(self) -> &'static str {
        match self {
            Linearizable::Yes => "yes",
            Linearizable::No => "no",
            Linearizable::Unknown => "unknown",
            Linearizable::NotChecked => "not checked",
        }
    }
}

/// How often one error message occurred.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorCount {
    /// The message (`(no message)` for a failed operation that recorded none).
    pub message: String,
    /// Operations that ended with it.
    pub count: usize,
}

/// The headline figures of a run (the terminal table's rows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Operations invoked.
    pub ops: usize,
    /// Of which acknowledged.
    pub ok: usize,
    /// Of which definitely not applied.
    pub fail: usize,
    /// Of which of unknown effect.
    pub unknown: usize,
    /// Operations that did not end `Ok` (`fail + unknown`).
    pub errors: usize,
    /// The most frequent error messages, most frequent first, at most 5.
    pub top_errors: Vec<ErrorCount>,
    /// Acknowledged writes lost, from the lost-writes check (`None`: it did not run or gave no
    /// count).
    pub lost_writes: Option<u64>,
    /// The linearizability checker's answer.
    pub linearizable: Linearizable,
    /// Share of operations that succeeded, 0..=1: the availability check's `overall` when it
    /// ran, else `ok / ops` (`None` without operations).
    pub availability: Option<f64>,
    /// Median latency of answered operations (`Ok` or `Fail`), ms.
    pub p50_ms: Option<f64>,
    /// 99th percentile latency of answered operations, ms.
    pub p99_ms: Option<f64>,
}

impl Report {
    /// Whether the run passed: no check failed. A check that could not decide (`Unknown`) does
    /// not fail the run; the table and the page still show it.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.verdict != Verdict::Fail)
    }

    /// The check called `name`, if it ran.
    fn check(&self, name: &str) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// The headline figures.
    pub fn summary(&self) -> Summary {
        let ops = &self.history.ops;
        let count = |o: Outcome| ops.iter().filter(|op| op.outcome == o).count();
        let (ok, fail, unknown) = (
            count(Outcome::Ok),
            count(Outcome::Fail),
            count(Outcome::Unknown),
        );

        let mut by_message: HashMap<&str, usize> = HashMap::new();
        for op in ops.iter().filter(|op| op.outcome != Outcome::Ok) {
            *by_message
                .entry(op.error.as_deref().unwrap_or("(no message)"))
                .or_default() += 1;
        }
        let mut top_errors: Vec<ErrorCount> = by_message
            .into_iter()
            .map(|(message, count)| ErrorCount {
                message: message.to_string(),
                count,
            })
            .collect();
        // Ties broken by message so the same history always gives the same table.
        top_errors.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.message.cmp(&b.message))
        });
        top_errors.truncate(TOP_ERRORS);

        let lost_writes = self
            .check(LOST_WRITES_CHECK)
            .and_then(|c| c.details.get("lost"))
            .and_then(|lost| {
                // Either a count or the list of lost writes.
                lost.as_u64()
                    .or_else(|| lost.as_array().map(|a| a.len() as u64))
            });
        let linearizable = match self.check(LINEARIZABLE_CHECK).map(|c| c.verdict) {
            Some(Verdict::Pass) => Linearizable::Yes,
            Some(Verdict::Fail) => Linearizable::No,
            Some(Verdict::Unknown) => Linearizable::Unknown,
            None => Linearizable::NotChecked,
        };
        let availability = self
            .check(AVAILABILITY_CHECK)
            .and_then(|c| c.details.get("overall"))
            .and_then(serde_json::Value::as_f64)
            .or_else(|| check::share(ok as u64, ops.len() as u64));

        let mut lat: Vec<u64> = ops.iter().filter_map(check::latency_us).collect();
        lat.sort_unstable();
        let ms = |us: u64| us as f64 / 1000.0;
        Summary {
            ops: ops.len(),
            ok,
            fail,
            unknown,
            errors: fail + unknown,
            top_errors,
            lost_writes,
            linearizable,
            availability,
            p50_ms: check::percentile(&lat, 0.50).map(ms),
            p99_ms: check::percentile(&lat, 0.99).map(ms),
        }
    }

    /// The faults to list, one line each: the fault windows of the history (what the plots
    /// shade), or the nemesis log when the history has no windows.
    fn fault_lines(&self) -> Vec<String> {
        if self.history.faults.is_empty() {
            return self.faults_applied.clone();
        }
        self.history
            .faults
            .iter()
            .map(|f| format!("{} .. {}: {}", secs(f.start_us), secs(f.end_us), f.name))
            .collect()
    }

    /// The terminal table: the run's headline figures, then one line per check with its
    /// verdict and summary. Plain text in fixed-width columns; text that came from the run
    /// (error messages, names) has its control characters replaced, so it cannot move the
    /// cursor or recolour the terminal.
    pub fn table(&self) -> String {
        let s = self.summary();
        let mut out = String::new();
        let row = |out: &mut String, label: &str, value: &str| {
            let _ = writeln!(out, "{label:<14}{value}");
        };
        let indent = " ".repeat(14);

        row(
            &mut out,
            "scenario",
            &format!(
                "{} (seed {}, {} nodes, started {}, {})",
                plain(&self.scenario),
                self.seed,
                self.nodes,
                plain(&self.started_at),
                secs(self.history.duration_us)
            ),
        );
        row(
            &mut out,
            "verdict",
            if self.passed() { "PASS" } else { "FAIL" },
        );
        let faults = self.fault_lines();
        row(&mut out, "faults", &faults.len().to_string());
        for f in &faults {
            let _ = writeln!(out, "{indent}{}", plain(f));
        }
        row(
            &mut out,
            "ops",
            &format!(
                "{} (ok {}, fail {}, unknown {})",
                s.ops, s.ok, s.fail, s.unknown
            ),
        );
        row(&mut out, "errors", &s.errors.to_string());
        for e in &s.top_errors {
            let _ = writeln!(out, "{indent}{:>7}  {}", e.count, plain(&e.message));
        }
        row(
            &mut out,
            "lost writes",
            &s.lost_writes
                .map_or_else(|| "not checked".to_string(), |n| n.to_string()),
        );
        row(&mut out, "linearizable", s.linearizable.as_str());
        row(&mut out, "availability", &percent(s.availability));
        row(
            &mut out,
            "latency",
            &format!("p50 {}, p99 {}", millis(s.p50_ms), millis(s.p99_ms)),
        );

        if !self.checks.is_empty() {
            let w = self
                .checks
                .iter()
                .map(|c| plain(&c.name).chars().count())
                .max()
                .unwrap_or(0)
                .max("CHECK".len());
            let _ = writeln!(out);
            let _ = writeln!(out, "{:<w$}  {:<8} SUMMARY", "CHECK", "VERDICT");
            for c in &self.checks {
                let _ = writeln!(
                    out,
                    "{:<w$}  {:<8} {}",
                    plain(&c.name),
                    verdict_str(c.verdict),
                    plain(&c.summary)
                );
            }
        }
        out
    }

    /// Writes `report.json`: the whole report, pretty-printed, plus `passed` and `summary`
    /// for scripts (which [`Report::read_json`] ignores on the way back).
    pub fn write_json(&self, path: impl AsRef<Path>) -> io::Result<()> {
        #[derive(Serialize)]
        struct Out<'a> {
            passed: bool,
            summary: Summary,
            #[serde(flatten)]
            report: &'a Report,
        }
        let mut w = BufWriter::new(File::create(path)?);
        serde_json::to_writer_pretty(
            &mut w,
            &Out {
                passed: self.passed(),
                summary: self.summary(),
                report: self,
            },
        )
        .map_err(io::Error::other)?;
        w.write_all(b"\n")?;
        w.flush()
    }

    /// Reads a report written by [`Report::write_json`] (to redraw its HTML, for instance).
    pub fn read_json(path: impl AsRef<Path>) -> io::Result<Report> {
        let r = BufReader::new(File::open(path)?);
        serde_json::from_reader(r).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// The self-contained HTML page (what [`Report::write_html`] writes).
    pub fn html(&self) -> String {
        html::render(self)
    }

    /// Writes `report.html`: one self-contained page (inline CSS, inline SVG plots, no script
    /// and no external URL), readable offline and attachable to a CI run.
    pub fn write_html(&self, path: impl AsRef<Path>) -> io::Result<()> {
        std::fs::write(path, self.html())
    }
}

/// `Pass`/`Fail`/`Unknown` as the table writes it.
fn verdict_str(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "FAIL",
        Verdict::Unknown => "unknown",
    }
}

/// µs as seconds with one decimal, `12.5 s`.
fn secs(us: u64) -> String {
    format!("{:.1} s", us as f64 / 1e6)
}

/// A share as a percentage with one decimal, or `n/a`.
fn percent(share: Option<f64>) -> String {
    share.map_or_else(|| "n/a".to_string(), |s| format!("{:.1} %", s * 100.0))
}

/// Milliseconds with two decimals, or `n/a`.
fn millis(ms: Option<f64>) -> String {
    ms.map_or_else(|| "n/a".to_string(), |m| format!("{m:.2} ms"))
}

/// Run-supplied text made safe for one table line: control characters (newlines, escape
/// sequences) become spaces, runs of whitespace collapse, long text is cut.
fn plain(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut out = cleaned.split_whitespace().collect::<Vec<_>>().join(" ");
    if out.chars().count() > MAX_MESSAGE_CHARS {
        out = out.chars().take(MAX_MESSAGE_CHARS - 1).collect();
        out.push('…');
    }
    out
}

/// A wall-clock time as RFC 3339 in UTC with second precision, `2026-11-27T10:56:15Z` (what
/// [`Report::started_at`] holds). Times before 1970 are written as the epoch.
pub fn rfc3339_utc(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `civil_from_days`),
/// so the crate needs no date library for one timestamp.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests;
