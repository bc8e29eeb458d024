//! `erlmcp connect URL`: a stdio bridge to a node, so stdio-only MCP clients can use a remote
//! node. Bytes are copied both ways unchanged.
//!
//! - `tcp://HOST:PORT`: NDJSON over TCP.
//! - `quic://HOST:PORT`: MCP over QUIC (ALPN `mcp`): one connection, one bidirectional stream
//!   (one session). The node's certificate is verified against `--ca FILE` (the cluster's
//!   `ca.pem`), or, by default, against the dev-mode CA derived from `--cookie` (default
//!   `erlmcp-dev-cookie`, as a node without `--certs` uses); `--insecure` skips verification.
//!   The certificate must be valid for `--server-name` (default: the URL's host; node
//!   certificates carry `localhost`, `127.0.0.1`, `::1`, `erlmcp.cluster`, the node's name and
//!   any `certs init --san`).
//!
//! When stdin ends, the bridge half-closes (TCP shutdown, QUIC stream finish): the node answers
//! what is in flight, then closes, and the bridge exits when it has; when the node closes, the
//! bridge exits at once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use erlmcp_net::pki;
use erlmcp_net::tls::{self, McpTrust};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// `erlmcp connect` flags.
#[derive(clap::Args, Debug)]
pub struct ConnectArgs {
    /// The node's address: tcp://HOST:PORT or quic://HOST:PORT.
    pub url: String,
    /// quic: trust this CA (PEM file, e.g. the cluster's ca.pem from `erlmcp certs init`).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["insecure", "cookie"])]
    pub ca: Option<PathBuf>,
    /// quic: do not verify the node's certificate (anyone on the path can impersonate the node;
    /// for tests only).
    #[arg(long, conflicts_with = "cookie")]
    pub insecure: bool,
    /// quic: the cookie of a dev-mode node (no --certs); its CA is derived from it
    /// [default: erlmcp-dev-cookie].
    #[arg(long, value_name = "SECRET")]
    pub cookie: Option<String>,
    /// quic: the name the node's certificate must be valid for [default: the URL's host].
    #[arg(long, value_name = "NAME")]
    pub server_name: Option<String>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = crate::config::LogFormat::Text)]
    pub log_format: crate::config::LogFormat,
}

/// How long connecting (for QUIC: the handshake too) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// QUIC keep-alive of the bridge: a quiet session (e.g. waiting for a long tool call) must not
/// hit the node's idle timeout.
const QUIC_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// How long the bridge waits, after closing, for the node to be told.
const QUIC_CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Schemes `erlmcp connect` understands.
pub const SUPPORTED: &str = "tcp://HOST:PORT or quic://HOST:PORT";

/// A transport `erlmcp connect` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// NDJSON over TCP.
    Tcp,
    /// MCP over QUIC.
    Quic,
}

/// Where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The transport.
    pub scheme: Scheme,
    /// The host as written, without the brackets of an IPv6 address.
    pub host: String,
    /// The port.
    pub port: u16,
}

impl Target {
    /// `HOST:PORT`, bracketing an IPv6 host.
    pub fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Parses `tcp://HOST:PORT` or `quic://HOST:PORT` (a trailing `/` is allowed).
pub fn parse_target(url: &str) -> anyhow::Result<Target> {
    let Some((scheme, rest)) = url.split_once("://") else {
        bail!("invalid address {url:?}: expected a URL like {SUPPORTED}");
    };
    let scheme = if scheme.eq_ignore_ascii_case("tcp") {
        Scheme::Tcp
    } else if scheme.eq_ignore_ascii_case("quic") {
        Scheme::Quic
    } else {
        bail!("unsupported scheme {scheme:?} in {url:?}: supported are {SUPPORTED}");
    };
    let hostport = rest.trim_end_matches('/');
    let parsed = hostport.rsplit_once(':').and_then(|(h, p)| {
        let host = h
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(h);
        let port = p.parse::<u16>().ok()?;
        (!host.is_empty()).then(|| (host.to_string(), port))
    });
    let Some((host, port)) = parsed else {
        bail!("invalid address {url:?}: expected {SUPPORTED}");
    };
    Ok(Target { scheme, host, port })
}

/// Bridges stdin/stdout to the node at `args.url`.
pub async fn run(args: &ConnectArgs) -> anyhow::Result<()> {
    let target = parse_target(&args.url)?;
    match target.scheme {
        Scheme::Tcp => {
            if args.ca.is_some()
                || args.insecure
                || args.cookie.is_some()
                || args.server_name.is_some()
            {
                bail!("--ca, --insecure, --cookie and --server-name apply to quic:// only");
            }
            run_tcp(&target.host_port()).await
        }
        Scheme::Quic => run_quic(args, &target).await,
    }
}

async fn run_tcp(target: &str) -> anyhow::Result<()> {
    let socket = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target))
        .await
        .map_err(|_| anyhow::anyhow!("timed out after {CONNECT_TIMEOUT:?}"))
        .and_then(|r| r.map_err(anyhow::Error::from))
        .with_context(|| format!("cannot connect to {target}"))?;
    socket.set_nodelay(true).ok();
    tracing::info!(node = %target, "connected");
    let (from_node, mut to_node) = socket.into_split();
    let upstream = async {
        copy(tokio::io::stdin(), &mut to_node).await?;
        // stdin is over: tell the node, which answers what is in flight and closes.
        to_node.shutdown().await?;
        std::future::pending::<std::io::Result<()>>().await
    };
    let downstream = copy(from_node, tokio::io::stdout());
    tokio::select! {
        r = downstream => r.context("relaying from the node")?,
        r = upstream => r.context("relaying to the node")?,
    }
    tracing::info!(node = %target, "disconnected");
    Ok(())
}

/// How the bridge trusts the node, from the flags.
fn quic_trust(args: &ConnectArgs) -> anyhow::Result<McpTrust> {
    if let Some(ca) = &args.ca {
        return Ok(McpTrust::Ca(pki::read_certs_pem(ca)?));
    }
    if args.insecure {
        tracing::warn!(
            "--insecure: the node's certificate is not verified; anyone on the path can \
             impersonate the node"
        );
        return Ok(McpTrust::Insecure);
    }
    let cookie = args
        .cookie
        .as_deref()
        .unwrap_or(crate::config::DEFAULT_COOKIE);
    Ok(McpTrust::Ca(vec![pki::dev_ca_cert(cookie)?]))
}

async fn run_quic(args: &ConnectArgs, target: &Target) -> anyhow::Result<()> {
    let host_port = target.host_port();
    let mut config = tls::mcp_client_config(quic_trust(args)?)?;
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(QUIC_KEEP_ALIVE));
    config.transport_config(Arc::new(transport));
    let server_name = args.server_name.as_deref().unwrap_or(&target.host);

    let addrs = resolve(&host_port)
        .await
        .with_context(|| format!("cannot connect to {host_port}"))?;
    let (endpoint, conn) = dial(&addrs, &config, server_name)
        .await
        .with_context(|| format!("cannot connect to {host_port}"))?;
    tracing::info!(node = %host_port, "connected");
    let (mut to_node, mut from_node) = conn
        .open_bi()
        .await
        .with_context(|| format!("cannot open a stream to {host_port}"))?;

    let upstream = async {
        let mut stdin = tokio::io::stdin();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = stdin.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            if let Err(e) = to_node.write_all(&buf[..n]).await {
                // The node stopped reading this session (it closes it): its side of the stream
                // tells how it ended.
                tracing::debug!(error = %e, "the node stopped reading");
                return std::future::pending::<std::io::Result<()>>().await;
            }
        }
        // stdin is over: tell the node, which answers what is in flight and ends the stream.
        let _ = to_node.finish();
        std::future::pending::<std::io::Result<()>>().await
    };
    let downstream = async {
        let mut stdout = tokio::io::stdout();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from_node.read(&mut buf).await {
                Ok(Some(n)) => {
                    stdout.write_all(&buf[..n]).await?;
                    stdout.flush().await?;
                }
                Ok(None) => return Ok(()),
                // The node closed the whole connection (e.g. it shut down): that ends the
                // session as cleanly as the end of its stream.
                Err(quinn::ReadError::ConnectionLost(
                    quinn::ConnectionError::ApplicationClosed(_),
                )) => return Ok(()),
                Err(e) => return Err(std::io::Error::other(e)),
            }
        }
    };
    tokio::select! {
        r = downstream => r.context("relaying from the node")?,
        r = upstream => r.context("relaying to the node")?,
    }
    conn.close(0u32.into(), b"done");
    let _ = tokio::time::timeout(QUIC_CLOSE_WAIT, endpoint.wait_idle()).await;
    tracing::info!(node = %host_port, "disconnected");
    Ok(())
}

async fn resolve(host_port: &str) -> anyhow::Result<Vec<SocketAddr>> {
    let addrs = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::lookup_host(host_port))
        .await
        .map_err(|_| anyhow::anyhow!("resolving timed out after {CONNECT_TIMEOUT:?}"))??;
    let mut out: Vec<SocketAddr> = Vec::new();
    for a in addrs {
        if !out.contains(&a) {
            out.push(a);
        }
    }
    if out.is_empty() {
        bail!("the host resolves to no address");
    }
    Ok(out)
}

/// Handshakes with every address of the host at once and keeps the first that succeeds: UDP
/// gives no "connection refused", so trying them in turn would wait a full timeout on each
/// address nobody listens on (e.g. `localhost` resolving to `::1` first, the node on
/// 127.0.0.1). When all fail, a TLS or protocol error is reported before a timeout.
async fn dial(
    addrs: &[SocketAddr],
    config: &quinn::ClientConfig,
    server_name: &str,
) -> anyhow::Result<(quinn::Endpoint, quinn::Connection)> {
    use futures::StreamExt;
    let mut v4 = None;
    let mut v6 = None;
    let mut attempts = futures::stream::FuturesUnordered::new();
    let mut socket_error = None;
    for &addr in addrs {
        let slot = if addr.is_ipv6() { &mut v6 } else { &mut v4 };
        if slot.is_none() {
            let local: SocketAddr = if addr.is_ipv6() {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            } else {
                (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
            };
            match quinn::Endpoint::client(local) {
                Ok(e) => *slot = Some(e),
                Err(e) => {
                    socket_error.get_or_insert(e);
                    continue;
                }
            }
        }
        let Some(endpoint) = slot.clone() else {
            continue;
        };
        let connecting = endpoint.connect_with(config.clone(), addr, server_name)?;
        attempts.push(async move {
            let r = tokio::time::timeout(CONNECT_TIMEOUT, connecting).await;
            (endpoint, r)
        });
    }
    let mut failure = None;
    let mut timed_out = false;
    while let Some((endpoint, r)) = attempts.next().await {
        match r {
            Ok(Ok(conn)) => return Ok((endpoint, conn)),
            Ok(Err(e)) => {
                failure = Some(explain(&e, server_name));
            }
            Err(_) => timed_out = true,
        }
    }
    if let Some(e) = failure {
        bail!("{e}");
    }
    if timed_out {
        bail!(
            "no QUIC handshake within {CONNECT_TIMEOUT:?} (is a node listening for QUIC there? \
             is UDP blocked?)"
        );
    }
    match socket_error {
        Some(e) => Err(anyhow::Error::new(e).context("cannot open a UDP socket")),
        None => bail!("the host resolves to no usable address"),
    }
}

/// A failed QUIC handshake, with what to do about it.
fn explain(e: &quinn::ConnectionError, server_name: &str) -> String {
    let text = e.to_string();
    if text.contains("invalid peer certificate") {
        if text.contains("NotValidForName") || text.contains("not valid for name") {
            return format!(
                "TLS: the node's certificate is not valid for {server_name:?} ({text}); pass \
                 --server-name NAME (every node certificate is valid for {}) or issue the \
                 certificates with `erlmcp certs init --san {server_name}`",
                tls::CLUSTER_SERVER_NAME
            );
        }
        return format!(
            "TLS: certificate not trusted ({text}); pass --ca FILE (the cluster's ca.pem), \
             --cookie SECRET (the node's cookie, for a dev-mode node) or --insecure"
        );
    }
    if text.contains("no application protocol") {
        return format!("the peer does not speak MCP over QUIC (ALPN mcp): {text}");
    }
    text
}

/// Copies until end of input, flushing after every read (messages must not wait in a buffer).
async fn copy<R, W>(mut from: R, mut to: W) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return to.flush().await;
        }
        to.write_all(&buf[..n]).await?;
        to.flush().await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(scheme: Scheme, host: &str, port: u16) -> Target {
        Target {
            scheme,
            host: host.to_string(),
            port,
        }
    }

    #[test]
    fn tcp_and_quic_urls_parse_and_other_schemes_are_refused() {
        assert_eq!(
            parse_target("tcp://127.0.0.1:7400").unwrap(),
            t(Scheme::Tcp, "127.0.0.1", 7400)
        );
        assert_eq!(
            parse_target("TCP://localhost:1/").unwrap(),
            t(Scheme::Tcp, "localhost", 1)
        );
        let v6 = parse_target("tcp://[::1]:7400").unwrap();
        assert_eq!(v6, t(Scheme::Tcp, "::1", 7400));
        assert_eq!(v6.host_port(), "[::1]:7400");
        assert_eq!(
            parse_target("quic://node0.example:7402").unwrap(),
            t(Scheme::Quic, "node0.example", 7402)
        );
        assert_eq!(
            parse_target("QUIC://[::1]:7402/").unwrap().host_port(),
            "[::1]:7402"
        );
        let e = parse_target("http://127.0.0.1:7400")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unsupported scheme \"http\"") && e.contains("quic://HOST:PORT"),
            "{e}"
        );
        let e = parse_target("127.0.0.1:7400").unwrap_err().to_string();
        assert!(e.contains("tcp://HOST:PORT"), "{e}");
        for bad in [
            "tcp://127.0.0.1",
            "quic://:7402",
            "quic://[]:1",
            "quic://h:99999",
        ] {
            let e = parse_target(bad).unwrap_err().to_string();
            assert!(e.contains("invalid address"), "{bad}: {e}");
        }
    }
}
