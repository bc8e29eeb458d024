//! Progress of a run on stderr: a live bar (indicatif) when stderr is a terminal, otherwise a
//! plain line every [`LINE_EVERY`] of run time, so CI logs show the run moving without being
//! flooded with redraws. stdout stays free for the report table.

use std::io::{self, IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::plain;

/// How often the plain (non-terminal) display prints a line, in run time.
pub const LINE_EVERY: Duration = Duration::from_secs(5);

/// Counts shown with each update.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Counts {
    elapsed: Duration,
    ops: u64,
    ok: u64,
    fail: u64,
    unknown: u64,
    faults: Vec<String>,
}

/// Where the progress goes.
enum Mode {
    /// Nothing is shown.
    Quiet,
    /// A live bar on the terminal; position in ms of run time.
    Bar(ProgressBar),
    /// A plain line now and then (stderr is a file or a pipe).
    Lines {
        out: Box<dyn Write + Send>,
        /// Run time at which the next line is due (the first tick always prints).
        next_at: Duration,
    },
}

/// The run's progress display. Call [`Progress::tick`] as the run goes (as often as wanted: the
/// bar redraws at most a few times a second and the plain display prints every
/// [`LINE_EVERY`]) and [`Progress::finish`] at the end.
pub struct Progress {
    total: Duration,
    mode: Mode,
    last: Counts,
    finished: bool,
}

impl Progress {
    /// A display for a run of `total_duration`. `quiet` shows nothing at all. Otherwise a bar
    /// when stderr is a terminal, else plain lines on stderr.
    pub fn new(total_duration: Duration, quiet: bool) -> Progress {
        let mode = if quiet {
            Mode::Quiet
        } else if io::stderr().is_terminal() {
            Mode::Bar(bar(total_duration))
        } else {
            Mode::Lines {
                out: Box::new(io::stderr()),
                next_at: Duration::ZERO,
            }
        };
        Progress {
            total: total_duration,
            mode,
            last: Counts::default(),
            finished: false,
        }
    }

    /// The plain display writing to `out` (what a non-terminal stderr gets), for tests.
    #[cfg(test)]
    fn lines_to(total_duration: Duration, out: Box<dyn Write + Send>) -> Progress {
        Progress {
            total: total_duration,
            mode: Mode::Lines {
                out,
                next_at: Duration::ZERO,
            },
            last: Counts::default(),
            finished: false,
        }
    }

    /// Reports the run's state: run time so far, operations completed so far by outcome, and
    /// the faults active now (their names).
    pub fn tick(
        &mut self,
        elapsed: Duration,
        ops: u64,
        ok: u64,
        fail: u64,
        unknown: u64,
        active_faults: &[String],
    ) {
        if self.finished {
            return;
        }
        self.last = Counts {
            elapsed,
            ops,
            ok,
            fail,
            unknown,
            faults: active_faults.to_vec(),
        };
        match &mut self.mode {
            Mode::Quiet => {}
            Mode::Bar(pb) => {
                pb.set_position(millis(elapsed.min(self.total)));
                pb.set_message(message(&self.last, self.total));
            }
            Mode::Lines { out, next_at } => {
                if elapsed >= *next_at {
                    // Next line at the next multiple of LINE_EVERY, so lines fall on round
                    // times however irregular the ticks are.
                    let step = LINE_EVERY.as_micros().max(1);
                    let next = (elapsed.as_micros() / step + 1) * step;
                    *next_at = Duration::from_micros(u64::try_from(next).unwrap_or(u64::MAX));
                    // Progress is best effort: a closed stderr must not stop the run.
                    let _ = writeln!(out, "erlmcp-chaos: {}", message(&self.last, self.total));
                }
            }
        }
    }

    /// Ends the display: the bar stays with its final state, the plain display prints a last
    /// line. Later calls (and ticks) do nothing.
    pub fn finish(&mut self) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let msg = message(&self.last, self.total);
        match &mut self.mode {
            Mode::Quiet => {}
            Mode::Bar(pb) => pb.finish_with_message(msg),
            Mode::Lines { out, .. } => {
                let _ = writeln!(out, "erlmcp-chaos: done: {msg}");
                let _ = out.flush();
            }
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        // A run that bails out early still leaves the terminal with its last state shown.
        self.finish();
    }
}

/// The terminal bar, drawn on stderr.
fn bar(total: Duration) -> ProgressBar {
    let style = ProgressStyle::with_template("{spinner} [{bar:30}] {wide_msg}")
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    let pb = ProgressBar::with_draw_target(Some(millis(total)), ProgressDrawTarget::stderr())
        .with_style(style);
    // Keeps the spinner turning while the run is stuck in a fault and ticks slow down.
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

/// A duration in whole milliseconds, saturating.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The status text: time, counts, active faults.
fn message(c: &Counts, total: Duration) -> String {
    let pct = if total.is_zero() {
        100.0
    } else {
        (c.elapsed.as_secs_f64() / total.as_secs_f64() * 100.0).min(100.0)
    };
    let faults = if c.faults.is_empty() {
        "none".to_string()
    } else {
        c.faults
            .iter()
            .map(|f| plain(f))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "{:.1}/{:.1} s ({pct:.0}%)  ops {} ok {} fail {} unknown {}  faults: {faults}",
        c.elapsed.as_secs_f64(),
        total.as_secs_f64(),
        c.ops,
        c.ok,
        c.fail,
        c.unknown,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A writer whose bytes the test can read afterwards.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| io::Error::other("poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().expect("lock").clone()).expect("utf-8")
        }
    }

    #[test]
    fn plain_display_prints_every_five_seconds_of_run_time_and_a_final_line() {
        let buf = Shared::default();
        let mut p = Progress::lines_to(Duration::from_secs(20), Box::new(buf.clone()));
        let fault = vec!["kill node1".to_string()];
        for ms in (0..=12_000).step_by(250) {
            let n = ms / 10;
            let faults: &[String] = if ms >= 6_000 { &fault } else { &[] };
            p.tick(Duration::from_millis(ms), n, n, 0, 0, faults);
        }
        p.finish();
        p.finish();
        p.tick(Duration::from_secs(19), 1, 1, 0, 0, &[]);
        let text = buf.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(
            lines[0].starts_with("erlmcp-chaos: 0.0/20.0 s (0%)  ops 0"),
            "{text}"
        );
        assert!(
            lines[1].contains("5.0/20.0 s (25%)  ops 500 ok 500"),
            "{text}"
        );
        assert!(lines[1].ends_with("faults: none"), "{text}");
        assert!(lines[2].contains("10.0/20.0 s") && lines[2].ends_with("faults: kill node1"));
        assert!(
            lines[3].starts_with("erlmcp-chaos: done: 12.0/20.0 s"),
            "{text}"
        );
    }

    #[test]
    fn fault_names_cannot_inject_control_characters() {
        let c = Counts {
            faults: vec!["kill\x1b[2J node1\n".to_string()],
            ..Counts::default()
        };
        let m = message(&c, Duration::from_secs(1));
        assert!(!m.chars().any(char::is_control), "{m:?}");
        assert!(m.ends_with("faults: kill [2J node1"), "{m:?}");
    }

    #[test]
    fn quiet_display_shows_nothing_and_survives_use() {
        let mut p = Progress::new(Duration::ZERO, true);
        p.tick(Duration::from_secs(3), 1, 1, 0, 0, &[]);
        p.finish();
        assert!(matches!(p.mode, Mode::Quiet));
        assert_eq!(
            message(&p.last, p.total),
            "3.0/0.0 s (100%)  ops 1 ok 1 fail 0 unknown 0  faults: none"
        );
    }
}
