//! Helpers for tests that run the real `erlmcp` binary: start a node on ephemeral ports and
//! learn its addresses from its log, talk NDJSON MCP to it, query its admin API (over
//! reqwest's blocking client, [`http::client`], reading the JSON untyped so the tests check
//! the wire itself).
//!
//! Every wait is bounded by [`WAIT`] and waits on an event (a log line, a message, EOF), never
//! on a sleep.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub mod http;
pub mod quic;

/// Upper bound of every wait (generous: debug builds on a busy 2-core machine).
pub const WAIT: Duration = Duration::from_secs(30);
/// Interval of bounded polling loops (a process exit, admin stats).
pub const POLL: Duration = Duration::from_millis(20);

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_erlmcp")
}

/// Lines read from a stream by a thread; `None` once the stream ended (EOF or error).
pub struct Lines(Receiver<String>);

impl Lines {
    pub fn spawn(r: impl Read + Send + 'static) -> Self {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(r).lines() {
                match line {
                    Ok(l) => {
                        if tx.send(l).is_err() {
                            return;
                        }
                    }
                    Err(_) => return, // e.g. connection reset: the stream is over
                }
            }
        });
        Self(rx)
    }

    /// The next line, `None` at end of stream; panics if nothing comes within [`WAIT`].
    pub fn next(&self) -> Option<String> {
        self.next_within(WAIT)
    }

    pub fn next_within(&self, wait: Duration) -> Option<String> {
        match self.0.recv_timeout(wait) {
            Ok(l) => Some(l),
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => {
                panic!("no line and no end of stream within {wait:?}")
            }
        }
    }

    /// Whatever is left until the end of the stream.
    pub fn rest(&self) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(l) = self.next() {
            out.push(l);
        }
        out
    }
}

/// A temporary file removed on drop.
pub struct TempFile(pub PathBuf);

impl TempFile {
    pub fn new(ext: &str, contents: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "erlmcp-test-{}-{}.{ext}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, contents).expect("write temp file");
        Self(path)
    }
    pub fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A running `erlmcp node`.
pub struct NodeProc {
    pub child: Child,
    pub stderr: Lines,
    /// Stderr lines seen so far.
    pub log: Vec<String>,
    pub tcp: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
    pub admin: Option<SocketAddr>,
    pub quic: Option<SocketAddr>,
    pub cluster: Option<SocketAddr>,
    _config: Option<TempFile>,
}

fn addr_after(line: &str, key: &str) -> Option<SocketAddr> {
    let i = line.find(key)? + key.len();
    line[i..]
        .split_whitespace()
        .next()?
        .trim_matches('"')
        .parse()
        .ok()
}

impl NodeProc {
    /// `erlmcp node` on ephemeral TCP, HTTP and admin ports, with `config` (TOML) and `args`;
    /// waits until it logs "node up".
    pub fn start(config: Option<&str>, args: &[&str]) -> Self {
        Self::start_logging(config, args, "info")
    }

    /// [`NodeProc::start`] with this `RUST_LOG` filter (e.g. `info,erlmcp::http=debug`).
    pub fn start_logging(config: Option<&str>, args: &[&str], rust_log: &str) -> Self {
        Self::start_with(config, &["--name", "test@127.0.0.1"], args, rust_log)
    }

    /// `erlmcp node` with `first` (e.g. `--name N`), then `args`; every listener that neither
    /// sets runs on an ephemeral port.
    pub fn start_with(config: Option<&str>, first: &[&str], args: &[&str], rust_log: &str) -> Self {
        let config = config.map(|c| TempFile::new("toml", c));
        let mut cmd = Command::new(bin());
        cmd.arg("node").args(first);
        for flag in ["--tcp", "--http", "--admin", "--quic", "--cluster"] {
            if !first.contains(&flag) && !args.contains(&flag) {
                cmd.args([flag, "127.0.0.1:0"]);
            }
        }
        if let Some(c) = &config {
            cmd.args(["--config", c.path()]);
        }
        let mut child = cmd
            .args(args)
            .env("RUST_LOG", rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn erlmcp node");
        let stderr = Lines::spawn(child.stderr.take().expect("stderr"));
        let mut node = Self {
            child,
            stderr,
            log: Vec::new(),
            tcp: None,
            http: None,
            admin: None,
            quic: None,
            cluster: None,
            _config: config,
        };
        node.wait_log("node up");
        node
    }

    /// Waits for a stderr line containing `needle` (and notes listener addresses on the way).
    pub fn wait_log(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(line) = self.stderr.next_within(left) else {
                panic!("node exited before logging {needle:?}: {:#?}", self.log);
            };
            if line.contains("listening") {
                self.tcp = self.tcp.or(addr_after(&line, "tcp="));
                self.http = self.http.or(addr_after(&line, "http="));
                self.admin = self.admin.or(addr_after(&line, "admin="));
                self.quic = self.quic.or(addr_after(&line, "quic="));
                self.cluster = self.cluster.or(addr_after(&line, "cluster="));
            }
            self.log.push(line.clone());
            if line.contains(needle) {
                return line;
            }
        }
    }

    pub fn tcp(&self) -> SocketAddr {
        self.tcp.expect("the node logged its tcp address")
    }

    pub fn http(&self) -> SocketAddr {
        self.http.expect("the node logged its http address")
    }

    pub fn admin(&self) -> SocketAddr {
        self.admin.expect("the node logged its admin address")
    }

    pub fn quic(&self) -> SocketAddr {
        self.quic.expect("the node logged its quic address")
    }

    pub fn cluster(&self) -> SocketAddr {
        self.cluster.expect("the node logged its cluster address")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (`-TERM`, `-INT`) with kill(1).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill {sig} failed");
    }

    /// Waits (bounded) for the process to exit; returns its status and the rest of its log.
    pub fn wait_exit(&mut self) -> (ExitStatus, Vec<String>) {
        let rest = self.stderr.rest(); // stderr closes when the process exits
        self.log.extend(rest);
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return (s, self.log.clone());
            }
            assert!(
                Instant::now() < deadline,
                "node did not exit: {:#?}",
                self.log
            );
            std::thread::sleep(POLL);
        }
    }

    /// Resident memory in bytes (from /proc/PID/statm).
    pub fn rss(&self) -> u64 {
        let statm = std::fs::read_to_string(format!("/proc/{}/statm", self.pid())).expect("statm");
        let pages: u64 = statm
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .expect("rss field");
        pages * 4096
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A JSON-RPC peer over any byte stream.
pub struct Mcp {
    pub lines: Lines,
    pub out: Box<dyn Write + Send>,
}

/// A TCP peer: dropping it closes the socket (its reader thread holds a clone of the fd, so
/// dropping the writer alone would not).
pub struct TcpMcp {
    pub mcp: Mcp,
    sock: TcpStream,
}

impl TcpMcp {
    /// Half-closes: the node sees end of input.
    pub fn shutdown_write(&self) {
        self.sock
            .shutdown(std::net::Shutdown::Write)
            .expect("shutdown");
    }
}

impl std::ops::Deref for TcpMcp {
    type Target = Mcp;
    fn deref(&self) -> &Mcp {
        &self.mcp
    }
}

impl std::ops::DerefMut for TcpMcp {
    fn deref_mut(&mut self) -> &mut Mcp {
        &mut self.mcp
    }
}

impl Drop for TcpMcp {
    fn drop(&mut self) {
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
    }
}

impl Mcp {
    pub fn tcp(addr: SocketAddr) -> TcpMcp {
        let s = TcpStream::connect(addr).expect("connect to the node");
        s.set_nodelay(true).ok();
        let clone = || s.try_clone().expect("clone socket");
        let mcp = Self {
            lines: Lines::spawn(clone()),
            out: Box::new(clone()),
        };
        TcpMcp { mcp, sock: s }
    }

    pub fn over(read: impl Read + Send + 'static, write: ChildStdin) -> Self {
        Self {
            lines: Lines::spawn(read),
            out: Box::new(write),
        }
    }

    pub fn send_line(&mut self, line: &str) {
        self.out.write_all(line.as_bytes()).expect("write");
        self.out.write_all(b"\n").expect("write");
        self.out.flush().expect("flush");
    }

    pub fn send(&mut self, v: &Value) {
        self.send_line(&v.to_string());
    }

    /// The next message, `None` when the peer closed.
    pub fn recv(&mut self) -> Option<Value> {
        let line = self.lines.next()?;
        Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
    }

    /// Sends a request and returns its response (notifications in between are skipped).
    pub fn request(&mut self, id: u64, method: &str, params: Value) -> Value {
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let msg = self
                .recv()
                .unwrap_or_else(|| panic!("closed before answering {method}"));
            if msg.get("id") == Some(&json!(id)) {
                return msg;
            }
        }
    }

    /// initialize + notifications/initialized; returns the initialize result.
    pub fn initialize(&mut self) -> Value {
        let r = self.request(
            0,
            "initialize",
            json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "node-tests", "version": "0"}}),
        );
        let result = r
            .get("result")
            .cloned()
            .unwrap_or_else(|| panic!("initialize failed: {r}"));
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        result
    }

    /// tools/call echo; returns the echoed text.
    pub fn echo(&mut self, id: u64, text: &str) -> String {
        let r = self.request(
            id,
            "tools/call",
            json!({"name": "echo", "arguments": {"text": text}}),
        );
        r["result"]["structuredContent"]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("echo failed: {r}"))
            .to_string()
    }

    /// Waits until the peer closes (EOF or reset), returning what it sent meanwhile.
    pub fn until_closed(&mut self) -> Vec<String> {
        self.lines.rest()
    }
}

/// `GET path` on the admin API: (status code, JSON body).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, Value) {
    let r = http::client()
        .get(format!("http://{addr}{path}"))
        .header(reqwest::header::CONNECTION, "close")
        .send()
        .unwrap_or_else(|e| panic!("GET {path} on {addr}: {e:?}"));
    let code = r.status().as_u16();
    let text = r
        .text()
        .unwrap_or_else(|e| panic!("reading the answer to GET {path}: {e:?}"));
    let body =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("body not JSON ({e}): {text}"));
    (code, body)
}

/// Polls `GET /admin/stats` until `done` holds (bounded by [`WAIT`]); returns the last stats.
pub fn wait_stats(admin: SocketAddr, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let (code, stats) = http_get(admin, "/admin/stats");
        assert_eq!(code, 200, "{stats}");
        if done(&stats) {
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "stats never showed {what}: {stats}"
        );
        std::thread::sleep(POLL);
    }
}

/// `GET path` like [`http_get`], but `None` instead of a panic when the connection fails or the
/// answer is not JSON: for polling a node that is still starting or an endpoint that may not
/// exist yet.
pub fn try_http_get(addr: SocketAddr, path: &str) -> Option<(u16, Value)> {
    let r = http::client()
        .get(format!("http://{addr}{path}"))
        .header(reqwest::header::CONNECTION, "close")
        .send()
        .ok()?;
    let code = r.status().as_u16();
    Some((code, serde_json::from_str(&r.text().ok()?).ok()?))
}

/// A random base port in 20000..32000 such that `base..base + span` are all free on 127.0.0.1
/// for both TCP and UDP right now (checked by binding each); for tests that need fixed ports
/// (e.g. `erlmcp dev-cluster`). Panics after a few unlucky tries.
pub fn free_port_block(span: u16) -> u16 {
    use std::hash::{BuildHasher, RandomState};
    for _ in 0..20 {
        let r = RandomState::new().hash_one(std::process::id());
        // Below the ephemeral range (see free_udp_port).
        let base = 20_000 + (r % 12_000) as u16;
        let free = (base..base + span).all(|p| {
            std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
                && std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok()
        });
        if free {
            return base;
        }
    }
    panic!("no free block of {span} ports in 20000..32000");
}

/// Sends a signal (`-TERM`, `-INT`, `-KILL`) to a process with kill(1).
pub fn kill_pid(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill {sig} {pid} failed");
}

/// Waits (bounded by [`WAIT`]) for a child to exit.
pub fn wait_child(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "process {} did not exit",
            child.id()
        );
        std::thread::sleep(POLL);
    }
}

/// `GET /admin/cluster` on `admin` (asserts 200).
pub fn cluster_view(admin: SocketAddr) -> Value {
    let (code, body) = http_get(admin, "/admin/cluster");
    assert_eq!(code, 200, "{body}");
    body
}

/// Member name → state in a `/admin/cluster` view.
pub fn member_states(v: &Value) -> std::collections::BTreeMap<String, String> {
    v["members"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .map(|m| {
                    (
                        m["name"].as_str().unwrap_or_default().to_string(),
                        m["state"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Polls `/admin/cluster` on `admin` until `done` holds (bounded by [`WAIT`]); returns the view.
pub fn wait_cluster(admin: SocketAddr, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = cluster_view(admin);
        if done(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{admin} never showed {what}: {v:#}"
        );
        std::thread::sleep(POLL);
    }
}

/// A UDP port free right now (for a node that must keep its address across a restart).
pub fn free_udp_port() -> u16 {
    // Below Linux's ephemeral range (32768-60999): a port the kernel just handed us and took
    // back can be handed to the next bind(":0") of a test running alongside before our node
    // binds it; ports outside that range are only taken by someone asking for them.
    free_port_block(1)
}

/// One HTTP request with extra `headers` and a JSON `body`; returns the status and the JSON
/// body (`Null` if it is not JSON).
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Value) {
    try_http_request(addr, method, path, headers, body)
        .unwrap_or_else(|e| panic!("{method} {path} on {addr}: {e}"))
}

/// [`http_request`], but an error instead of a panic when the exchange fails (e.g. the admin
/// API restarting).
pub fn try_http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<(u16, Value), String> {
    let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
    let mut req = http::client()
        .request(method, format!("http://{addr}{path}"))
        .header(reqwest::header::CONNECTION, "close")
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().map_err(|e| format!("{e:?}"))?;
    let code = r.status().as_u16();
    let text = r.text().map_err(|e| format!("{e:?}"))?;
    Ok((code, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// Spawns `erlmcp ARGS` with piped stdio; returns the child, an MCP peer on its stdin/stdout,
/// and its stderr lines.
pub fn spawn_piped(args: &[&str]) -> (Child, Mcp, Lines) {
    let mut child = Command::new(bin())
        .args(args)
        .env("RUST_LOG", "debug") // even verbose logs must stay off stdout
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn erlmcp");
    let mcp = Mcp::over(
        child.stdout.take().expect("stdout"),
        child.stdin.take().expect("stdin"),
    );
    let stderr = Lines::spawn(child.stderr.take().expect("stderr"));
    (child, mcp, stderr)
}

/// Closes the peer's stdin, then checks that everything left on stdout is JSON-RPC and that
/// the process exits with status 0; returns its log.
pub fn close_stdin_and_expect_clean_exit(mut child: Child, mcp: Mcp, stderr: Lines) -> Vec<String> {
    let Mcp { lines, out } = mcp;
    drop(out); // stdin closes
    for line in lines.rest() {
        let v: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("stdout carries only JSON ({e}): {line}"));
        assert_eq!(v["jsonrpc"], "2.0", "{line}");
    }
    let log = stderr.rest(); // stderr closes when the process exits
    let status = child.wait().expect("wait");
    assert!(status.success(), "exit status {status}: {log:#?}");
    log
}
