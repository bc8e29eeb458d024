//! Every fault the nemesis can inject, applied to a real 3-node mesh, with what shows it took
//! effect: member views (down, left, new incarnations), supervision-tree restart counts, relay
//! and proxy counters, round-trip times, broken or slowed client connections. Then it is
//! reverted and the mesh must be whole again before the next one.
//!
//! Needs the node binary: `cargo build -p erlmcp-node` (or `ERLMCP_BIN`).

mod common;
use common::node_bin;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use erlmcp_chaos::mesh::Mesh;
use erlmcp_chaos::nemesis::{self, Journal, Planned};
use erlmcp_chaos::scenario::Scenario;
use erlmcp_net::admin::ClusterView;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const WAIT: Duration = Duration::from_secs(40);

fn names() -> Vec<String> {
    (0..3).map(|i| format!("node{i}")).collect()
}

/// One fault, written as a scenario's `[[fault]]` table, planned against node0..node2.
fn planned(fault: &str) -> Planned {
    let text = format!("name = 't'\nduration = '10m'\n[cluster]\nnodes = 3\n[[fault]]\n{fault}");
    let s = Scenario::parse(&text, "test").unwrap_or_else(|e| panic!("{e}"));
    nemesis::plan(&s.faults, &names(), 1).remove(0)
}

/// `node`'s member view, `None` while its admin API does not give one.
async fn view(mesh: &Mesh, node: &str) -> Option<ClusterView> {
    mesh.admin(node).unwrap().cluster().await.ok()
}

fn states(v: &Option<ClusterView>) -> BTreeMap<String, (String, u64)> {
    v.iter()
        .flat_map(|v| &v.members)
        .map(|m| (m.name.clone(), (m.state.to_string(), m.incarnation)))
        .collect()
}

/// Waits until `node` sees each `(member, state)`.
async fn wait_sees(mesh: &Mesh, node: &str, want: &[(&str, &str)]) {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = view(mesh, node).await;
        let s = states(&v);
        if want
            .iter()
            .all(|(m, st)| s.get(*m).is_some_and(|(x, _)| x == st))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{node} never saw {want:?}: {v:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_all_up(mesh: &Mesh) {
    let all: Vec<(&str, &str)> = vec![("node0", "up"), ("node1", "up"), ("node2", "up")];
    for n in names() {
        wait_sees(mesh, &n, &all).await;
    }
}

async fn incarnation(mesh: &Mesh, seen_by: &str, of: &str) -> u64 {
    states(&view(mesh, seen_by).await)
        .get(of)
        .map_or(0, |(_, i)| *i)
}

/// Restart count of the child at `path` in `node`'s supervision tree (0 while unknown).
async fn restarts(mesh: &Mesh, node: &str, path: &[&str]) -> u64 {
    let Ok(t) = mesh.admin(node).unwrap().tree().await else {
        return 0;
    };
    t.find(path).map_or(0, |c| u64::from(c.restarts))
}

async fn wait_until<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !f().await {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn journal() -> Arc<Mutex<Journal>> {
    Arc::new(Mutex::new(Journal::default()))
}

async fn apply(mesh: &Mesh, p: &Planned) {
    nemesis::apply(mesh, p, Instant::now(), &journal())
        .await
        .unwrap_or_else(|e| panic!("{}: {e:#}", p.name));
}

async fn revert(mesh: &Mesh, p: &Planned) {
    nemesis::revert(mesh, p)
        .await
        .unwrap_or_else(|e| panic!("reverting {}: {e:#}", p.name));
}

fn relay_counter(mesh: &Mesh, f: impl Fn(&erlmcp_chaos::relay::DirectionStats) -> u64) -> u64 {
    let Mesh::Local { nodes, .. } = mesh else {
        panic!("local mesh")
    };
    nodes
        .iter()
        .map(|n| {
            let s = n.cluster_relay.stats();
            f(&s.to_upstream) + f(&s.to_client)
        })
        .sum()
}

/// An MCP session over NDJSON on `addr`; returns the lines reader and the writer.
async fn mcp_session(
    addr: std::net::SocketAddr,
) -> (
    tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
    tokio::net::tcp::OwnedWriteHalf,
) {
    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (r, mut w) = s.into_split();
    let mut lines = BufReader::new(r).lines();
    w.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},\"clientInfo\":{\"name\":\"faults\",\"version\":\"0\"}}}\n").await.unwrap();
    let init = lines.next_line().await.unwrap().unwrap();
    assert!(init.contains("\"result\""), "{init}");
    (lines, w)
}

async fn echo(
    lines: &mut tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
    w: &mut tokio::net::tcp::OwnedWriteHalf,
    id: u64,
) -> std::io::Result<Option<String>> {
    let req = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"tools/call\",\"params\":{{\"name\":\"echo\",\"arguments\":{{\"text\":\"x\"}}}}}}\n"
    );
    w.write_all(req.as_bytes()).await?;
    lines.next_line().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_takes_effect_and_heals() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let logs = std::env::temp_dir().join(format!("erlmcp-chaos-faults-{}", std::process::id()));
    let mesh = Mesh::start_local(&node_bin(), &names(), &[], &logs, 1)
        .await
        .expect("mesh starts");
    wait_all_up(&mesh).await;

    // Process: kill -9, then restart (the revert) → down, then up with a new incarnation.
    let before = incarnation(&mesh, "node0", "node2").await;
    let p = planned("kind = 'kill'\nat = '0s'\nduration = '1s'\ntargets = ['node2']");
    apply(&mesh, &p).await;
    wait_sees(&mesh, "node0", &[("node2", "down")]).await;
    revert(&mesh, &p).await;
    wait_all_up(&mesh).await;
    assert!(
        incarnation(&mesh, "node0", "node2").await > before,
        "new life"
    );

    // Process: pause → down; resume → up.
    let p = planned("kind = 'pause'\nat = '0s'\nduration = '1s'\ntargets = ['node1']");
    apply(&mesh, &p).await;
    wait_sees(&mesh, "node0", &[("node1", "down")]).await;
    revert(&mesh, &p).await;
    wait_all_up(&mesh).await;

    // Process: graceful restart → a new incarnation, up again.
    let before = incarnation(&mesh, "node0", "node1").await;
    let p = planned("kind = 'restart'\nat = '0s'\ntargets = ['node1']");
    apply(&mesh, &p).await;
    wait_all_up(&mesh).await;
    assert!(incarnation(&mesh, "node0", "node1").await > before);

    // Process: rolling restart → every node has a new incarnation.
    let before: Vec<u64> = [("node1", "node0"), ("node0", "node1"), ("node0", "node2")]
        .iter()
        .map(|_| 0)
        .collect();
    let mut olds = Vec::new();
    for (by, of) in [("node1", "node0"), ("node0", "node1"), ("node0", "node2")] {
        olds.push(incarnation(&mesh, by, of).await);
    }
    assert_eq!(before.len(), olds.len());
    let p = planned("kind = 'rolling-restart'\nat = '0s'\ninterval = '200ms'");
    apply(&mesh, &p).await;
    wait_all_up(&mesh).await;
    for ((by, of), old) in [("node1", "node0"), ("node0", "node1"), ("node0", "node2")]
        .into_iter()
        .zip(olds)
    {
        let now = incarnation(&mesh, by, of).await;
        assert!(now > old, "{of} restarted ({old} → {now})");
    }

    // Actor: one kill through the admin API → its supervisor restarted it.
    let p = planned(
        "kind = 'actor-kill'\nat = '0s'\ntargets = ['node0']\nactor = 'child'\nid = 'ClusterSup/Membership'",
    );
    let r0 = restarts(&mesh, "node0", &["ClusterSup", "Membership"]).await;
    apply(&mesh, &p).await;
    wait_until("Membership restarted", || async {
        restarts(&mesh, "node0", &["ClusterSup", "Membership"]).await > r0
    })
    .await;
    wait_all_up(&mesh).await;

    // Actor: a restart storm on the shard trips ShardSup's intensity (5 in 10 s): the failure
    // escalates and the root supervisor restarts ShardSup itself.
    let p = planned(
        "kind = 'restart-storm'\nat = '0s'\ntargets = ['node2']\nactor = 'shard'\nrepeat = 8\ninterval = '60ms'",
    );
    let r0 = restarts(&mesh, "node2", &["ShardSup"]).await;
    apply(&mesh, &p).await;
    wait_until("ShardSup restarted by the root (escalation)", || async {
        restarts(&mesh, "node2", &["ShardSup"]).await > r0
    })
    .await;
    wait_all_up(&mesh).await;

    // Network: symmetric partition {node0} | {node1, node2}.
    let p = planned(
        "kind = 'partition'\nat = '0s'\nduration = '1s'\nmode = 'symmetric'\ngroups = [['node0'], ['node1', 'node2']]",
    );
    apply(&mesh, &p).await;
    wait_sees(&mesh, "node0", &[("node1", "down"), ("node2", "down")]).await;
    wait_sees(&mesh, "node1", &[("node0", "down"), ("node2", "up")]).await;
    revert(&mesh, &p).await;
    wait_all_up(&mesh).await;

    // Network: asymmetric (node0 cannot send to the others) → the links die both ways (QUIC
    // needs acknowledgements), and heal.
    let p = planned(
        "kind = 'partition'\nat = '0s'\nduration = '1s'\nmode = 'asymmetric'\ntargets = ['node0']",
    );
    apply(&mesh, &p).await;
    wait_sees(&mesh, "node1", &[("node0", "down")]).await;
    wait_sees(&mesh, "node2", &[("node0", "down")]).await;
    revert(&mesh, &p).await;
    wait_all_up(&mesh).await;

    // Network: minority / majority → the minority (1 of 3) is cut off from the majority.
    for mode in ["minority", "majority"] {
        let p = planned(&format!(
            "kind = 'partition'\nat = '0s'\nduration = '1s'\nmode = '{mode}'"
        ));
        let (minority, majority) = (p.groups[0].clone(), p.groups[1].clone());
        assert_eq!(
            (minority.len(), majority.len()),
            (1, 2),
            "{mode}: {:?}",
            p.groups
        );
        apply(&mesh, &p).await;
        wait_sees(
            &mesh,
            &majority[0],
            &[(&minority[0], "down"), (&majority[1], "up")],
        )
        .await;
        revert(&mesh, &p).await;
        wait_all_up(&mesh).await;
    }

    // Network: bridge → the two sides lose each other, the bridge keeps both.
    let p = planned("kind = 'partition'\nat = '0s'\nduration = '1s'\nmode = 'bridge'");
    let (a, bridge, c) = (&p.groups[0][0], &p.groups[1][0], &p.groups[2][0]);
    apply(&mesh, &p).await;
    wait_sees(&mesh, a, &[(c, "down"), (bridge, "up")]).await;
    wait_sees(&mesh, bridge, &[(a, "up"), (c, "up")]).await;
    revert(&mesh, &p).await;
    wait_all_up(&mesh).await;

    // Network: latency → the round-trip time between nodes grows past the delay.
    let p = planned("kind = 'latency'\nat = '0s'\nduration = '1s'\ndelay = '120ms'");
    apply(&mesh, &p).await;
    wait_until("RTT above 120 ms", || async {
        view(&mesh, "node0")
            .await
            .iter()
            .flat_map(|v| &v.members)
            .any(|m| m.rtt_us.is_some_and(|r| r >= 120_000))
    })
    .await;
    revert(&mesh, &p).await;
    wait_all_up(&mesh).await;

    // Network: loss, duplication, reordering, bandwidth → the relays count what they did.
    for (fault, counter, what) in [
        (
            "kind = 'loss'\nat = '0s'\nduration = '1s'\nprobability = 0.3",
            (|s: &erlmcp_chaos::relay::DirectionStats| s.dropped) as fn(&_) -> u64,
            "dropped",
        ),
        (
            "kind = 'duplicate'\nat = '0s'\nduration = '1s'\nprobability = 1.0",
            |s| s.duplicated,
            "duplicated",
        ),
        (
            "kind = 'reorder'\nat = '0s'\nduration = '1s'\nprobability = 0.5",
            |s| s.reordered,
            "reordered",
        ),
        (
            "kind = 'bandwidth'\nat = '0s'\nduration = '1s'\nbandwidth_bps = 2000",
            |s| s.delayed + s.dropped,
            "paced or dropped",
        ),
    ] {
        let p = planned(fault);
        let before = relay_counter(&mesh, counter);
        apply(&mesh, &p).await;
        wait_until(&format!("packets {what}"), || async {
            relay_counter(&mesh, counter) > before
        })
        .await;
        revert(&mesh, &p).await;
        wait_all_up(&mesh).await;
    }

    // Client: connection resets → an open MCP connection to node0 is reset.
    let tcp = mesh.targets()[0].tcp.expect("node0's TCP proxy");
    let (mut lines, mut w) = mcp_session(tcp).await;
    assert!(echo(&mut lines, &mut w, 1).await.unwrap().is_some());
    let p =
        planned("kind = 'client-reset'\nat = '0s'\nduration = '1s'\ntargets = ['node0']\nrate = 1");
    apply(&mesh, &p).await;
    let broken = match echo(&mut lines, &mut w, 2).await {
        Err(_) | Ok(None) => true,
        Ok(Some(_)) => echo(&mut lines, &mut w, 3)
            .await
            .map_or(true, |l| l.is_none()),
    };
    assert!(broken, "the connection was reset");
    revert(&mesh, &p).await;

    // Client: slow client → a round trip through node0's proxy takes at least the delay.
    let (mut lines, mut w) = mcp_session(tcp).await;
    let p = planned(
        "kind = 'slow-client'\nat = '0s'\nduration = '1s'\ntargets = ['node0']\ndelay = '400ms'",
    );
    apply(&mesh, &p).await;
    let t = Instant::now();
    assert!(echo(&mut lines, &mut w, 1).await.unwrap().is_some());
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "slowed: {:?}",
        t.elapsed()
    );
    revert(&mesh, &p).await;
    let t = Instant::now();
    assert!(echo(&mut lines, &mut w, 2).await.unwrap().is_some());
    eprintln!("after healing, a round trip takes {:?}", t.elapsed());

    mesh.stop();
    let _ = std::fs::remove_dir_all(&logs);
}
