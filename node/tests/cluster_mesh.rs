//! Nodes as processes forming a mesh over QUIC: joining, full mesh from a chain of seeds,
//! failure detection of a killed or paused node, rejoin, graceful leave.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;

use common::*;
use serde_json::Value;

/// `erlmcp node --name NAME` with every listener on an ephemeral port, plus `args`.
fn node(name: &str, args: &[&str]) -> NodeProc {
    NodeProc::start_with(None, &["--name", name], args, "info")
}

/// `node` joining `seed`'s cluster endpoint.
fn joining(name: &str, seed: &NodeProc) -> NodeProc {
    let s = seed.cluster().to_string();
    node(name, &["--join", &s])
}

/// Member name → state on `admin`, and the whole view.
fn states(admin: SocketAddr) -> (BTreeMap<String, String>, Value) {
    let v = cluster_view(admin);
    (member_states(&v), v)
}

/// Polls `/admin/cluster` of `admin` until `want` (name → state) all hold; returns the view.
fn wait_states(admin: SocketAddr, want: &[(&str, &str)]) -> Value {
    wait_cluster(admin, &format!("{want:?}"), |v| {
        let m = member_states(v);
        want.iter().all(|(n, s)| m.get(*n).is_some_and(|x| x == s))
    })
}

#[test]
fn three_nodes_form_a_full_mesh_and_status_shows_them_up() {
    let a = node("a", &[]);
    let b = joining("b", &a);
    let c = joining("c", &b); // c knows only b; it learns a from gossip
    let all = [("a", "up"), ("b", "up"), ("c", "up")];
    for n in [&a, &b, &c] {
        let view = wait_states(n.admin(), &all);
        assert_eq!(view["members"].as_array().unwrap().len(), 3, "{view:#}");
    }
    // Every member's admin address is gossiped (status tables show it).
    let view = wait_states(c.admin(), &all);
    let a_admin = a.admin().to_string();
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, view) = states(c.admin());
        let seen = view["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "a" && m["admin_addr"] == a_admin.as_str());
        if seen {
            break;
        }
        assert!(Instant::now() < deadline, "a's admin address: {view:#}");
        std::thread::sleep(POLL);
    }
    assert_eq!(view["node"], "c");

    let out = std::process::Command::new(bin())
        .args(["status", "--admin", &b.admin().to_string()])
        .output()
        .expect("run erlmcp status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("3 members: 3 up"), "{text}");
}

#[test]
fn five_nodes_form_a_mesh_from_a_chain_of_seeds() {
    let mut nodes = vec![node("n0", &[])];
    for i in 1..5 {
        let next = joining(&format!("n{i}"), &nodes[i - 1]);
        nodes.push(next);
    }
    let want: Vec<(String, &str)> = (0..5).map(|i| (format!("n{i}"), "up")).collect();
    let want: Vec<(&str, &str)> = want.iter().map(|(n, s)| (n.as_str(), *s)).collect();
    for n in &nodes {
        wait_states(n.admin(), &want);
    }
}

#[test]
fn a_killed_node_is_marked_down_and_rejoins_when_restarted() {
    let a = node("a", &[]);
    let port = free_udp_port();
    let b_cluster = format!("127.0.0.1:{port}");
    let seed = a.cluster().to_string();
    let mut b = node("b", &["--cluster", &b_cluster, "--join", &seed]);
    wait_states(a.admin(), &[("b", "up")]);
    let (_, before) = states(a.admin());
    let inc_before = incarnation_of(&before, "b");

    b.signal("-KILL");
    b.wait_exit();
    let killed = Instant::now();
    wait_states(a.admin(), &[("b", "down")]);
    eprintln!("a marked b down {:?} after kill -9", killed.elapsed());

    // Same name, same address, new life: a redials it (and b dials its seed); no operator action.
    let b2 = node("b", &["--cluster", &b_cluster, "--join", &seed]);
    let view = wait_states(a.admin(), &[("b", "up")]);
    wait_states(b2.admin(), &[("a", "up")]);
    // a learns the new incarnation from b's gossip.
    let deadline = Instant::now() + WAIT;
    let mut view = view;
    while incarnation_of(&view, "b") <= inc_before {
        assert!(Instant::now() < deadline, "new incarnation: {view:#}");
        std::thread::sleep(POLL);
        view = states(a.admin()).1;
    }
}

fn incarnation_of(view: &Value, name: &str) -> u64 {
    view["members"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["name"] == name))
        .and_then(|m| m["incarnation"].as_u64())
        .unwrap_or(0)
}

#[test]
fn a_graceful_shutdown_is_seen_as_left_not_down() {
    let a = node("a", &[]);
    let mut b = joining("b", &a);
    wait_states(a.admin(), &[("b", "up")]);
    b.signal("-TERM");
    let (status, log) = b.wait_exit();
    assert!(status.success(), "{log:#?}");
    assert!(
        log.iter()
            .any(|l| l.contains("left the mesh") && l.contains("acknowledged=1")),
        "{log:#?}"
    );
    wait_states(a.admin(), &[("b", "left")]);
}

#[test]
fn a_paused_node_is_marked_down_and_comes_back_up_when_resumed() {
    let a = node("a", &[]);
    let b = joining("b", &a);
    wait_states(a.admin(), &[("b", "up")]);
    wait_states(b.admin(), &[("a", "up")]);
    b.signal("-STOP");
    // Make sure b is resumed even if an assertion below fails (a stopped child ignores KILL's
    // cleanup only until it is continued; SIGKILL works on stopped processes anyway).
    let resumed = ResumeOnDrop(b.pid());
    wait_states(a.admin(), &[("b", "down")]);
    // Silence makes it suspect first (after 2.5 keep-alives), then down (idle timeout).
    let mut a = a;
    let suspect = a.wait_log("member suspect");
    assert!(suspect.contains("member=b"), "{suspect}");
    let down = a.wait_log("member down");
    assert!(down.contains("member=b"), "{down}");
    drop(resumed);
    wait_states(a.admin(), &[("b", "up")]);
    wait_states(b.admin(), &[("a", "up")]);
}

struct ResumeOnDrop(u32);
impl Drop for ResumeOnDrop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .status();
    }
}
