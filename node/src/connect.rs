//! `erlmcp connect tcp://HOST:PORT`: a stdio ↔ TCP bridge, so stdio-only MCP clients can use a
//! remote node. Bytes are copied both ways unchanged.
//!
//! When stdin ends, the bridge half-closes the socket (the node answers what is in flight, then
//! closes) and exits when the node has closed; when the node closes, it exits at once.

use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// `erlmcp connect` flags.
#[derive(clap::Args, Debug)]
pub struct ConnectArgs {
    /// The node's address: tcp://HOST:PORT.
    pub url: String,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = crate::config::LogFormat::Text)]
    pub log_format: crate::config::LogFormat,
}

/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Schemes `erlmcp connect` understands.
pub const SUPPORTED: &str = "tcp://HOST:PORT";

/// Where to connect: `HOST:PORT` of a `tcp://` URL.
pub fn parse_target(url: &str) -> anyhow::Result<String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        bail!("invalid address {url:?}: expected a URL like {SUPPORTED}");
    };
    if !scheme.eq_ignore_ascii_case("tcp") {
        bail!("unsupported scheme {scheme:?} in {url:?}: supported is {SUPPORTED}");
    }
    let hostport = rest.trim_end_matches('/');
    let valid = hostport
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
    if !valid {
        bail!("invalid address {url:?}: expected {SUPPORTED}");
    }
    Ok(hostport.to_string())
}

/// Bridges stdin/stdout to the node at `url`.
pub async fn run(args: &ConnectArgs) -> anyhow::Result<()> {
    let url = args.url.as_str();
    let target = parse_target(url)?;
    let socket = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&target))
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

    #[test]
    fn tcp_urls_parse_and_other_schemes_are_refused() {
        assert_eq!(
            parse_target("tcp://127.0.0.1:7400").unwrap(),
            "127.0.0.1:7400"
        );
        assert_eq!(parse_target("TCP://localhost:1/").unwrap(), "localhost:1");
        assert_eq!(parse_target("tcp://[::1]:7400").unwrap(), "[::1]:7400");
        let e = parse_target("quic://127.0.0.1:7400")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unsupported scheme \"quic\"") && e.contains("tcp://HOST:PORT"),
            "{e}"
        );
        let e = parse_target("127.0.0.1:7400").unwrap_err().to_string();
        assert!(e.contains("tcp://HOST:PORT"), "{e}");
        let e = parse_target("tcp://127.0.0.1").unwrap_err().to_string();
        assert!(e.contains("invalid address"), "{e}");
    }
}
