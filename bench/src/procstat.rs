//! CPU accounting of a process from `/proc` (Linux): CPU time used and time spent runnable but
//! waiting for a CPU. On a shared machine the second one says whether a latency number measures
//! the program or the scheduler.

use std::time::Duration;

/// Clock ticks per second of `/proc/PID/stat` times (`getconf CLK_TCK`, 100 on Linux).
const CLK_TCK: f64 = 100.0;

/// CPU accounting of one process at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuUsage {
    /// User CPU time, seconds.
    pub user: f64,
    /// System CPU time, seconds.
    pub sys: f64,
    /// Time its threads were runnable but not running (run-queue wait), seconds; live threads only.
    pub runq_wait: f64,
}

impl CpuUsage {
    /// Reads `/proc/PID/stat` and every `/proc/PID/task/*/schedstat`; `pid` `None` is this process.
    pub fn read(pid: Option<u32>) -> Option<Self> {
        let dir = match pid {
            Some(p) => format!("/proc/{p}"),
            None => "/proc/self".to_string(),
        };
        let stat = std::fs::read_to_string(format!("{dir}/stat")).ok()?;
        let (user, sys) = parse_stat_times(&stat)?;
        let mut wait_ns = 0u64;
        if let Ok(tasks) = std::fs::read_dir(format!("{dir}/task")) {
            for t in tasks.flatten() {
                if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
                    wait_ns += parse_schedstat_wait(&s).unwrap_or(0);
                }
            }
        }
        Some(Self {
            user,
            sys,
            runq_wait: Duration::from_nanos(wait_ns).as_secs_f64(),
        })
    }

    /// `self - earlier`.
    pub fn since(&self, earlier: &CpuUsage) -> CpuUsage {
        CpuUsage {
            user: self.user - earlier.user,
            sys: self.sys - earlier.sys,
            runq_wait: (self.runq_wait - earlier.runq_wait).max(0.0),
        }
    }

    /// User + system.
    pub fn cpu(&self) -> f64 {
        self.user + self.sys
    }
}

/// (utime, stime) in seconds from the contents of `/proc/PID/stat`.
pub fn parse_stat_times(stat: &str) -> Option<(f64, f64)> {
    // The command name (field 2) is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state): utime is field 14, stime field 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime / CLK_TCK, stime / CLK_TCK))
}

/// Run-queue wait (ns) from the contents of `/proc/PID/task/TID/schedstat`.
pub fn parse_schedstat_wait(s: &str) -> Option<u64> {
    s.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_times() {
        let s =
            "1234 (erlmcp (x) y) S 1 1234 1234 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 3 0 100 0 0";
        assert_eq!(parse_stat_times(s), Some((2.5, 0.75)));
        assert_eq!(parse_stat_times("1 (x) S 1 2"), None);
        assert_eq!(parse_stat_times("garbage"), None);
    }

    #[test]
    fn schedstat() {
        assert_eq!(parse_schedstat_wait("1060849 157646 2\n"), Some(157_646));
        assert_eq!(parse_schedstat_wait("1"), None);
    }

    #[test]
    fn reads_this_process() {
        let a = CpuUsage::read(None).expect("/proc is mounted");
        let b = CpuUsage::read(None).expect("/proc is mounted");
        let d = b.since(&a);
        assert!(d.cpu() >= 0.0 && d.runq_wait >= 0.0, "{d:?}");
    }
}
