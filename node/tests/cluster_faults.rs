//! Bad input and faults on the cluster port: a peer from another CA, a wrong cookie, garbage
//! datagrams, random bytes, truncated and oversized frames from an authenticated peer, and a
//! network partition through a fault relay. The node under attack must refuse, stay up, and keep
//! its healthy peers.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use erlmcp_net::cluster::{TransportTuning, cluster_transport};
use erlmcp_net::pki::{self, NodeIdentity};
use erlmcp_net::tls::{self, CLUSTER_SERVER_NAME};
use serde_json::Value;

const DEV_COOKIE: &str = "erlmcp-dev-cookie";

fn node(name: &str, args: &[&str]) -> NodeProc {
    NodeProc::start_with(None, &["--name", name], args, "info")
}

fn state_is(v: &Value, name: &str, state: &str) -> bool {
    member_states(v).get(name).is_some_and(|s| s == state)
}

fn counter(v: &Value, name: &str) -> u64 {
    v["counters"][name].as_u64().unwrap_or(0)
}

/// A scratch directory removed on drop.
struct TempDir(PathBuf);
impl TempDir {
    fn new(tag: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("erlmcp-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("mkdir");
        Self(p)
    }
    fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 path")
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A cluster CA with certificates for `names`, in a fresh directory.
fn cluster_dir(tag: &str, names: &[&str]) -> TempDir {
    let d = TempDir::new(tag);
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    pki::write_cluster_dir(&d.0, &names, &[], true).expect("write certificates");
    d
}

#[test]
fn a_peer_with_a_certificate_from_another_ca_is_refused() {
    let ours = cluster_dir("ca1", &["a"]);
    let theirs = cluster_dir("ca2", &["b"]);
    let a = node("a", &["--certs", ours.path()]);
    let seed = a.cluster().to_string();
    let b = node("b", &["--certs", theirs.path(), "--join", &seed]);
    // b dials a: b refuses a's certificate (unknown issuer) and a sees the failed handshake.
    let vb = wait_cluster(b.admin(), "a dial failure", |v| {
        counter(v, "dial_failures") >= 2
    });
    let va = wait_cluster(a.admin(), "a handshake failure", |v| {
        counter(v, "handshake_failures") >= 1
    });
    assert!(!member_states(&va).contains_key("b"), "{va:#}");
    assert!(!state_is(&vb, "a", "up"), "{vb:#}");
    assert_eq!(counter(&va, "sessions_ready"), 0, "{va:#}");
}

#[test]
fn a_peer_with_the_wrong_cookie_is_refused_after_tls() {
    let dir = cluster_dir("cookie", &["a", "b"]);
    let a = node("a", &["--certs", dir.path(), "--cookie", "one"]);
    let seed = a.cluster().to_string();
    let b = node(
        "b",
        &["--certs", dir.path(), "--cookie", "two", "--join", &seed],
    );
    // TLS passes (same CA); ractor_cluster's cookie check fails and the session closes.
    let va = wait_cluster(a.admin(), "an authentication failure", |v| {
        counter(v, "auth_failures") >= 1
    });
    let vb = cluster_view(b.admin());
    assert!(!state_is(&va, "b", "up"), "{va:#}");
    assert!(!state_is(&vb, "a", "up"), "{vb:#}");
    assert_eq!(counter(&va, "sessions_ready"), 0, "{va:#}");
    assert_eq!(counter(&vb, "sessions_ready"), 0, "{vb:#}");
}

/// xorshift, seeded: reproducible garbage.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Failure detection relaxed to 5 s, so a loaded test machine cannot drop the healthy session
/// by accident (these tests assert that it never drops).
const RELAXED: [&str; 4] = [
    "--cluster-keepalive",
    "500ms",
    "--cluster-idle-timeout",
    "5s",
];

/// A meshed pair a–b; `a` is the node under attack.
fn pair() -> (NodeProc, NodeProc) {
    let a = node("a", &RELAXED);
    let seed = a.cluster().to_string();
    let b = node("b", &[&RELAXED[..], &["--join", &seed]].concat());
    wait_cluster(a.admin(), "b up", |v| state_is(v, "b", "up"));
    (a, b)
}

/// The attacked node is still whole: healthy, its peer still up on both sides, and a new node
/// can still join it.
fn still_whole(a: &NodeProc, b: &NodeProc, ready_before: u64) {
    let (code, body) = http_get(a.admin(), "/health");
    assert_eq!(code, 200, "{body}");
    let va = cluster_view(a.admin());
    assert!(state_is(&va, "b", "up"), "{va:#}");
    assert!(state_is(&cluster_view(b.admin()), "a", "up"));
    // b's session never dropped (no new session was needed).
    assert_eq!(counter(&va, "sessions_ready"), ready_before, "{va:#}");
    let seed = a.cluster().to_string();
    let c = node("c", &["--join", &seed]);
    wait_cluster(a.admin(), "c up", |v| state_is(v, "c", "up"));
    drop(c);
}

#[test]
fn garbage_datagrams_on_the_cluster_port_do_not_hurt_the_node() {
    let (a, b) = pair();
    let ready = counter(&cluster_view(a.admin()), "sessions_ready");
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let mut rng = Rng(0x5eed);
    for i in 0..3000 {
        let len = [1, 20, 1200, 1350, 64][i % 5];
        let mut d = rng.bytes(len);
        if i % 3 == 0 {
            // Looks like a QUIC long-header Initial packet, then garbage.
            d[0] = 0xc3;
        }
        let _ = sock.send_to(&d, a.cluster());
    }
    still_whole(&a, &b, ready);
}

/// An authenticated peer (a certificate from the dev CA) that writes `payload` on a node
/// session stream and then finishes it. Returns once the node has closed the stream.
fn attack_stream(target: SocketAddr, payload: Vec<u8>, finish: bool) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let id = NodeIdentity::dev(DEV_COOKIE, "intruder").expect("dev identity");
        let transport = cluster_transport(TransportTuning::default()).expect("transport");
        let client = tls::cluster_client_config(&id, transport).expect("client config");
        let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).expect("endpoint");
        ep.set_default_client_config(client);
        let conn = ep
            .connect(target, CLUSTER_SERVER_NAME)
            .expect("connect")
            .await
            .expect("mutual TLS with a dev-CA certificate succeeds");
        let (mut send, mut recv) = conn.open_bi().await.expect("open stream");
        // The write may fail midway if the node closes first; that is a refusal too.
        let _ = send.write_all(&payload).await;
        if finish {
            let _ = send.finish();
        }
        let closed = tokio::time::timeout(Duration::from_secs(30), async {
            let mut buf = vec![0u8; 64 * 1024];
            // Anything read is the node's own hello, sent before it gives up on us.
            while let Ok(Some(_)) = recv.read(&mut buf).await {}
        })
        .await;
        assert!(closed.is_ok(), "the node closed the bad session");
        conn.close(0u32.into(), b"done");
        ep.wait_idle().await;
    });
}

#[test]
fn random_bytes_truncated_and_oversized_frames_close_only_that_session() {
    let (a, b) = pair();
    let ready = counter(&cluster_view(a.admin()), "sessions_ready");
    let mut rng = Rng(42);
    // Random bytes: a random length prefix, then noise.
    attack_stream(a.cluster(), rng.bytes(4096), true);
    // A valid small length prefix whose frame is garbage (not a protobuf message).
    let mut framed = 64u64.to_be_bytes().to_vec();
    framed.extend(rng.bytes(64));
    attack_stream(a.cluster(), framed, true);
    // Truncated: announces 1000 bytes, sends 10, ends the stream.
    let mut truncated = 1000u64.to_be_bytes().to_vec();
    truncated.extend(rng.bytes(10));
    attack_stream(a.cluster(), truncated, true);
    // Oversized: announces 1 TiB; refused on the header, before anything is allocated.
    let oversized = (1u64 << 40).to_be_bytes().to_vec();
    attack_stream(a.cluster(), oversized, false);
    still_whole(&a, &b, ready);
    let log_has = |needle: &str| a.log.iter().any(|l| l.contains(needle));
    assert!(!log_has("panicked"), "{:#?}", a.log);
    let va = cluster_view(a.admin());
    assert!(counter(&va, "auth_failures") >= 4, "{va:#}");
}

#[test]
fn a_partition_is_detected_on_both_sides_and_heals() {
    use erlmcp_chaos::relay::{Direction, LinkFault, Relay};
    let rt = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime"),
    );
    // Each node listens on a fixed port behind its own relay and advertises the relay, so
    // every packet between them crosses a relay the test controls.
    let port_a = free_udp_port();
    let port_b = free_udp_port();
    let real_a: SocketAddr = format!("127.0.0.1:{port_a}").parse().unwrap();
    let real_b: SocketAddr = format!("127.0.0.1:{port_b}").parse().unwrap();
    let (relay_a, relay_b) = rt.block_on(async {
        let ra = Relay::start("127.0.0.1:0".parse().unwrap(), real_a)
            .await
            .expect("relay a");
        let rb = Relay::start("127.0.0.1:0".parse().unwrap(), real_b)
            .await
            .expect("relay b");
        (ra, rb)
    });
    let (ra, rb) = (
        relay_a.local_addr().to_string(),
        relay_b.local_addr().to_string(),
    );
    let a = node(
        "a",
        &["--cluster", &real_a.to_string(), "--cluster-advertise", &ra],
    );
    let b = node(
        "b",
        &[
            "--cluster",
            &real_b.to_string(),
            "--cluster-advertise",
            &rb,
            "--join",
            &ra,
        ],
    );
    wait_cluster(a.admin(), "b up", |v| state_is(v, "b", "up"));
    wait_cluster(b.admin(), "a up", |v| state_is(v, "a", "up"));

    let cut = LinkFault {
        blackhole: true,
        ..LinkFault::default()
    };
    relay_a.set(Direction::Both, cut.clone());
    relay_b.set(Direction::Both, cut);
    wait_cluster(a.admin(), "b down", |v| state_is(v, "b", "down"));
    wait_cluster(b.admin(), "a down", |v| state_is(v, "a", "down"));
    let dropped = |r: &Relay| {
        let s = r.stats();
        s.to_upstream.dropped + s.to_client.dropped
    };
    assert!(
        dropped(&relay_a) + dropped(&relay_b) > 0,
        "the relays dropped the keep-alives"
    );

    relay_a.heal();
    relay_b.heal();
    wait_cluster(a.admin(), "b up again", |v| state_is(v, "b", "up"));
    wait_cluster(b.admin(), "a up again", |v| state_is(v, "a", "up"));
    drop((relay_a, relay_b));
    drop(rt);
}
