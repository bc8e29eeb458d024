//! `inject kill` and `inject pause`: signal a node's process, found through its admin API
//! (`GET /health`), so the node must run on this machine.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;

use super::admin::node_process;
use crate::scenario::parse_duration;

/// Arguments of `inject kill`.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct KillArgs {
    /// The node's admin API, HOST:PORT.
    #[arg(long, value_name = "ADDR")]
    pub admin: String,
}

/// Arguments of `inject pause`.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct PauseArgs {
    /// The node's admin API, HOST:PORT.
    #[arg(long, value_name = "ADDR")]
    pub admin: String,
    /// How long the node stays paused.
    #[arg(long = "for", value_name = "D", value_parser = parse_duration)]
    pub for_: Duration,
}

/// Sends `signal` (a `kill(1)` name or number: 9, STOP, CONT) to `pid`.
fn signal(pid: u32, signal: &str) -> Result<()> {
    let out = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .output()
        .context("cannot run kill(1)")?;
    if !out.status.success() {
        bail!(
            "kill -{signal} {pid} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Runs `inject kill`: SIGKILL to the node's process.
pub async fn run_kill(a: KillArgs) -> Result<()> {
    let node = node_process(&a.admin).await?;
    signal(node.pid, "9")?;
    println!("killed node {} (pid {}) with SIGKILL", node.name, node.pid);
    Ok(())
}

/// Runs `inject pause`: SIGSTOP, then SIGCONT after `--for` or on Ctrl-C.
pub async fn run_pause(a: PauseArgs) -> Result<()> {
    let node = node_process(&a.admin).await?;
    signal(node.pid, "STOP")?;
    println!(
        "paused node {} (pid {}) for {:?} (Ctrl-C resumes it now)",
        node.name, node.pid, a.for_
    );
    tokio::select! {
        () = tokio::time::sleep(a.for_) => {}
        () = super::ctrl_c() => println!("interrupted"),
    }
    // Whatever happened while waiting, the node must not stay stopped.
    signal(node.pid, "CONT")?;
    println!("resumed node {} (pid {})", node.name, node.pid);
    Ok(())
}

#[cfg(test)]
mod tests {
    use tokio::time::Instant;

    use super::*;
    use crate::inject::testkit::{Stub, WAIT, parse};
    use crate::inject::{InjectCmd, run};

    #[test]
    fn kill_and_pause_arguments() {
        assert_eq!(
            parse(&["kill", "--admin", "127.0.0.1:8080"]).expect("parses"),
            InjectCmd::Kill(KillArgs {
                admin: "127.0.0.1:8080".into()
            })
        );
        assert_eq!(
            parse(&["pause", "--admin", "127.0.0.1:8080", "--for", "500ms"]).expect("parses"),
            InjectCmd::Pause(PauseArgs {
                admin: "127.0.0.1:8080".into(),
                for_: Duration::from_millis(500),
            })
        );
        assert!(
            parse(&["pause", "--admin", "a:1"]).is_err(),
            "pause needs --for"
        );
    }

    /// A `sleep` process standing in for a node; killed when dropped.
    struct Victim(std::process::Child);

    impl Drop for Victim {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    impl Victim {
        fn spawn() -> Victim {
            Victim(
                std::process::Command::new("sleep")
                    .arg("60")
                    .spawn()
                    .expect("spawn sleep"),
            )
        }

        async fn health_stub(&self) -> Stub {
            Stub::start(
                "200 OK",
                format!(r#"{{"status":"ok","node":"victim","pid":{}}}"#, self.0.id()),
            )
            .await
        }

        /// The process state letter from /proc (R, S, T, Z...).
        fn state(&self) -> char {
            let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.0.id()))
                .expect("read /proc stat");
            // The state follows the command name, which is in parentheses.
            stat.rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next())
                .expect("a state")
        }

        async fn wait_state(&self, what: &str, ok: impl Fn(char) -> bool) {
            let deadline = Instant::now() + WAIT;
            while !ok(self.state()) {
                assert!(Instant::now() < deadline, "never {what}: {}", self.state());
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }

    #[cfg(target_os = "linux")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kill_sends_sigkill_to_the_pid_from_health() {
        use std::os::unix::process::ExitStatusExt;
        let mut victim = Victim::spawn();
        let mut stub = victim.health_stub().await;
        run(InjectCmd::Kill(KillArgs {
            admin: stub.addr.to_string(),
        }))
        .await
        .expect("kill");
        assert_eq!(stub.next().await.request_line, "GET /health HTTP/1.1");
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(s) = victim.0.try_wait().expect("try_wait") {
                break s;
            }
            assert!(Instant::now() < deadline, "the victim outlived kill -9");
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        assert_eq!(status.signal(), Some(9));
    }

    #[cfg(target_os = "linux")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pause_stops_then_continues_the_process() {
        let victim = Victim::spawn();
        let stub = victim.health_stub().await;
        let pause = tokio::spawn(run(InjectCmd::Pause(PauseArgs {
            admin: stub.addr.to_string(),
            for_: Duration::from_secs(2),
        })));
        victim.wait_state("stopped", |s| s == 'T').await;
        tokio::time::timeout(WAIT, pause)
            .await
            .expect("pause ends in time")
            .expect("pause task")
            .expect("pause");
        // Resumed: sleeping again, not stopped.
        victim.wait_state("resumed", |s| s != 'T').await;
    }
}
