//! `inject tcp-proxy`: a TCP fault proxy in the foreground, in front of a node's MCP TCP or
//! HTTP listener.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;

use crate::scenario::parse_duration;
use crate::tcp_proxy::{ProxyStats, TcpProxy};

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

/// A rate per second, 0 or more.
fn parse_rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && r >= 0.0 => Ok(r),
        _ => Err(format!(
            "{s:?} is not a rate (a number of times per second, 0 or more)"
        )),
    }
}

/// Runs `inject tcp-proxy` until `--for` is over or Ctrl-C.
pub async fn run(a: TcpProxyArgs) -> Result<()> {
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
    super::foreground(a.for_, || println!("{}", proxy_line(&proxy.stats()))).await
}

fn proxy_line(s: &ProxyStats) -> String {
    format!(
        "connections: accepted {}, active {}, reset {}, refused {}, upstream failed {}; \
         bytes up {}, down {}",
        s.accepted, s.active, s.reset, s.refused, s.upstream_failed, s.bytes_up, s.bytes_down
    )
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;
    use crate::inject::testkit::{WAIT, addr, parse};
    use crate::inject::{InjectCmd, run as inject};

    #[test]
    fn tcp_proxy_arguments() {
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
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_proxy_runs_in_the_foreground_until_for() {
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
        tokio::time::timeout(WAIT, inject(proxy))
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
        let msg = format!("{:#}", inject(cmd).await.expect_err("address in use"));
        assert!(msg.contains(&format!("cannot listen on {at}")), "{msg}");
    }
}
