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

#[test]
fn sessions_are_listed_page_by_page_and_shown_one_by_one() {
    let node = NodeProc::start(None, &[]);
    let admin = node.admin();
    let mut ids = Vec::new();
    let mut clients = Vec::new();
    for i in 0..3 {
        let mut c = Mcp::tcp(node.tcp());
        let init = c.initialize();
        let id = init["_meta"]["io.erlmcp/session"]
            .as_str()
            .expect("the session id")
            .to_string();
        let r = c.request(
            10 + i,
            "tools/call",
            json!({"name": "kv_set", "arguments": {"key": "k", "value": "twelve bytes"}}),
        );
        assert!(r.get("result").is_some(), "{r}");
        ids.push(id);
        clients.push(c);
    }
    ids.sort();
    let (code, page) = http_get(admin, "/admin/sessions?limit=2");
    assert_eq!(code, 200, "{page}");
    assert_eq!(page["total"], 3);
    let listed: Vec<&str> = page["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [ids[0].as_str(), ids[1].as_str()]);
    assert_eq!(page["next"], ids[1].as_str());
    assert_eq!(page["sessions"][0]["live"], true);
    let rest = http_get(admin, &format!("/admin/sessions?limit=2&after={}", ids[1])).1;
    assert_eq!(rest["sessions"][0]["id"], ids[2].as_str());
    assert!(rest["next"].is_null(), "{rest}");

    let (code, one) = http_get(admin, &format!("/admin/sessions/{}", ids[0]));
    assert_eq!(code, 200, "{one}");
    assert_eq!(one["client"], "node-tests");
    assert_eq!(one["origin"], "initialize");
    assert_eq!(one["kv_keys"], 1);
    assert!(one["shard"].as_u64().unwrap() < 1024);
    let out = std::process::Command::new(common::bin())
        .args(["sessions", "show", &ids[0], "--admin", &admin.to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("client        node-tests"), "{text}");
    // Ids are base64url: one may begin with '-', which must not read as a flag.
    let out = std::process::Command::new(common::bin())
        .args(["sessions", "show", "-dash", "--admin", &admin.to_string()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Unknown session \"-dash\""), "{err}");
    let out = std::process::Command::new(common::bin())
        .args(["sessions", "list", "--admin", &admin.to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("3 of 3 sessions on test@127.0.0.1"), "{text}");

    // Bad input: an unknown id (404), a bad limit or parameter (400), each with the reason.
    let (code, body) = http_get(admin, "/admin/sessions/nope");
    assert_eq!(code, 404, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("Unknown session \"nope\"")
    );
    for (q, needle) in [
        ("limit=0", "invalid limit \"0\""),
        ("limit=5000", "a number from 1 to 1000"),
        ("colour=red", "unknown query parameter \"colour\""),
        ("after=%zz", "bad percent-encoding"),
    ] {
        let (code, body) = http_get(admin, &format!("/admin/sessions?{q}"));
        assert_eq!(code, 400, "{q}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(needle),
            "{q}: {body}"
        );
    }
    let out = std::process::Command::new(common::bin())
        .args(["sessions", "show", "nope", "--admin", &admin.to_string()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Unknown session"));
}
