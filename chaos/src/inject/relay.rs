//! `inject relay`: a UDP fault relay in the foreground, in front of a node's QUIC or cluster
//! port.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use crate::relay::{Direction, LinkFault, Relay, RelayStats};
use crate::scenario::parse_duration;

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

/// A probability, 0 to 1.
fn parse_probability(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("{s:?} is not a probability between 0 and 1")),
    }
}

/// Runs `inject relay` until `--for` is over or Ctrl-C.
pub async fn run(a: RelayArgs) -> Result<()> {
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
    super::foreground(a.for_, || println!("{}", relay_line(&relay.stats()))).await
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inject::testkit::{WAIT, addr, parse};
    use crate::inject::{InjectCmd, run as inject};

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
    fn bad_relay_arguments_are_rejected() {
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
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_relay_runs_in_the_foreground_until_for() {
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
        tokio::time::timeout(WAIT, inject(relay))
            .await
            .expect("stops at --for")
            .expect("relay runs");
    }
}
