//! A node's identity in the mesh: a name is unique among live members, a node is not ready
//! until it has joined, unreachable seeds are visible, and members that left are forgotten
//! (after a while, or at once with `erlmcp forget`).

mod common;

use std::net::SocketAddr;
use std::process::Command;

use common::*;
use serde_json::Value;

fn node(name: &str, args: &[&str]) -> NodeProc {
    NodeProc::start_with(None, &["--name", name], args, "info")
}

fn joining(name: &str, seed: &NodeProc, args: &[&str]) -> NodeProc {
    let s = seed.cluster().to_string();
    let mut all = vec!["--join", s.as_str()];
    all.extend_from_slice(args);
    node(name, &all)
}

fn member<'a>(view: &'a Value, name: &str) -> &'a Value {
    view["members"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["name"] == name))
        .unwrap_or(&Value::Null)
}

fn wait_up(admin: SocketAddr, names: &[&str]) -> Value {
    wait_cluster(admin, &format!("{names:?} up"), |v| {
        names.iter().all(|n| member(v, n)["state"] == "up")
    })
}

/// A log line containing `needle`, logged already (even before the node said it is up) or next.
fn logged(p: &mut NodeProc, needle: &str) -> String {
    match p.log.iter().find(|l| l.contains(needle)) {
        Some(l) => l.clone(),
        None => p.wait_log(needle),
    }
}

fn wait_ready(admin: SocketAddr) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (code, body) = http_get(admin, "/ready");
        if code == 200 {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "never ready: {body}");
        std::thread::sleep(POLL);
    }
}

fn erlmcp(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin()).args(args).output().expect("run erlmcp");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_second_node_with_a_live_members_name_is_refused_and_the_record_stays_intact() {
    let mut a = node("a", &[]);
    let b = joining("b", &a, &[]);
    // Up, and its address learned from its gossip (which follows the session by a moment).
    let b_addr = b.cluster().to_string();
    let view = wait_cluster(a.admin(), "b up at its address", |v| {
        member(v, "b")["state"] == "up" && member(v, "b")["cluster_addr"] == b_addr.as_str()
    });
    let real = member(&view, "b").clone();

    let mut impostor = joining("b", &a, &[]);
    let line = logged(&mut impostor, "refused by the mesh");
    assert!(
        line.contains("is taken by a live member") && line.contains("another --name"),
        "{line}"
    );
    logged(&mut a, "refused a node: its name belongs to a live member");

    // The impostor is not ready and says why; its status shows the refusal.
    let (code, ready) = http_get(impostor.admin(), "/ready");
    assert_eq!(code, 503, "{ready}");
    assert!(ready.to_string().contains("refused"), "{ready}");
    let (ok, out, err) = erlmcp(&["status", "--admin", &impostor.admin().to_string()]);
    assert!(ok, "{err}");
    assert!(
        out.contains("refused by the mesh: node name \"b\""),
        "{out}"
    );

    // The impostor asks again (with backoff) and is refused again; meanwhile a's record of b
    // is the real b's, through several gossip rounds (b gossips every second).
    wait_cluster(a.admin(), "a second refusal", |v| {
        v["counters"]["names_refused"].as_u64() >= Some(2)
    });
    let view = cluster_view(a.admin());
    let now = member(&view, "b");
    assert_eq!(now["state"], "up", "{view:#}");
    assert_eq!(now["cluster_addr"], real["cluster_addr"], "{view:#}");
    assert_eq!(now["incarnation"], real["incarnation"], "{view:#}");
    wait_ready(b.admin()); // the real b is unaffected
    let b_view = cluster_view(b.admin());
    assert_eq!(member(&b_view, "a")["state"], "up");
    assert_eq!(
        b_view["members"].as_array().map(Vec::len),
        Some(2),
        "{b_view:#}"
    );
}

#[test]
fn a_node_is_not_ready_until_it_joins_and_an_unreachable_seed_is_visible() {
    let dead = format!("127.0.0.1:{}", free_udp_port());
    let lonely = node("lonely", &["--join", &dead]);
    let view = wait_cluster(lonely.admin(), "a failed dial of the seed", |v| {
        v["seeds"][0]["attempts"].as_u64() >= Some(1)
    });
    let seed = &view["seeds"][0];
    assert_eq!(seed["addr"], dead.as_str());
    assert_eq!(seed["reachable"], false);
    assert!(seed["last_error"].is_string(), "{view:#}");
    assert_eq!(view["joined"], false);
    let (code, ready) = http_get(lonely.admin(), "/ready");
    assert_eq!(code, 503);
    let waiting = ready["waiting_for"].to_string();
    assert!(
        waiting.contains(&format!("cluster: joining via {dead}")),
        "{ready}"
    );
    let (ok, out, err) = erlmcp(&["status", "--admin", &lonely.admin().to_string()]);
    assert!(ok, "{err}");
    assert!(out.contains("not joined yet"), "{out}");
    assert!(out.contains(&format!("seed {dead} unreachable")), "{out}");

    // A node whose seed answers becomes ready once it has joined.
    let a = node("a", &[]);
    wait_ready(a.admin()); // no seeds: nothing to join, it founds its metadata cluster
    let b = joining("b", &a, &[]);
    wait_cluster(b.admin(), "joined", |v| v["joined"] == true);
    wait_ready(b.admin());
    let view = cluster_view(b.admin());
    assert_eq!(view["seeds"][0]["reachable"], true, "{view:#}");
    assert_eq!(view["seeds"][0]["node"], "a", "{view:#}");
}

#[test]
fn erlmcp_forget_forgets_a_member_that_left_and_refuses_one_that_is_up() {
    let a = node("a", &[]);
    let mut b = joining("b", &a, &[]);
    let c = joining("c", &a, &[]);
    wait_up(a.admin(), &["b", "c"]);
    wait_up(c.admin(), &["a", "b"]);
    let admin = a.admin().to_string();

    let (ok, _, err) = erlmcp(&["forget", "c", "--admin", &admin]);
    assert!(!ok);
    assert!(
        err.contains("member \"c\" is up; only a member that is down or left can be forgotten"),
        "{err}"
    );
    let (ok, _, err) = erlmcp(&["forget", "nobody", "--admin", &admin]);
    assert!(!ok);
    assert!(err.contains("no member named \"nobody\""), "{err}");
    let (ok, _, err) = erlmcp(&["forget", "a", "--admin", &admin]);
    assert!(!ok);
    assert!(err.contains("cannot forget itself"), "{err}");

    b.signal("-TERM");
    assert!(b.wait_exit().0.success());
    wait_cluster(a.admin(), "b left", |v| member(v, "b")["state"] == "left");
    let (ok, out, err) = erlmcp(&["forget", "b", "--admin", &admin]);
    assert!(ok, "{err}");
    assert!(out.starts_with("forgot b (incarnation "), "{out}");
    assert!(member(&cluster_view(a.admin()), "b").is_null());
    // a told c, which forgets it too (the unit tests show that gossip does not bring a
    // forgotten life back).
    wait_cluster(c.admin(), "b forgotten on c", |v| member(v, "b").is_null());
    let (code, body) = http_request(a.admin(), "POST", "/admin/forget", &[], "{\"nod\":1}");
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("expected {\"node\": NAME}")
    );
}

#[test]
fn members_that_left_are_forgotten_after_the_configured_time() {
    let a = node("a", &["--forget-left-after", "1s"]);
    let mut b = joining("b", &a, &[]);
    wait_up(a.admin(), &["b"]);
    b.signal("-TERM");
    assert!(b.wait_exit().0.success());
    wait_cluster(a.admin(), "b left", |v| member(v, "b")["state"] == "left");
    wait_cluster(a.admin(), "b forgotten", |v| member(v, "b").is_null());
}
