//! `erlmcp-chaos inject ...`: one fault by hand, against nodes started by anyone.
//!
//! - `relay` and `tcp-proxy` run a [`Relay`] or a [`TcpProxy`] in the foreground with the
//!   faults given on the command line, print their counters every [`REPORT_EVERY`], and stop
//!   after `--for` or on Ctrl-C. Point the node's peers (relay) or clients (proxy) at the
//!   printed address.
//! - `kill` and `pause` find a node's process id through its admin API (`GET /health`) and
//!   signal it with `kill(1)`, so the node must run on this machine.
//! - `actor-kill` asks a node to kill one of its actors (`POST /admin/chaos/kill`, only on a
//!   node started with `--chaos --admin-token TOKEN`), once or as a restart storm
//!   (`--repeat N --every D`).
//!
//! The admin API is plain HTTP/1.1 on loopback; a small client here (one request per
//! connection) is all it takes.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::relay::{Direction, LinkFault, Relay, RelayStats};
use crate::scenario::parse_duration;
use crate::tcp_proxy::{ProxyStats, TcpProxy};

/// How often `relay` and `tcp-proxy` print their counters.
pub const REPORT_EVERY: Duration = Duration::from_secs(5);
/// How long connecting to an admin API may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an admin request may take, connecting included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest admin response read; the admin API's answers are a few hundred bytes.
const MAX_RESPONSE: u64 = 1 << 20;

/// Faults injected by hand.
#[derive(Subcommand, Debug, Clone, PartialEq)]
pub enum InjectCmd {
    /// Run a UDP fault relay in the foreground (put it in front of a node's QUIC or cluster
    /// port and point the peers at it).
    Relay(RelayArgs),
    /// Run a TCP fault proxy in the foreground (put it in front of a node's MCP TCP or HTTP
    /// listener and point the clients at it).
    TcpProxy(TcpProxyArgs),
    /// `kill -9` a node running on this machine, found through its admin API.
    Kill(KillArgs),
    /// Pause a node running on this machine (SIGSTOP), then resume it (SIGCONT) after `--for`
    /// or on Ctrl-C.
    Pause(PauseArgs),
    /// Kill an actor through a node's admin API (the node must run with `--chaos
    /// --admin-token`); its supervisor restarts it.
    ActorKill(ActorKillArgs),
}

/// Arguments of `inject relay`.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct RelayArgs {
    /// Address to listen on (UDP).
    #[arg(long)]
    pub listen: SocketAddr,
    /// Address to forward to (the node's QUIC or cluster port).
    #[arg(long)]
    pub upstream: SocketAddr,
    /// Which way the faults apply.
    #[arg(long, value_enum, default_value_t = Way::Both)]
    pub direction: Way,
    /// Drop every datagram (a partition).
    #[arg(long)]
    pub blackhole: bool,
    /// Probability (0 to 1) of dropping a datagram.
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_probability)]
    pub loss: f64,
    /// Delay added to every datagram, like 50ms.
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    pub delay: Option<Duration>,
    /// Each datagram's delay varies by up to this, either way.
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    pub jitter: Option<Duration>,
    /// Probability (0 to 1) of sending a datagram twice.
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_probability)]
    pub duplicate: f64,
    /// Probability (0 to 1) of holding a datagram back behind the next one.
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_probability)]
    pub reorder: f64,
    /// Bandwidth cap in bits per second.
    #[arg(long, value_name = "BPS")]
    pub bandwidth: Option<u64>,
    /// Stop after this long [default: until Ctrl-C].
    #[arg(long = "for", value_name = "D", value_parser = parse_duration)]
    pub for_: Option<Duration>,
    /// Seed of the random fault decisions [default: random, printed].
    #[arg(long)]
    pub seed: Option<u64>,
}

impl RelayArgs {
    /// The fault these arguments describe.
    pub fn fault(&self) -> LinkFault {
        LinkFault {
            blackhole: self.blackhole,
            loss: self.loss,
            delay: self.delay.unwrap_or_default(),
            jitter: self.jitter.unwrap_or_default(),
            duplicate: self.duplicate,
            reorder: self.reorder,
            bandwidth_bps: self.bandwidth,
        }
    }
}

/// Which way a relay's faults apply.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// Both directions.
    Both,
    /// Datagrams to the upstream only.
    ToUpstream,
    /// Datagrams back to clients only.
    ToClient,
}

impl From<Way> for Direction {
    fn from(w: Way) -> Self {
        match w {
            Way::Both => Direction::Both,
            Way::ToUpstream => Direction::ToUpstream,
            Way::ToClient => Direction::ToClient,
        }
    }
}

/// Arguments of `inject tcp-proxy`.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct TcpProxyArgs {
    /// Address to listen on (TCP).
    #[arg(long)]
    pub listen: SocketAddr,
    /// Address to forward to (the node's MCP TCP or HTTP listener).
    #[arg(long)]
    pub upstream: SocketAddr,
    /// Reset a random open connection this many times per second on average.
    #[arg(long, value_name = "R", default_value_t = 0.0, value_parser = parse_rate)]
    pub reset_rate: f64,
    /// Delay every chunk, both ways, by this long.
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    pub slow_delay: Option<Duration>,
    /// Cap each direction of each connection at this many bytes per second.
    #[arg(long, value_name = "B")]
    pub slow_bps: Option<u64>,
    /// Reset every new connection at once.
    #[arg(long)]
    pub refuse: bool,
    /// Stop after this long [default: until Ctrl-C].
    #[arg(long = "for", value_name = "D", value_parser = parse_duration)]
    pub for_: Option<Duration>,
    /// Seed of the random resets [default: random, printed].
    #[arg(long)]
    pub seed: Option<u64>,
}

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

/// Arguments of `inject actor-kill`.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct ActorKillArgs {
    /// The node's admin API, HOST:PORT.
    #[arg(long, value_name = "ADDR")]
    pub admin: String,
    /// The node's admin token (`--admin-token`).
    #[arg(long, value_name = "T")]
    pub token: String,
    /// What to kill.
    #[arg(long, value_enum)]
    pub kind: ActorKind,
    /// The session id (kind session) or the child path in the supervision tree, like
    /// ClusterSup/Membership (kind child).
    #[arg(long)]
    pub id: Option<String>,
    /// Kill this many times (a restart storm, to trip the supervisor's intensity).
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,
    /// Wait this long between kills.
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    pub every: Option<Duration>,
}

/// The kinds of actor `POST /admin/chaos/kill` knows.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorKind {
    /// A live session (`--id SESSION`).
    Session,
    /// The node's session shard.
    Shard,
    /// A child in the supervision tree (`--id` a path like ClusterSup/Membership).
    Child,
}

impl ActorKind {
    fn as_str(self) -> &'static str {
        match self {
            ActorKind::Session => "session",
            ActorKind::Shard => "shard",
            ActorKind::Child => "child",
        }
    }
}

impl ActorKillArgs {
    /// The request body, `{"kind":..,"id":..}`; an id is required for sessions and children,
    /// refused for the shard (checked here so a typo fails before anything is killed).
    pub fn body(&self) -> Result<Value> {
        let kind = self.kind.as_str();
        match (self.kind, &self.id) {
            (ActorKind::Shard, None) => Ok(json!({ "kind": kind })),
            (ActorKind::Shard, Some(_)) => bail!("--kind shard takes no --id"),
            (_, Some(id)) if !id.is_empty() => Ok(json!({ "kind": kind, "id": id })),
            (ActorKind::Session, _) => bail!("--kind session needs --id SESSION"),
            (ActorKind::Child, _) => {
                bail!(
                    "--kind child needs --id PATH, a path of child ids like ClusterSup/Membership"
                )
            }
        }
    }
}

/// A probability, 0 to 1.
fn parse_probability(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("{s:?} is not a probability between 0 and 1")),
    }
}

/// A rate per second, 0 or more.
fn parse_rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && r >= 0.0 => Ok(r),
        _ => Err(format!(
            "{s:?} is not a rate (a number of times per second, 0 or more)"
        )),
    }
}

/// Runs one `inject` subcommand to its end.
pub async fn run(cmd: InjectCmd) -> Result<()> {
    match cmd {
        InjectCmd::Relay(a) => run_relay(a).await,
        InjectCmd::TcpProxy(a) => run_tcp_proxy(a).await,
        InjectCmd::Kill(a) => run_kill(a).await,
        InjectCmd::Pause(a) => run_pause(a).await,
        InjectCmd::ActorKill(a) => run_actor_kill(a).await,
    }
}

async fn run_relay(a: RelayArgs) -> Result<()> {
    let started = match a.seed {
        Some(seed) => Relay::start_seeded(a.listen, a.upstream, seed).await,
        None => Relay::start(a.listen, a.upstream).await,
    };
    let relay = started.with_context(|| format!("cannot listen on {} (UDP)", a.listen))?;
    relay.set(a.direction.into(), a.fault());
    println!(
        "relay listening on {} (UDP), forwarding to {}, seed {}: {:?} ({:?})",
        relay.local_addr(),
        a.upstream,
        relay.seed(),
        a.fault(),
        a.direction,
    );
    foreground(a.for_, || println!("{}", relay_line(&relay.stats()))).await
}

async fn run_tcp_proxy(a: TcpProxyArgs) -> Result<()> {
    let started = match a.seed {
        Some(seed) => TcpProxy::start_seeded(a.listen, a.upstream, seed).await,
        None => TcpProxy::start(a.listen, a.upstream).await,
    };
    let proxy = started.with_context(|| format!("cannot listen on {} (TCP)", a.listen))?;
    proxy.set_reset_rate(a.reset_rate);
    proxy.set_slow(a.slow_delay.unwrap_or_default(), a.slow_bps);
    proxy.refuse(a.refuse);
    println!(
        "tcp proxy listening on {}, forwarding to {}, seed {}: reset rate {}/s, delay {:?}, \
         cap {}, refuse {}",
        proxy.local_addr(),
        a.upstream,
        proxy.seed(),
        a.reset_rate,
        a.slow_delay.unwrap_or_default(),
        a.slow_bps
            .map_or_else(|| "none".to_string(), |b| format!("{b} bytes/s")),
        a.refuse,
    );
    foreground(a.for_, || println!("{}", proxy_line(&proxy.stats()))).await
}

/// Runs until `limit` is over or Ctrl-C, calling `report` every [`REPORT_EVERY`] and once at
/// the end.
async fn foreground(limit: Option<Duration>, mut report: impl FnMut()) -> Result<()> {
    // An overflowing limit is as good as none.
    let deadline = limit.and_then(|d| Instant::now().checked_add(d));
    let mut ticks = tokio::time::interval_at(Instant::now() + REPORT_EVERY, REPORT_EVERY);
    let interrupted = ctrl_c();
    tokio::pin!(interrupted);
    loop {
        tokio::select! {
            () = &mut interrupted => break,
            () = sleep_until_opt(deadline) => break,
            _ = ticks.tick() => report(),
        }
    }
    report();
    Ok(())
}

/// Completes on Ctrl-C; never, if the handler cannot be installed (said on stderr), so the
/// caller still ends on its own terms rather than at once.
async fn ctrl_c() {
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("warning: cannot listen for Ctrl-C ({e}); stop with --for or kill");
        std::future::pending::<()>().await;
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn relay_line(s: &RelayStats) -> String {
    let dir = |d: &crate::relay::DirectionStats| {
        format!(
            "received {}, forwarded {}, dropped {}, delayed {}, duplicated {}, reordered {}",
            d.received, d.forwarded, d.dropped, d.delayed, d.duplicated, d.reordered
        )
    };
    format!(
        "to upstream: {}; to client: {}",
        dir(&s.to_upstream),
        dir(&s.to_client)
    )
}

fn proxy_line(s: &ProxyStats) -> String {
    format!(
        "connections: accepted {}, active {}, reset {}, refused {}, upstream failed {}; \
         bytes up {}, down {}",
        s.accepted, s.active, s.reset, s.refused, s.upstream_failed, s.bytes_up, s.bytes_down
    )
}

/// A node's process as its admin API describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NodeProcess {
    pid: u32,
    name: String,
}

/// Reads the pid and name from a `GET /health` body, refusing pids that would signal more than
/// one process (0, -1 are groups to `kill`), init, or this very process.
fn node_from_health(body: &str) -> Result<NodeProcess> {
    let v: Value =
        serde_json::from_str(body).with_context(|| format!("/health is not JSON: {body:?}"))?;
    let pid = v["pid"]
        .as_u64()
        .and_then(|p| u32::try_from(p).ok())
        .with_context(|| {
            format!("/health has no pid (a node older than the chaos admin API?): {body}")
        })?;
    if pid <= 1 || pid == std::process::id() {
        bail!("refusing to signal pid {pid} from /health: {body}");
    }
    let name = v["node"].as_str().unwrap_or("?").to_string();
    Ok(NodeProcess { pid, name })
}

async fn node_process(admin: &str) -> Result<NodeProcess> {
    let resp = request(admin, "GET", "/health", None, None).await?;
    resp.ensure_success(admin, "GET /health")?;
    node_from_health(&resp.body)
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

async fn run_kill(a: KillArgs) -> Result<()> {
    let node = node_process(&a.admin).await?;
    signal(node.pid, "9")?;
    println!("killed node {} (pid {}) with SIGKILL", node.name, node.pid);
    Ok(())
}

async fn run_pause(a: PauseArgs) -> Result<()> {
    let node = node_process(&a.admin).await?;
    signal(node.pid, "STOP")?;
    println!(
        "paused node {} (pid {}) for {:?} (Ctrl-C resumes it now)",
        node.name, node.pid, a.for_
    );
    tokio::select! {
        () = tokio::time::sleep(a.for_) => {}
        () = ctrl_c() => println!("interrupted"),
    }
    // Whatever happened while waiting, the node must not stay stopped.
    signal(node.pid, "CONT")?;
    println!("resumed node {} (pid {})", node.name, node.pid);
    Ok(())
}

async fn run_actor_kill(a: ActorKillArgs) -> Result<()> {
    let body = a.body()?.to_string();
    for i in 1..=a.repeat {
        if i > 1
            && let Some(every) = a.every
        {
            tokio::time::sleep(every).await;
        }
        let resp = request(
            &a.admin,
            "POST",
            "/admin/chaos/kill",
            Some(&a.token),
            Some(&body),
        )
        .await?;
        resp.ensure_success(&a.admin, &format!("kill {i}/{}", a.repeat))?;
        println!(
            "kill {i}/{}: {} {}",
            a.repeat,
            resp.status,
            resp.body.trim()
        );
    }
    Ok(())
}

/// An HTTP response, body read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Response {
    status: u16,
    reason: String,
    body: String,
}

impl Response {
    /// An error naming the admin API, the status and the server's message unless 2xx.
    fn ensure_success(&self, admin: &str, what: &str) -> Result<()> {
        if (200..300).contains(&self.status) {
            return Ok(());
        }
        // The admin API's errors are {"error": MESSAGE}; show the message alone then.
        let message = serde_json::from_str::<Value>(&self.body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| self.body.trim().to_string());
        bail!(
            "the admin API at {admin} answered {what} with {} {}: {message}",
            self.status,
            self.reason
        )
    }
}

/// `HOST:PORT` from an admin address, also accepted as `http://HOST:PORT/`.
fn admin_host(admin: &str) -> Result<&str> {
    let host = admin.strip_prefix("http://").unwrap_or(admin);
    let host = host.strip_suffix('/').unwrap_or(host);
    if host.is_empty() || host.contains('/') || host.contains("://") {
        bail!("the admin address must be HOST:PORT (plain HTTP), not {admin:?}");
    }
    Ok(host)
}

/// One HTTP/1.1 request on its own connection (`Connection: close`).
async fn request(
    admin: &str,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    json_body: Option<&str>,
) -> Result<Response> {
    let host = admin_host(admin)?;
    if bearer.is_some_and(|t| t.contains(['\r', '\n'])) {
        bail!("the token must not contain line breaks");
    }
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\
         Accept: application/json\r\nUser-Agent: erlmcp-chaos\r\n"
    );
    if let Some(token) = bearer {
        req.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if let Some(body) = json_body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(json_body.unwrap_or_default());

    let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(host))
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "cannot reach the admin API at {admin}: no answer within {CONNECT_TIMEOUT:?}"
            )
        })?
        .with_context(|| format!("cannot reach the admin API at {admin}"))?;
    let exchange = async {
        stream.write_all(req.as_bytes()).await?;
        let mut raw = Vec::new();
        (&mut stream)
            .take(MAX_RESPONSE + 1)
            .read_to_end(&mut raw)
            .await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "the admin API at {admin} did not answer {method} {path} within {REQUEST_TIMEOUT:?}"
            )
        })?
        .with_context(|| format!("{method} {path} to the admin API at {admin} failed"))?;
    if raw.len() as u64 > MAX_RESPONSE {
        bail!(
            "the admin API at {admin} answered {method} {path} with more than {MAX_RESPONSE} bytes"
        );
    }
    parse_response(&raw).with_context(|| format!("bad HTTP answer to {method} {path} from {admin}"))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses a whole HTTP/1.x response (the connection closed after it).
fn parse_response(raw: &[u8]) -> Result<Response> {
    let Some(end) = find(raw, b"\r\n\r\n") else {
        bail!(
            "the response ended before its headers did ({} bytes)",
            raw.len()
        );
    };
    let head = std::str::from_utf8(&raw[..end]).context("headers are not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let (version, code, reason) = (parts.next(), parts.next(), parts.next());
    if !version.is_some_and(|v| v.starts_with("HTTP/1.")) {
        bail!("not an HTTP/1.x status line: {status_line:?}");
    }
    let status = code
        .and_then(|c| c.parse::<u16>().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<usize>()
                    .with_context(|| format!("bad Content-Length {value:?}"))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    let rest = &raw[end + 4..];
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(n) = length {
        rest.get(..n)
            .with_context(|| format!("body cut short: {} of {n} bytes", rest.len()))?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response {
        status,
        reason: reason.unwrap_or_default().to_string(),
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Decodes a chunked body (trailers ignored).
fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = find(rest, b"\r\n").context("chunked body cut short")?;
        let size_line = std::str::from_utf8(&rest[..line_end]).context("bad chunk size")?;
        let size_hex = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .with_context(|| format!("bad chunk size {size_line:?}"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        let chunk = rest.get(..size).context("chunked body cut short")?;
        body.extend_from_slice(chunk);
        rest = rest
            .get(size..)
            .and_then(|r| r.strip_prefix(b"\r\n"))
            .context("chunk not followed by CRLF")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;
    use tokio::task::JoinHandle;

    /// Upper bound of every wait: generous, the machine may be busy with builds.
    const WAIT: Duration = Duration::from_secs(10);

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        cmd: InjectCmd,
    }

    fn parse(args: &[&str]) -> Result<InjectCmd, clap::Error> {
        Cli::try_parse_from(std::iter::once("inject").chain(args.iter().copied())).map(|c| c.cmd)
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    #[test]
    fn relay_arguments_make_a_fault() {
        let cmd = parse(&[
            "relay",
            "--listen",
            "127.0.0.1:7000",
            "--upstream",
            "127.0.0.1:7001",
            "--loss",
            "0.25",
            "--delay",
            "50ms",
            "--jitter",
            "10ms",
            "--duplicate",
            "0.1",
            "--reorder",
            "1",
            "--bandwidth",
            "80000",
            "--direction",
            "to-client",
            "--for",
            "2m",
            "--seed",
            "42",
        ])
        .expect("parses");
        let InjectCmd::Relay(a) = cmd else {
            panic!("not relay: {cmd:?}")
        };
        assert_eq!(
            (a.listen, a.upstream),
            (addr("127.0.0.1:7000"), addr("127.0.0.1:7001"))
        );
        assert_eq!(a.direction, Way::ToClient);
        assert_eq!((a.for_, a.seed), (Some(Duration::from_secs(120)), Some(42)));
        assert_eq!(
            a.fault(),
            LinkFault {
                blackhole: false,
                loss: 0.25,
                delay: Duration::from_millis(50),
                jitter: Duration::from_millis(10),
                duplicate: 0.1,
                reorder: 1.0,
                bandwidth_bps: Some(80_000),
            }
        );

        let bare = parse(&[
            "relay",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "127.0.0.1:1",
            "--blackhole",
        ])
        .expect("parses");
        let InjectCmd::Relay(b) = bare else {
            panic!("not relay: {bare:?}")
        };
        assert_eq!(b.fault(), LinkFault::blackhole());
        assert_eq!((b.direction, b.for_, b.seed), (Way::Both, None, None));
    }

    #[test]
    fn tcp_proxy_kill_pause_and_actor_kill_arguments() {
        let cmd = parse(&[
            "tcp-proxy",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "127.0.0.1:9000",
            "--reset-rate",
            "2.5",
            "--slow-delay",
            "100ms",
            "--slow-bps",
            "4096",
            "--for",
            "5s",
        ])
        .expect("parses");
        assert_eq!(
            cmd,
            InjectCmd::TcpProxy(TcpProxyArgs {
                listen: addr("127.0.0.1:0"),
                upstream: addr("127.0.0.1:9000"),
                reset_rate: 2.5,
                slow_delay: Some(Duration::from_millis(100)),
                slow_bps: Some(4096),
                refuse: false,
                for_: Some(Duration::from_secs(5)),
                seed: None,
            })
        );
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
        assert_eq!(
            parse(&[
                "actor-kill",
                "--admin",
                "a:1",
                "--token",
                "t",
                "--kind",
                "child",
                "--id",
                "ClusterSup/Membership",
                "--repeat",
                "5",
                "--every",
                "200ms",
            ])
            .expect("parses"),
            InjectCmd::ActorKill(ActorKillArgs {
                admin: "a:1".into(),
                token: "t".into(),
                kind: ActorKind::Child,
                id: Some("ClusterSup/Membership".into()),
                repeat: 5,
                every: Some(Duration::from_millis(200)),
            })
        );
    }

    #[test]
    fn bad_arguments_are_rejected() {
        let relay = [
            "relay",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "127.0.0.1:1",
        ];
        let with = |extra: &[&'static str]| {
            let mut v = relay.to_vec();
            v.extend_from_slice(extra);
            parse(&v)
        };
        assert!(with(&["--loss", "1.5"]).is_err(), "probability above 1");
        assert!(
            with(&["--duplicate", "-0.1"]).is_err(),
            "negative probability"
        );
        assert!(with(&["--delay", "soon"]).is_err(), "not a duration");
        assert!(parse(&["relay", "--listen", "nowhere", "--upstream", "127.0.0.1:1"]).is_err());
        assert!(
            parse(&[
                "tcp-proxy",
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                "127.0.0.1:1",
                "--reset-rate",
                "-1"
            ])
            .is_err()
        );
        assert!(
            parse(&["pause", "--admin", "a:1"]).is_err(),
            "pause needs --for"
        );
        let kill = ["actor-kill", "--admin", "a:1", "--token", "t", "--kind"];
        assert!(
            parse(&[&kill[..], &["process"]].concat()).is_err(),
            "unknown kind"
        );
        assert!(
            parse(&[&kill[..], &["shard", "--repeat", "0"]].concat()).is_err(),
            "repeat 0"
        );
        assert!(
            parse(&["actor-kill", "--admin", "a:1", "--kind", "shard"]).is_err(),
            "no token"
        );
    }

    fn actor_kill(kind: ActorKind, id: Option<&str>) -> ActorKillArgs {
        ActorKillArgs {
            admin: "a:1".into(),
            token: "t".into(),
            kind,
            id: id.map(str::to_string),
            repeat: 1,
            every: None,
        }
    }

    #[test]
    fn actor_kill_bodies_and_their_ids() {
        let body = |k, id| actor_kill(k, id).body().map_err(|e| e.to_string());
        assert_eq!(
            body(ActorKind::Session, Some("s-1")).expect("ok"),
            json!({"kind": "session", "id": "s-1"})
        );
        assert_eq!(
            body(ActorKind::Shard, None).expect("ok"),
            json!({"kind": "shard"})
        );
        assert_eq!(
            body(ActorKind::Child, Some("ClusterSup/Membership")).expect("ok"),
            json!({"kind": "child", "id": "ClusterSup/Membership"})
        );
        assert!(
            body(ActorKind::Session, None)
                .expect_err("no id")
                .contains("--id")
        );
        assert!(
            body(ActorKind::Child, Some(""))
                .expect_err("empty id")
                .contains("--id")
        );
        assert!(body(ActorKind::Shard, Some("x")).is_err());
    }

    /// One request as the stub server received it.
    #[derive(Debug)]
    struct Recorded {
        request_line: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Recorded {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    /// An HTTP server that answers every request with the same canned response and records
    /// the requests.
    struct Stub {
        addr: SocketAddr,
        requests: mpsc::UnboundedReceiver<Recorded>,
        task: JoinHandle<()>,
    }

    impl Drop for Stub {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    impl Stub {
        async fn start(status_line: &'static str, body: String) -> Stub {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind stub");
            let addr = listener.local_addr().expect("stub addr");
            let (tx, requests) = mpsc::unbounded_channel();
            let task = tokio::spawn(async move {
                while let Ok((mut s, _)) = listener.accept().await {
                    let Some(req) = read_request(&mut s).await else {
                        continue;
                    };
                    let _ = tx.send(req);
                    let resp = format!(
                        "HTTP/1.1 {status_line}\r\ncontent-type: application/json\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = s.write_all(resp.as_bytes()).await;
                    let _ = s.shutdown().await;
                }
            });
            Stub {
                addr,
                requests,
                task,
            }
        }

        async fn next(&mut self) -> Recorded {
            tokio::time::timeout(WAIT, self.requests.recv())
                .await
                .expect("a request in time")
                .expect("stub gone")
        }

        fn nothing_more(&mut self) {
            assert!(self.requests.try_recv().is_err(), "an unexpected request");
        }
    }

    /// Reads one request: headers, then a Content-Length body.
    async fn read_request(s: &mut TcpStream) -> Option<Recorded> {
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        let end = loop {
            if let Some(i) = find(&raw, b"\r\n\r\n") {
                break i;
            }
            let n = s.read(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            raw.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8(raw[..end].to_vec()).ok()?;
        let mut lines = head.split("\r\n");
        let request_line = lines.next()?.to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.to_string(), v.trim().to_string()))
            .collect();
        let len = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = raw[end + 4..].to_vec();
        while body.len() < len {
            let n = s.read(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            body.extend_from_slice(&buf[..n]);
        }
        Some(Recorded {
            request_line,
            headers,
            body,
        })
    }

    #[tokio::test]
    async fn actor_kill_posts_the_token_and_body_each_time() {
        let mut stub = Stub::start("200 OK", r#"{"killed":"session s-1"}"#.into()).await;
        let mut args = actor_kill(ActorKind::Session, Some("s-1"));
        args.admin = stub.addr.to_string();
        args.token = "sekrit".into();
        args.repeat = 3;
        args.every = Some(Duration::from_millis(1));
        run(InjectCmd::ActorKill(args)).await.expect("kills");
        for _ in 0..3 {
            let req = stub.next().await;
            assert_eq!(req.request_line, "POST /admin/chaos/kill HTTP/1.1");
            assert_eq!(req.header("authorization"), Some("Bearer sekrit"));
            assert_eq!(req.header("content-type"), Some("application/json"));
            assert_eq!(req.header("connection"), Some("close"));
            let body: Value = serde_json::from_slice(&req.body).expect("JSON body");
            assert_eq!(body, json!({"kind": "session", "id": "s-1"}));
        }
        stub.nothing_more();
    }

    #[tokio::test]
    async fn actor_kill_fails_on_a_refusal_with_the_servers_message() {
        let mut stub = Stub::start(
            "401 Unauthorized",
            r#"{"error":"missing or wrong token: send Authorization: Bearer TOKEN"}"#.into(),
        )
        .await;
        let mut args = actor_kill(ActorKind::Shard, None);
        args.admin = stub.addr.to_string();
        args.repeat = 3;
        let err = run(InjectCmd::ActorKill(args))
            .await
            .expect_err("a 401 is an error");
        let msg = format!("{err:#}");
        assert!(msg.contains("401 Unauthorized"), "{msg}");
        assert!(msg.contains("missing or wrong token"), "{msg}");
        assert!(msg.contains(&stub.addr.to_string()), "{msg}");
        let req = stub.next().await;
        assert_eq!(
            serde_json::from_slice::<Value>(&req.body).expect("JSON"),
            json!({"kind": "shard"})
        );
        // The storm stops at the first refusal.
        stub.nothing_more();
    }

    #[tokio::test]
    async fn an_unreachable_admin_api_is_named() {
        let closed = {
            let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            l.local_addr().expect("addr")
        };
        let err = run(InjectCmd::Kill(KillArgs {
            admin: closed.to_string(),
        }))
        .await
        .expect_err("nothing listens there");
        let msg = format!("{err:#}");
        assert!(
            msg.contains(&format!("cannot reach the admin API at {closed}")),
            "{msg}"
        );
    }

    #[test]
    fn responses_parse_with_length_chunked_or_to_the_end() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}").expect("ok");
        assert_eq!(
            (r.status, r.reason.as_str(), r.body.as_str()),
            (200, "OK", "{}")
        );
        let r = parse_response(
            b"HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3;x=y\r\n:1}\r\n0\r\n\r\n",
        )
        .expect("chunked");
        assert_eq!((r.status, r.body.as_str()), (404, r#"{"a":1}"#));
        let r = parse_response(b"HTTP/1.0 503 Service Unavailable\r\n\r\nbusy").expect("to EOF");
        assert_eq!((r.status, r.body.as_str()), (503, "busy"));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{}").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nab")
                .is_err()
        );
    }

    #[test]
    fn admin_addresses_and_health_bodies() {
        assert_eq!(admin_host("127.0.0.1:8080").expect("ok"), "127.0.0.1:8080");
        assert_eq!(
            admin_host("http://localhost:8080/").expect("ok"),
            "localhost:8080"
        );
        assert!(admin_host("https://x:1").is_err());
        assert!(admin_host("x:1/admin").is_err());

        assert_eq!(
            node_from_health(r#"{"status":"ok","node":"n1","pid":4242}"#).expect("ok"),
            NodeProcess {
                pid: 4242,
                name: "n1".into()
            }
        );
        for bad in [
            r#"{"status":"ok","node":"n1"}"#,
            r#"{"pid":0}"#,
            r#"{"pid":1}"#,
            r#"{"pid":-5}"#,
            r#"{"pid":99999999999}"#,
            "not json",
        ] {
            assert!(node_from_health(bad).is_err(), "{bad}");
        }
        let ours = format!(r#"{{"pid":{}}}"#, std::process::id());
        assert!(node_from_health(&ours).is_err(), "never signal ourselves");
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn relay_and_proxy_run_in_the_foreground_until_for() {
        let relay = parse(&[
            "relay",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "127.0.0.1:9",
            "--loss",
            "0.5",
            "--for",
            "50ms",
            "--seed",
            "1",
        ])
        .expect("parses");
        tokio::time::timeout(WAIT, run(relay))
            .await
            .expect("stops at --for")
            .expect("relay runs");
        let proxy = parse(&[
            "tcp-proxy",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "127.0.0.1:9",
            "--reset-rate",
            "1",
            "--slow-bps",
            "100",
            "--for",
            "50ms",
        ])
        .expect("parses");
        tokio::time::timeout(WAIT, run(proxy))
            .await
            .expect("stops at --for")
            .expect("proxy runs");
    }

    #[tokio::test]
    async fn a_busy_listen_address_is_an_error() {
        let taken = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let at = taken.local_addr().expect("addr");
        let cmd = InjectCmd::TcpProxy(TcpProxyArgs {
            listen: at,
            upstream: addr("127.0.0.1:9"),
            reset_rate: 0.0,
            slow_delay: None,
            slow_bps: None,
            refuse: false,
            for_: Some(Duration::from_millis(10)),
            seed: None,
        });
        let msg = format!("{:#}", run(cmd).await.expect_err("address in use"));
        assert!(msg.contains(&format!("cannot listen on {at}")), "{msg}");
    }
}
