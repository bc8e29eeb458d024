//! The admin API's fault-injection endpoint (`POST /admin/chaos/kill`): off unless the node runs
//! with `--chaos`, guarded by a bearer token, and what it kills is restarted by its supervisor.

mod common;

use std::time::Instant;

use common::*;
use serde_json::{Value, json};

const TOKEN: &str = "s3cret";

fn kill(node: &NodeProc, token: Option<&str>, body: &str) -> (u16, Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    http_request(node.admin(), "POST", "/admin/chaos/kill", &headers, body)
}

/// Restarts of the child at `path` (ids from the root), as `/admin/tree` reports them.
fn restarts(node: &NodeProc, path: &[&str]) -> u64 {
    let (code, mut t) = http_get(node.admin(), "/admin/tree");
    assert_eq!(code, 200, "{t}");
    let mut restarts = 0;
    for id in path {
        let child = t["children"]
            .as_array()
            .and_then(|c| c.iter().find(|x| x["id"] == *id))
            .cloned()
            .unwrap_or_else(|| panic!("no {id} in {t:#}"));
        restarts = child["restarts"].as_u64().unwrap_or(0);
        t = child;
    }
    restarts
}

fn wait_restarts(node: &NodeProc, path: &[&str], at_least: u64) {
    let deadline = Instant::now() + WAIT;
    while restarts(node, path) < at_least {
        assert!(Instant::now() < deadline, "{path:?} never restarted");
        std::thread::sleep(POLL);
    }
}

#[test]
fn fault_injection_is_off_without_chaos() {
    let node = NodeProc::start(None, &[]);
    let (code, body) = kill(&node, Some(TOKEN), r#"{"kind":"shard"}"#);
    assert_eq!(code, 404, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("--chaos"),
        "{body}"
    );
    let (code, health) = http_get(node.admin(), "/health");
    assert_eq!(code, 200);
    assert_eq!(health["pid"], node.pid(), "{health}");
}

#[test]
fn bad_requests_get_clear_errors() {
    let node = NodeProc::start(None, &["--chaos", "--admin-token", TOKEN]);
    let body = r#"{"kind":"shard"}"#;
    assert_eq!(kill(&node, None, body).0, 401);
    assert_eq!(kill(&node, Some("wrong"), body).0, 401);
    let (code, e) = kill(&node, Some(TOKEN), "{oops");
    assert_eq!(code, 400, "{e}");
    let (code, e) = kill(&node, Some(TOKEN), r#"{"kind":"nope"}"#);
    assert_eq!(code, 400, "{e}");
    assert!(e["error"].as_str().unwrap().contains("session"), "{e}");
    let (code, e) = kill(&node, Some(TOKEN), r#"{"kind":"child","id":"NoSuchSup/X"}"#);
    assert_eq!(code, 404, "{e}");
    let (code, e) = kill(
        &node,
        Some(TOKEN),
        r#"{"kind":"child","id":"ClusterSup/Membership/X"}"#,
    );
    assert_eq!(code, 400, "{e}");
    let (code, e) = kill(&node, Some(TOKEN), r#"{"kind":"session","id":"unknown"}"#);
    assert_eq!(code, 404, "{e}");
    let (code, _) = http_get(node.admin(), "/health");
    assert_eq!(code, 200, "the node is unharmed");
}

#[test]
fn killed_actors_are_restarted_by_their_supervisors() {
    let node = NodeProc::start(None, &["--chaos", "--admin-token", TOKEN]);

    // A tree child: Membership restarts (ClusterSup is rest_for_one; it is the last child).
    let (code, body) = kill(
        &node,
        Some(TOKEN),
        r#"{"kind":"child","id":"ClusterSup/Membership"}"#,
    );
    assert_eq!(code, 200, "{body}");
    wait_restarts(&node, &["ClusterSup", "Membership"], 1);
    let (code, view) = http_get(node.admin(), "/admin/cluster");
    assert_eq!(code, 200, "membership serves again: {view}");

    // A session: it restarts from its last committed state.
    let mut mcp = Mcp::tcp(node.tcp());
    let init = mcp.initialize();
    let session = init["_meta"]["io.erlmcp/session"]
        .as_str()
        .expect("session id")
        .to_string();
    let set = mcp.request(
        1,
        "tools/call",
        json!({"name": "kv_set", "arguments": {"key": "k", "value": "before the kill"}}),
    );
    assert!(set.get("result").is_some(), "{set}");
    let (code, body) = kill(
        &node,
        Some(TOKEN),
        &json!({"kind": "session", "id": session}).to_string(),
    );
    assert_eq!(code, 200, "{body}");
    // The endpoint answers once the kill is sent, not once the shard has restarted the session:
    // a request racing the restart is aborted (-32603). Wait for the restart first.
    wait_stats(node.admin(), "the killed session restarted", |s| {
        s["sessions"]["restarts"] == 1
    });
    let get = mcp.request(
        2,
        "tools/call",
        json!({"name": "kv_get", "arguments": {"key": "k"}}),
    );
    assert_eq!(
        get["result"]["structuredContent"]["value"], "before the kill",
        "{get}"
    );

    // The shard.
    let (code, body) = kill(&node, Some(TOKEN), r#"{"kind":"shard"}"#);
    assert_eq!(code, 200, "{body}");
    wait_restarts(&node, &["ShardSup", "Shard[0]"], 1);
}

/// A restarted Membership adopts the node sessions that outlived its predecessor (found by the
/// chaos smoke run: the peer stayed "down" forever because the old session blocked a new one).
#[test]
fn a_restarted_membership_still_sees_its_peers_up() {
    let a = NodeProc::start_with(
        None,
        &["--name", "a"],
        &["--chaos", "--admin-token", TOKEN],
        "info",
    );
    let seed = a.cluster().to_string();
    let b = NodeProc::start_with(None, &["--name", "b"], &["--join", &seed], "info");
    let up = |v: &Value, who: &str| member_states(v).get(who).is_some_and(|s| s == "up");
    wait_cluster(a.admin(), "b up", |v| up(v, "b"));
    let (code, body) = kill(
        &a,
        Some(TOKEN),
        r#"{"kind":"child","id":"ClusterSup/Membership"}"#,
    );
    assert_eq!(code, 200, "{body}");
    wait_restarts(&a, &["ClusterSup", "Membership"], 1);
    wait_cluster(a.admin(), "b up after the restart", |v| up(v, "b"));
    wait_cluster(b.admin(), "a up", |v| up(v, "a"));
}

/// A restart storm that trips ClusterSup's intensity escalates to the root, which restarts the
/// cluster side: the new endpoint must bind the same port again (found by the actor-kill-storm
/// scenario: the old socket was still held and the whole node went down).
#[test]
fn a_cluster_restart_storm_escalates_and_the_node_survives() {
    // A fixed admin port: the escalation restarts the listeners too, and port 0 would move.
    let admin = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .to_string();
    let node = NodeProc::start(
        None,
        &["--chaos", "--admin-token", TOKEN, "--admin", &admin],
    );
    let body = r#"{"kind":"child","id":"ClusterSup/Membership"}"#;
    // While the tree restarts, the admin API itself is briefly down: tolerate refused requests.
    let cluster_sup_restarts = |n: &NodeProc| {
        try_http_get(n.admin(), "/admin/tree").and_then(|(_, t)| {
            t["children"]
                .as_array()?
                .iter()
                .find(|c| c["id"] == "ClusterSup")?["restarts"]
                .as_u64()
        })
    };
    let deadline = Instant::now() + WAIT;
    while cluster_sup_restarts(&node).unwrap_or(0) == 0 {
        assert!(Instant::now() < deadline, "ClusterSup never escalated");
        let auth = format!("Bearer {TOKEN}");
        let _ = try_http_request(
            node.admin(),
            "POST",
            "/admin/chaos/kill",
            &[("Authorization", &auth)],
            body,
        );
    }
    // The root restarted ClusterSup; the node is up and its cluster side serves again.
    let deadline = Instant::now() + WAIT;
    while !matches!(try_http_get(node.admin(), "/admin/cluster"), Some((200, _))) {
        assert!(
            Instant::now() < deadline,
            "the cluster side never came back"
        );
        std::thread::sleep(POLL);
    }
    let (code, health) = http_get(node.admin(), "/health");
    assert_eq!(code, 200, "{health}");
}

/// Killing the cluster endpoint restarts it and, rest_for_one, Membership after it: the new
/// endpoint binds the same port (the killed one got no `post_stop`), and peers never hear a
/// "leave" — only a node that shuts down leaves.
#[test]
fn a_killed_endpoint_comes_back_on_its_port_and_peers_do_not_think_it_left() {
    let port = free_udp_port();
    let cluster = format!("127.0.0.1:{port}");
    let a = NodeProc::start_with(
        None,
        &["--name", "a"],
        &["--chaos", "--admin-token", TOKEN, "--cluster", &cluster],
        "info",
    );
    let mut b = NodeProc::start_with(None, &["--name", "b"], &["--join", &cluster], "info");
    let up = |v: &Value, who: &str| member_states(v).get(who).is_some_and(|s| s == "up");
    wait_cluster(b.admin(), "a up", |v| up(v, "a"));
    let (code, body) = kill(
        &a,
        Some(TOKEN),
        r#"{"kind":"child","id":"ClusterSup/QuicEndpoint"}"#,
    );
    assert_eq!(code, 200, "{body}");
    wait_restarts(&a, &["ClusterSup", "QuicEndpoint"], 1);
    let view = wait_cluster(a.admin(), "b up again", |v| up(v, "b"));
    assert_eq!(
        view["cluster_addr"],
        cluster.as_str(),
        "same port: {view:#}"
    );
    wait_cluster(b.admin(), "a up again", |v| up(v, "a"));
    b.signal("-TERM");
    let (_, log) = b.wait_exit();
    assert!(
        !log.iter()
            .any(|l| l.contains("member left") && l.contains("member=a")),
        "{log:#?}"
    );
}
