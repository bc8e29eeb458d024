//! The peer `erlmcp node` processes a run starts, and the guard that kills them.

use super::*;

/// The peer processes this run started; every one still running is killed (SIGKILL) and reaped
/// when the guard drops: at the end, on an error, on Ctrl-C, on a panic.
#[derive(Default)]
pub(super) struct Children(Vec<(String, Child)>);

impl Children {
    pub(super) fn add(&mut self, name: &str, child: Child) -> u32 {
        let pid = child.id();
        self.0.push((name.to_string(), child));
        pid
    }

    /// Kills the child `pid` now (SIGKILL) and reaps it.
    pub(super) fn kill(&mut self, pid: u32) -> anyhow::Result<()> {
        let i = self
            .0
            .iter()
            .position(|(_, c)| c.id() == pid)
            .ok_or_else(|| anyhow!("no child {pid}"))?;
        let (name, mut child) = self.0.swap_remove(i);
        child.kill().with_context(|| format!("killing {name}"))?;
        let _ = child.wait();
        Ok(())
    }

    /// Fails if a child exited by itself (it must not, before the bench kills it).
    pub(super) fn check_alive(&mut self, logs: &Path) -> anyhow::Result<()> {
        for (name, child) in &mut self.0 {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "{name} exited early ({status}); see its log in {}",
                    logs.display()
                );
            }
        }
        Ok(())
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How to start an `erlmcp node` that joins this process.
pub(super) struct PeerLauncher {
    pub(super) erlmcp: PathBuf,
    pub(super) join: String,
    pub(super) cookie: String,
    pub(super) keepalive: Duration,
    pub(super) idle_timeout: Duration,
    pub(super) threads: Option<usize>,
    pub(super) log_dir: PathBuf,
}

impl PeerLauncher {
    pub(super) fn spawn(&self, name: &str, log: &str) -> anyhow::Result<Child> {
        let log_path = self.log_dir.join(log);
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let any = "127.0.0.1:0";
        let mut cmd = Command::new(&self.erlmcp);
        if let Some(n) = self.threads {
            cmd.env("TOKIO_WORKER_THREADS", n.max(1).to_string());
        }
        cmd.arg("node")
            .args(["--name", name])
            .args(["--tcp", any, "--http", any, "--admin", any, "--quic", any])
            .args(["--cluster", any, "--join", &self.join])
            .args(["--cookie", &self.cookie])
            .arg("--cluster-keepalive")
            .arg(format!("{}ms", self.keepalive.as_millis().max(1)))
            .arg("--cluster-idle-timeout")
            .arg(format!("{}ms", self.idle_timeout.as_millis().max(1)))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {} node --name {name}", self.erlmcp.display()))
    }
}

pub(super) fn erlmcp_path(arg: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let path = match arg {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .context("locating this executable")?
            .parent()
            .ok_or_else(|| anyhow!("this executable has no parent directory"))?
            .join("erlmcp"),
    };
    if !path.is_file() {
        bail!(
            "no erlmcp binary at {} (build it with cargo build --release -p erlmcp-node, or pass \
             --erlmcp PATH)",
            path.display()
        );
    }
    Ok(path)
}
