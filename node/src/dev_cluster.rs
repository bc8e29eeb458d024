//! `erlmcp dev-cluster`: N nodes of this same binary on loopback, meshed, until Ctrl-C.
//!
//! Node `i` is named `node{i}` and listens on `P + 10*i + k` for `k` = 0 MCP over TCP, 1 MCP
//! over HTTP, 2 MCP over QUIC, 3 cluster, 4 admin (`P` = `--base-port`, 7400 by default, so
//! node0 has the single-node defaults). Every node after the first joins all the nodes before
//! it, so the mesh forms even if node0 is slow to start.
//!
//! Each node's log lines come out on our stderr prefixed with `[node{i}] `. A node that exits
//! on its own is reported (with the command that restarts it) and the others keep running;
//! when every node has exited, so does dev-cluster, with an error. SIGINT, SIGTERM or SIGHUP
//! stops every node with SIGTERM (SIGKILL after [`STOP_TIMEOUT`]) and exits 0.
//!
//! Nodes run in their own process group, so a Ctrl-C in the terminal reaches dev-cluster only
//! and the nodes are stopped in an orderly way by it. If dev-cluster itself is SIGKILLed, its
//! nodes keep running (nothing in std lets a child die with its parent): stop them by pid.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::sync::mpsc;

/// Largest mesh dev-cluster starts (a dev tool, not a load generator).
pub const MAX_NODES: u16 = 50;
/// Default `--base-port`: node0 gets the single-node default ports.
pub const DEFAULT_BASE_PORT: u16 = 7400;
/// How long nodes get to stop after SIGTERM before SIGKILL: a node's default shutdown grace
/// (10 s) plus a margin.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// How long to wait for nodes after SIGKILL, and for their last log lines.
const KILL_TIMEOUT: Duration = Duration::from_secs(5);

/// Port offsets within a node's block of ten.
const TCP: u16 = 0;
const HTTP: u16 = 1;
const QUIC: u16 = 2;
const CLUSTER: u16 = 3;
const ADMIN: u16 = 4;

/// `erlmcp dev-cluster` flags.
#[derive(clap::Args, Debug)]
pub struct DevClusterArgs {
    /// Number of nodes (1 to 50).
    #[arg(long, default_value_t = 3)]
    pub nodes: u16,
    /// First port: node i uses BASE+10*i .. BASE+10*i+4 (tcp, http, quic, cluster, admin).
    #[arg(long, value_name = "PORT", default_value_t = DEFAULT_BASE_PORT)]
    pub base_port: u16,
    /// Cluster cookie passed to every node [default: the nodes' default].
    #[arg(long, value_name = "SECRET")]
    pub cookie: Option<String>,
    /// Extra arguments for every `erlmcp node`, after `--`.
    #[arg(last = true, value_name = "NODE_ARGS")]
    pub node_args: Vec<String>,
}

/// One node's ports and name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NodePlan {
    name: String,
    base: u16,
}

impl NodePlan {
    fn addr(&self, offset: u16) -> String {
        format!("127.0.0.1:{}", self.base + offset)
    }
}

/// The nodes to start, after checking the ports fit.
fn plan(nodes: u16, base_port: u16) -> anyhow::Result<Vec<NodePlan>> {
    if !(1..=MAX_NODES).contains(&nodes) {
        bail!("--nodes must be between 1 and {MAX_NODES}, not {nodes}");
    }
    if base_port == 0 {
        bail!("--base-port must not be 0 (nodes need fixed ports to find each other)");
    }
    let highest = u32::from(base_port) + 10 * (u32::from(nodes) - 1) + u32::from(ADMIN);
    if highest > u32::from(u16::MAX) {
        bail!(
            "--base-port {base_port} is too high for {nodes} nodes: they need ports up to {highest} (at most 65535); \
             use --base-port {} or lower",
            u32::from(u16::MAX) - (highest - u32::from(base_port))
        );
    }
    Ok((0..nodes)
        .map(|i| NodePlan {
            name: format!("node{i}"),
            base: base_port + 10 * i,
        })
        .collect())
}

/// The `erlmcp node` arguments of node `i`.
fn node_args(plans: &[NodePlan], i: usize, args: &DevClusterArgs) -> Vec<String> {
    let p = &plans[i];
    let mut v: Vec<String> = vec![
        "node".into(),
        "--name".into(),
        p.name.clone(),
        "--tcp".into(),
        p.addr(TCP),
        "--http".into(),
        p.addr(HTTP),
        "--quic".into(),
        p.addr(QUIC),
        "--cluster".into(),
        p.addr(CLUSTER),
        "--admin".into(),
        p.addr(ADMIN),
    ];
    if i > 0 {
        let seeds: Vec<String> = plans[..i].iter().map(|s| s.addr(CLUSTER)).collect();
        v.push("--join".into());
        v.push(seeds.join(","));
    }
    if let Some(cookie) = &args.cookie {
        v.push("--cookie".into());
        v.push(cookie.clone());
    }
    v.extend(args.node_args.iter().cloned());
    v
}

/// The endpoint table printed at start.
fn table(plans: &[NodePlan], pids: &[u32]) -> String {
    let header = ["NAME", "TCP", "HTTP", "QUIC", "CLUSTER", "ADMIN", "PID"];
    let rows: Vec<[String; 7]> = plans
        .iter()
        .zip(pids)
        .map(|(p, pid)| {
            [
                p.name.clone(),
                p.addr(TCP),
                format!("http://{}/mcp", p.addr(HTTP)),
                p.addr(QUIC),
                p.addr(CLUSTER),
                p.addr(ADMIN),
                pid.to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; 7]| {
        let mut l = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 < cells.len() {
                l.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            } else {
                l.push_str(cell);
            }
        }
        out.push_str(&l);
        out.push('\n');
    };
    line(header);
    for row in &rows {
        line(row.each_ref().map(String::as_str));
    }
    out
}

/// The command line that restarts a node, for the operator.
fn command_line(exe: &Path, args: &[String]) -> String {
    let quote = |s: &str| {
        if !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./:,=@".contains(c))
        {
            s.to_string()
        } else {
            format!("'{}'", s.replace('\'', r"'\''"))
        }
    };
    std::iter::once(exe.to_string_lossy().as_ref())
        .chain(args.iter().map(String::as_str))
        .map(quote)
        .collect::<Vec<_>>()
        .join(" ")
}

/// What the per-node threads report.
enum Event {
    /// Node `i` exited (its waiter thread reaped it).
    Exited(usize, std::io::Result<ExitStatus>),
    /// Node `i`'s stderr reached its end (all its log lines are forwarded).
    LogClosed(usize),
}

/// A started node.
struct Running {
    name: String,
    pid: u32,
    args: Vec<String>,
    alive: bool,
    log_open: bool,
}

/// Sends `sig` (`-TERM`, `-KILL`) to `pid` with kill(1): std can only SIGKILL a child, and
/// the node needs SIGTERM to stop cleanly.
fn signal(pid: u32, sig: &str) {
    match Command::new("kill")
        .args([sig, &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => {}
        // Most likely it exited meanwhile; its waiter reports that.
        Ok(s) => eprintln!("dev-cluster: kill {sig} {pid}: {s}"),
        Err(e) => eprintln!("dev-cluster: cannot run kill {sig} {pid}: {e}"),
    }
}

/// Starts node `i`: a thread forwards its stderr with the `[name] ` prefix and another waits
/// for its exit, both reporting to `events`.
fn spawn_node(
    exe: &PathBuf,
    i: usize,
    name: &str,
    args: Vec<String>,
    events: &mpsc::UnboundedSender<Event>,
) -> anyhow::Result<Running> {
    let mut child: Child = Command::new(exe)
        .args(&args)
        .stdin(Stdio::null())
        // A node without --stdio writes nothing on stdout; keep our table uncluttered anyway.
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // Own process group: a terminal's Ctrl-C reaches dev-cluster only, which stops the
        // nodes in order (and reports them) instead of racing them.
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {name} ({})", exe.display()))?;
    let pid = child.id();
    let stderr = child.stderr.take();
    let prefix = format!("[{name}] ");
    let tx = events.clone();
    std::thread::Builder::new()
        .name(format!("{name}-log"))
        .spawn(move || {
            if let Some(stderr) = stderr {
                for line in BufReader::new(stderr).split(b'\n') {
                    let Ok(line) = line else { break };
                    let line = String::from_utf8_lossy(&line);
                    // One write per line: lines of different nodes never interleave.
                    let mut err = std::io::stderr().lock();
                    let _ = writeln!(err, "{prefix}{}", line.trim_end_matches('\r'));
                }
            }
            let _ = tx.send(Event::LogClosed(i));
        })
        .context("starting a log thread")?;
    let tx = events.clone();
    std::thread::Builder::new()
        .name(format!("{name}-wait"))
        .spawn(move || {
            let status = child.wait();
            let _ = tx.send(Event::Exited(i, status));
        })
        .context("starting a waiter thread")?;
    Ok(Running {
        name: name.to_string(),
        pid,
        args,
        alive: true,
        log_open: true,
    })
}

/// SIGINT, SIGTERM and SIGHUP (a closed terminal must not orphan the nodes either).
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            hup: signal(SignalKind::hangup()).context("installing the SIGHUP handler")?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
            _ = self.hup.recv() => "SIGHUP",
        }
    }
}

/// Runs `erlmcp dev-cluster`.
pub async fn run(args: DevClusterArgs) -> anyhow::Result<()> {
    let plans = plan(args.nodes, args.base_port)?;
    let exe = std::env::current_exe().context("finding the erlmcp binary")?;
    // Before any node starts, so a signal right after start-up still stops them cleanly.
    let mut signals = Signals::install()?;
    let (tx, mut events) = mpsc::unbounded_channel();

    let mut nodes: Vec<Running> = Vec::with_capacity(plans.len());
    for (i, p) in plans.iter().enumerate() {
        match spawn_node(&exe, i, &p.name, node_args(&plans, i, &args), &tx) {
            Ok(n) => nodes.push(n),
            Err(e) => {
                stop_all(&mut nodes, &mut events).await;
                return Err(e);
            }
        }
    }
    drop(tx); // the threads hold the only senders now

    let pids: Vec<u32> = nodes.iter().map(|n| n.pid).collect();
    let mut out = std::io::stdout().lock();
    let printed = write!(
        out,
        "{}mesh status: erlmcp status --admin {}\nstop every node with Ctrl-C\n",
        table(&plans, &pids),
        plans[0].addr(ADMIN)
    )
    .and_then(|()| out.flush());
    drop(out);
    if let Err(e) = printed {
        // Whoever reads our stdout went away: nobody will see the table, but the nodes run on.
        eprintln!("dev-cluster: cannot print the endpoint table: {e}");
    }

    loop {
        tokio::select! {
            sig = signals.recv() => {
                eprintln!("dev-cluster: {sig}; stopping {} node(s)", nodes.iter().filter(|n| n.alive).count());
                stop_all(&mut nodes, &mut events).await;
                return Ok(());
            }
            ev = events.recv() => match ev {
                Some(Event::Exited(i, status)) => {
                    nodes[i].alive = false;
                    let left = nodes.iter().filter(|n| n.alive).count();
                    let n = &nodes[i];
                    let status = match status {
                        Ok(s) => s.to_string(),
                        Err(e) => format!("unknown status ({e})"),
                    };
                    eprintln!(
                        "dev-cluster: {} (pid {}) exited unexpectedly: {status}; {left} node(s) still running. Restart it with:\n  {}",
                        n.name,
                        n.pid,
                        command_line(&exe, &n.args)
                    );
                    if left == 0 {
                        drain_logs(&mut nodes, &mut events).await;
                        bail!("all {} node(s) exited", nodes.len());
                    }
                }
                Some(Event::LogClosed(i)) => nodes[i].log_open = false,
                // Cannot happen while a node is alive (its waiter holds a sender).
                None => bail!("lost track of the nodes"),
            }
        }
    }
}

/// SIGTERM to every live node; SIGKILL to those still alive after [`STOP_TIMEOUT`]; then waits
/// for their last log lines.
async fn stop_all(nodes: &mut [Running], events: &mut mpsc::UnboundedReceiver<Event>) {
    for n in nodes.iter().filter(|n| n.alive) {
        signal(n.pid, "-TERM");
    }
    if !wait_exits(nodes, events, STOP_TIMEOUT).await {
        for n in nodes.iter().filter(|n| n.alive) {
            eprintln!(
                "dev-cluster: {} (pid {}) still running after {}s; killing it",
                n.name,
                n.pid,
                STOP_TIMEOUT.as_secs()
            );
            signal(n.pid, "-KILL");
        }
        if !wait_exits(nodes, events, KILL_TIMEOUT).await {
            for n in nodes.iter().filter(|n| n.alive) {
                eprintln!("dev-cluster: {} (pid {}) did not die", n.name, n.pid);
            }
        }
    }
    drain_logs(nodes, events).await;
}

/// Waits until every node has exited, or `timeout`; true if they all did.
async fn wait_exits(
    nodes: &mut [Running],
    events: &mut mpsc::UnboundedReceiver<Event>,
    timeout: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while nodes.iter().any(|n| n.alive) {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(ev)) => apply(nodes, ev),
            Ok(None) | Err(_) => return false,
        }
    }
    true
}

/// Waits (bounded) until every node's stderr is forwarded to the end, so "node stopped" and
/// any last words are printed before we exit.
async fn drain_logs(nodes: &mut [Running], events: &mut mpsc::UnboundedReceiver<Event>) {
    let deadline = tokio::time::Instant::now() + KILL_TIMEOUT;
    while nodes.iter().any(|n| n.log_open) {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(ev)) => apply(nodes, ev),
            Ok(None) | Err(_) => return,
        }
    }
}

/// Notes an event seen while stopping: exits are expected then, only failures are worth a line.
fn apply(nodes: &mut [Running], ev: Event) {
    match ev {
        Event::Exited(i, status) => {
            let n = &mut nodes[i];
            n.alive = false;
            match status {
                Ok(s) if s.success() => {}
                Ok(s) => eprintln!("dev-cluster: {} exited: {s}", n.name),
                Err(e) => eprintln!("dev-cluster: {}: cannot wait for it: {e}", n.name),
            }
        }
        Event::LogClosed(i) => nodes[i].log_open = false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(nodes: u16, cookie: Option<&str>, extra: &[&str]) -> DevClusterArgs {
        DevClusterArgs {
            nodes,
            base_port: DEFAULT_BASE_PORT,
            cookie: cookie.map(str::to_string),
            node_args: extra.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn plan_checks_node_count_and_ports() {
        let e = |n, p| plan(n, p).expect_err("invalid").to_string();
        assert!(e(0, 7400).contains("between 1 and 50"));
        assert!(e(51, 7400).contains("between 1 and 50"));
        assert!(e(2, 0).contains("must not be 0"));
        // 2 nodes at 65520 need up to 65534: fine; at 65522 they need 65536.
        assert_eq!(plan(2, 65520).expect("fits").len(), 2);
        let high = e(2, 65522);
        assert!(
            high.contains("up to 65536") && high.contains("--base-port 65521"),
            "{high}"
        );
        let p = plan(3, 7400).expect("fits");
        assert_eq!(
            p.iter()
                .map(|p| (p.name.as_str(), p.base))
                .collect::<Vec<_>>(),
            [("node0", 7400), ("node1", 7410), ("node2", 7420)]
        );
    }

    #[test]
    fn node_args_join_every_lower_node_and_pass_cookie_and_extras() {
        let a = args(3, Some("s3cret"), &["--log-format", "json"]);
        let plans = plan(3, 7400).expect("fits");
        let n0 = node_args(&plans, 0, &a).join(" ");
        assert_eq!(
            n0,
            "node --name node0 --tcp 127.0.0.1:7400 --http 127.0.0.1:7401 --quic 127.0.0.1:7402 \
             --cluster 127.0.0.1:7403 --admin 127.0.0.1:7404 --cookie s3cret --log-format json"
        );
        let n2 = node_args(&plans, 2, &args(3, None, &[])).join(" ");
        assert_eq!(
            n2,
            "node --name node2 --tcp 127.0.0.1:7420 --http 127.0.0.1:7421 --quic 127.0.0.1:7422 \
             --cluster 127.0.0.1:7423 --admin 127.0.0.1:7424 --join 127.0.0.1:7403,127.0.0.1:7413"
        );
    }

    #[test]
    fn table_lists_every_endpoint() {
        let plans = plan(2, 7400).expect("fits");
        let t = table(&plans, &[11, 2222]);
        let expected = "\
NAME   TCP             HTTP                       QUIC            CLUSTER         ADMIN           PID
node0  127.0.0.1:7400  http://127.0.0.1:7401/mcp  127.0.0.1:7402  127.0.0.1:7403  127.0.0.1:7404  11
node1  127.0.0.1:7410  http://127.0.0.1:7411/mcp  127.0.0.1:7412  127.0.0.1:7413  127.0.0.1:7414  2222
";
        assert_eq!(t, expected, "\n{t}");
    }

    #[test]
    fn command_line_quotes_what_the_shell_would_split() {
        let exe = Path::new("/bin/erlmcp");
        let args = [
            "node".to_string(),
            "a b".into(),
            "it's".into(),
            String::new(),
        ];
        assert_eq!(
            command_line(exe, &args),
            r"/bin/erlmcp node 'a b' 'it'\''s' ''"
        );
    }
}
