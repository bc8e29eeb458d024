//! 10 000 connections opened and abandoned leave no Connection actors, sockets or memory behind.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use common::{NodeProc, POLL, WAIT, wait_stats};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpSocket;

const TOTAL: usize = 10_000;
const BATCH: usize = 500;
/// Source addresses 127.0.0.2.. spread the client ports (each closed socket sits in TIME_WAIT).
const SOURCES: usize = 8;
/// A leak of one Connection actor (~11 KB) per connection would be > 100 MB.
const RSS_BOUND: u64 = 32 << 20;

/// Opens `n` connections to `to`, each abandoned in one of three ways (silent; half a line; a
/// request whose answer is never read), and closes them all.
async fn open_and_abandon(to: SocketAddr, first: usize, n: usize) {
    let mut batch = tokio::task::JoinSet::new();
    for i in first..first + n {
        let src = Ipv4Addr::new(127, 0, 0, 2 + (i % SOURCES) as u8);
        batch.spawn(async move {
            let sock = TcpSocket::new_v4().expect("socket");
            sock.bind(SocketAddr::new(IpAddr::V4(src), 0))
                .expect("bind a loopback source address");
            let mut s = sock.connect(to).await.expect("connect");
            let bytes: &[u8] = match i % 3 {
                0 => b"",
                1 => b"{\"jsonrpc\":\"2.0\",",
                _ => b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\n",
            };
            s.write_all(bytes).await.expect("write");
            s
        });
    }
    let open = batch.join_all().await;
    drop(open);
}

fn open_fds(node: &NodeProc) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", node.pid()))
        .expect("fd dir")
        .count()
}

/// Churns `TOTAL` connections through `node` and checks that nothing stays behind.
fn churn(node: &NodeProc) {
    let (tcp, admin) = (node.tcp(), node.admin());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let all_gone = |accepted: usize| {
        move |s: &Value| {
            s["connections"]["tcp_accepted"] == accepted
                && s["connections"]["active"] == 0
                && s["connections"]["specs"] == 0
        }
    };

    // Warm up (allocator arenas, runtime workers, supervisor tables), then measure.
    rt.block_on(open_and_abandon(tcp, 0, BATCH));
    wait_stats(admin, "the warm-up connections gone", all_gone(BATCH));
    let (fds_before, rss_before) = (open_fds(node), node.rss());

    let started = Instant::now();
    let mut done = BATCH;
    while done < TOTAL {
        rt.block_on(open_and_abandon(tcp, done, BATCH));
        done += BATCH;
    }
    let stats = wait_stats(admin, "all connections accepted and gone", all_gone(TOTAL));
    eprintln!("{TOTAL} connections churned in {:?}", started.elapsed());
    assert_eq!(
        stats["sessions"]["total"], 0,
        "no sessions were made: {stats}"
    );

    // The sockets are closed, and memory comes back (bounded wait: stale timers may still
    // hold a few stopped actors for their period).
    let deadline = Instant::now() + WAIT;
    loop {
        let (fds, rss) = (open_fds(node), node.rss());
        let growth = rss.saturating_sub(rss_before);
        if fds <= fds_before && growth < RSS_BOUND {
            eprintln!("rss {rss_before} -> {rss} (+{growth}); fds {fds_before} -> {fds}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "left behind: fds {fds_before} -> {fds}, rss {rss_before} -> {rss} (+{growth} bytes)"
        );
        std::thread::sleep(POLL);
    }
}

/// At the default idle timeout (300 s): a stopped Connection must not be kept alive by its idle
/// timer (it aborts the timer when it stops).
#[test]
fn ten_thousand_abandoned_connections_leave_nothing_behind() {
    let node = NodeProc::start(None, &[]);
    churn(&node);
}
