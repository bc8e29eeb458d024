//! The admin HTTP API of a running node.

mod common;

use common::{Mcp, NodeProc, http_get, wait_stats};
use serde_json::json;

#[test]
fn health_ready_and_unknown_paths() {
    let node = NodeProc::start(None, &[]);
    let (code, body) = http_get(node.admin(), "/health");
    assert_eq!((code, &body["status"]), (200, &json!("ok")), "{body}");
    assert_eq!(body["node"], "test@127.0.0.1");

    // Ready once the node has its shard map (a lone node founds its metadata cluster at once).
    let deadline = std::time::Instant::now() + common::WAIT;
    let body = loop {
        let (code, body) = http_get(node.admin(), "/ready");
        if code == 200 {
            break body;
        }
        assert_eq!(code, 503, "{body}");
        assert!(std::time::Instant::now() < deadline, "never ready: {body}");
        std::thread::sleep(common::POLL);
    };
    assert_eq!(body["status"], "ready");

    let (code, body) = http_get(node.admin(), "/no/such/path");
    assert_eq!(code, 404, "{body}");
}

#[test]
fn stats_count_connections_and_sessions() {
    let node = NodeProc::start(None, &[]);
    let admin = node.admin();
    let stats = wait_stats(admin, "no connections", |s| s["connections"]["active"] == 0);
    assert_eq!(stats["sessions"]["total"], 0, "{stats}");
    assert_eq!(stats["listeners"]["tcp"], node.tcp().to_string(), "{stats}");

    let mut a = Mcp::tcp(node.tcp());
    let mut b = Mcp::tcp(node.tcp());
    a.initialize();
    b.initialize();
    let stats = wait_stats(admin, "two connections", |s| {
        s["connections"]["active"] == 2
    });
    assert_eq!(stats["sessions"]["total"], 2, "{stats}");
    assert_eq!(stats["sessions"]["live"], 2, "{stats}");

    drop(a);
    drop(b);
    wait_stats(admin, "connections gone", |s| {
        s["connections"]["active"] == 0
    });
}

#[test]
fn tree_shows_the_node_supervision_tree() {
    let node = NodeProc::start(None, &[]);
    let (code, tree) = http_get(node.admin(), "/admin/tree");
    assert_eq!(code, 200, "{tree}");
    assert_eq!(tree["id"], "NodeSup[test@127.0.0.1]");
    let ids = |t: &serde_json::Value| -> Vec<String> {
        t["children"]
            .as_array()
            .map(|c| {
                c.iter()
                    .map(|x| x["id"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(ids(&tree), ["ClusterSup", "ShardSup", "ListenerSup"]);
    assert_eq!(
        ids(&tree["children"][0]),
        ["NodeServer", "QuicEndpoint", "Membership", "Metadata"]
    );
    assert_eq!(
        ids(&tree["children"][2]),
        ["ConnectionSup", "Tcp", "Http", "Quic", "Admin"]
    );
}
