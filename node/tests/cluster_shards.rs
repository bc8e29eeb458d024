//! The agreed shard map: nodes found one metadata cluster (openraft over the mesh), agree on
//! one map, rebalance about a quarter of the shards to a fourth node, and keep agreeing when
//! the metadata leader is killed in the middle of that rebalance.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;

use common::*;
use serde_json::Value;

const SHARDS: usize = 1024;

fn node(name: &str, args: &[&str]) -> NodeProc {
    NodeProc::start_with(None, &["--name", name], args, "info")
}

fn joining(name: &str, seed: &NodeProc) -> NodeProc {
    let s = seed.cluster().to_string();
    node(name, &["--join", &s])
}

fn shards(admin: SocketAddr) -> Value {
    let (code, v) = http_get(admin, "/admin/shards");
    assert_eq!(code, 200, "{v}");
    v
}

/// (owner, epoch) per shard.
fn owners(v: &Value) -> Vec<(String, u64)> {
    v["entries"]
        .as_array()
        .map(|es| {
            es.iter()
                .map(|e| {
                    (
                        e["owner"].as_str().unwrap_or("").to_string(),
                        e["epoch"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every (shard, epoch) ever seen, with its owner: an epoch names one owner, on every node.
#[derive(Default)]
struct OwnershipAudit {
    seen: BTreeMap<(usize, u64), String>,
}

impl OwnershipAudit {
    fn record(&mut self, who: &str, v: &Value) {
        for (shard, (owner, epoch)) in owners(v).into_iter().enumerate() {
            let prev = self.seen.entry((shard, epoch)).or_insert(owner.clone());
            assert_eq!(
                *prev, owner,
                "shard {shard} epoch {epoch} has two owners ({who} says {owner})"
            );
        }
    }
}

/// Polls every node's /admin/shards until all show the same map with `done` true of it; feeds
/// every answer to the audit. Returns the agreed view.
fn wait_agreed(
    nodes: &[&NodeProc],
    audit: &mut OwnershipAudit,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let views: Vec<Value> = nodes.iter().map(|n| shards(n.admin())).collect();
        for (n, v) in nodes.iter().zip(&views) {
            audit.record(&n.admin().to_string(), v);
        }
        let first = &views[0];
        let agreed = views.iter().all(|v| {
            v["entries"] == first["entries"]
                && v["metadata"]["version"] == first["metadata"]["version"]
        });
        if agreed && done(first) {
            return first.clone();
        }
        assert!(
            Instant::now() < deadline,
            "never {what}: {:#}",
            views
                .iter()
                .map(|v| {
                    let mut v = v.clone();
                    v["entries"] = v["entries"].as_array().map_or(0, Vec::len).into();
                    v
                })
                .collect::<Vec<_>>()
                .into_iter()
                .collect::<Value>()
        );
        std::thread::sleep(POLL);
    }
}

fn owned(v: &Value, name: &str) -> usize {
    owners(v).iter().filter(|(o, _)| o == name).count()
}

#[test]
fn three_nodes_agree_on_one_map_and_a_fourth_takes_about_a_quarter() {
    let mut audit = OwnershipAudit::default();
    let a = node("a", &[]);
    let b = joining("b", &a);
    let c = joining("c", &a);
    // a founds alone and its first map is all its own; b and c take their shares as they join.
    let three = wait_agreed(
        &[&a, &b, &c],
        &mut audit,
        "one balanced map, 3 voters",
        |v| {
            v["shards"] == SHARDS
                && v["metadata"]["voters"].as_array().map(Vec::len) == Some(3)
                // Balanced: within 5 % (+1) of the fair share of 341.3 each.
                && ["a", "b", "c"].iter().all(|n| (324..=359).contains(&owned(v, n)))
                // RF 2: a replica each (the first map, made on a alone, had none).
                && v["entries"].as_array().is_some_and(|es| {
                    es.iter()
                        .all(|e| e["replicas"].as_array().map(Vec::len) == Some(1))
                })
        },
    );
    for e in three["entries"].as_array().unwrap() {
        let replicas = e["replicas"].as_array().unwrap();
        assert_ne!(replicas[0], e["owner"]);
    }
    for n in [&a, &b, &c] {
        assert_eq!(http_get(n.admin(), "/ready").0, 200);
    }

    let d = joining("d", &a);
    let four = wait_agreed(&[&a, &b, &c, &d], &mut audit, "d's share moved", |v| {
        owned(v, "d") >= 240 && v["nodes"].as_array().map(Vec::len) == Some(4)
    });
    // Moves go 64 a round (d: 64, 128, 192, then its whole share of about 256).
    let out = std::process::Command::new(bin())
        .args(["status", "--shards", "--admin", &b.admin().to_string()])
        .output()
        .expect("run erlmcp status --shards");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.starts_with("metadata cluster "), "{text}");
    assert!(text.contains("1024 shards, replication factor 2"), "{text}");
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with(['a', 'b', 'c', 'd']))
            .count(),
        4,
        "{text}"
    );
    let before = owners(&three);
    let after = owners(&four);
    let moved: Vec<usize> = (0..SHARDS).filter(|&i| before[i].0 != after[i].0).collect();
    let to_d = moved.iter().filter(|&&i| after[i].0 == "d").count();
    assert!(
        (230..=320).contains(&moved.len()),
        "about a quarter moved: {}",
        moved.len()
    );
    assert!(
        to_d * 10 >= moved.len() * 9,
        "{to_d} of {} went to d",
        moved.len()
    );
    for i in 0..SHARDS {
        if moved.contains(&i) {
            assert_eq!(after[i].1, before[i].1 + 1, "shard {i}: one epoch per move");
        } else {
            assert_eq!(
                after[i], before[i],
                "shard {i} did not move: same owner, same epoch"
            );
        }
    }
}

#[test]
fn killing_the_metadata_leader_during_a_rebalance_converges_with_one_owner_per_epoch() {
    let mut audit = OwnershipAudit::default();
    let a = node("a", &[]);
    let b = joining("b", &a);
    let c = joining("c", &a);
    let mut nodes = vec![a, b, c];
    let three = {
        let refs: Vec<&NodeProc> = nodes.iter().collect();
        wait_agreed(&refs, &mut audit, "3 voters", |v| {
            v["shards"] == SHARDS && v["metadata"]["voters"].as_array().map(Vec::len) == Some(3)
        })
    };
    let leader = three["metadata"]["leader"].as_str().unwrap().to_string();
    let leader_name = leader.split('#').next().unwrap().to_string();

    let d = joining("d", &nodes[0]);
    // Kill the leader as soon as the rebalance has begun (d owns something).
    let deadline = Instant::now() + WAIT;
    loop {
        let v = shards(d.admin());
        audit.record("d", &v);
        if owned(&v, "d") > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the rebalance never began");
        std::thread::sleep(POLL);
    }
    let i = ["a", "b", "c"]
        .iter()
        .position(|n| *n == leader_name)
        .expect("the leader is one of the first three");
    let mut dead = nodes.remove(i);
    dead.signal("-KILL");
    dead.wait_exit();

    nodes.push(d);
    let refs: Vec<&NodeProc> = nodes.iter().collect();
    let after = wait_agreed(&refs, &mut audit, "a new leader", |v| {
        v["metadata"]["leader"]
            .as_str()
            .is_some_and(|l| l != leader)
    });
    let new_leader = after["metadata"]["leader"].as_str().unwrap().to_string();
    // The new leader goes on committing: the map converges on the three that are up (the dead
    // node's shards stay its own: moving them needs replication, not rebalancing).
    let live = ["a", "b", "c", "d"]
        .into_iter()
        .filter(|n| *n != leader_name)
        .collect::<Vec<_>>();
    let settled = wait_agreed(&refs, &mut audit, "converged", |v| {
        live.iter().all(|n| owned(v, n) > 0)
    });
    assert!(
        owned(&settled, &leader_name) > 0,
        "a down node is not deregistered"
    );
    assert_ne!(new_leader, leader);
}

#[test]
fn a_killed_metadata_member_recovers_its_log_and_the_cluster_keeps_committing() {
    const TOKEN: &str = "t0ken";
    let chaos = ["--chaos", "--admin-token", TOKEN];
    let mut audit = OwnershipAudit::default();
    let a = node("a", &chaos);
    let join = |name: &str| {
        let s = a.cluster().to_string();
        node(name, &["--join", &s, "--chaos", "--admin-token", TOKEN])
    };
    let b = join("b");
    let c = join("c");
    let three = wait_agreed(&[&a, &b, &c], &mut audit, "3 voters", |v| {
        v["shards"] == SHARDS && v["metadata"]["voters"].as_array().map(Vec::len) == Some(3)
    });
    let leader = three["metadata"]["leader"].as_str().unwrap().to_string();
    // Kill every node's Metadata actor (the leader's too): each is restarted by ClusterSup and
    // recovers its log; none may come back with an empty log under the same id.
    for n in [&a, &b, &c] {
        let auth = format!("Bearer {TOKEN}");
        let (code, body) = http_request(
            n.admin(),
            "POST",
            "/admin/chaos/kill",
            &[("authorization", auth.as_str())],
            r#"{"kind":"child","id":"ClusterSup/Metadata"}"#,
        );
        assert_eq!(code, 200, "{body}");
    }
    let d = join("d");
    wait_agreed(&[&a, &b, &c, &d], &mut audit, "d's share moved", |v| {
        owned(v, "d") >= 240 && v["metadata"]["voters"].as_array().map(Vec::len) == Some(3)
    });
    let after = shards(a.admin());
    assert_eq!(after["metadata"]["cluster"], three["metadata"]["cluster"]);
    eprintln!(
        "leader before {leader}, after {}",
        after["metadata"]["leader"]
    );
    for mut n in [a, b, c, d] {
        n.signal("-TERM");
        let (status, log) = n.wait_exit();
        assert!(status.success());
        assert!(
            !log.iter().any(|l| l.contains("panicked")),
            "{:#?}",
            log.iter()
                .filter(|l| l.contains("panicked"))
                .collect::<Vec<_>>()
        );
    }
}

/// A fresh temporary directory, removed when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!(
            "erlmcp-{tag}-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos() ^ u128::from(free_udp_port())
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        Self(p)
    }

    fn path(&self, sub: &str) -> String {
        self.0.join(sub).display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn with_a_data_dir_a_restarted_node_recovers_its_metadata_even_after_a_torn_write() {
    let dir = TempDir::new("meta-alone");
    let data = dir.path("a");
    let cluster = format!("127.0.0.1:{}", free_udp_port());
    let args = ["--data-dir", data.as_str(), "--cluster", cluster.as_str()];
    let mut audit = OwnershipAudit::default();
    let mut a = node("a", &args);
    let before = wait_agreed(&[&a], &mut audit, "a map", |v| v["shards"] == SHARDS);
    assert_eq!(before["metadata"]["id"], "a", "durable: the id is the name");
    a.signal("-KILL");
    a.wait_exit();
    // A crash mid-write leaves a torn last record: recovery drops it.
    let log = std::path::Path::new(&data).join("metadata/raft.log");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .expect("the journal exists");
    std::io::Write::write_all(&mut f, b"{\"Append\":{\"log_id\":").unwrap();
    drop(f);

    let a = node("a", &args);
    let after = wait_agreed(&[&a], &mut audit, "the map back", |v| v["shards"] == SHARDS);
    assert_eq!(
        after["metadata"]["cluster"], before["metadata"]["cluster"],
        "the same metadata cluster, not a new one"
    );
    assert_eq!(owners(&after), owners(&before));
    assert!(after["metadata"]["version"].as_u64() >= before["metadata"]["version"].as_u64());
}

#[test]
fn with_data_dirs_voters_killed_one_after_another_come_back_as_the_same_members() {
    let dir = TempDir::new("meta-three");
    let mut audit = OwnershipAudit::default();
    let ports: Vec<String> = (0..3)
        .map(|_| format!("127.0.0.1:{}", free_udp_port()))
        .collect();
    let start = |i: usize| {
        let name = ["a", "b", "c"][i];
        let data = dir.path(name);
        let mut args = vec!["--data-dir", data.as_str(), "--cluster", ports[i].as_str()];
        let seeds = ports
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, p)| p.as_str())
            .collect::<Vec<_>>()
            .join(",");
        args.extend(["--join", seeds.as_str()]);
        node(name, &args)
    };
    let mut nodes: Vec<NodeProc> = (0..3).map(start).collect();
    let first = {
        let refs: Vec<&NodeProc> = nodes.iter().collect();
        wait_agreed(&refs, &mut audit, "3 voters", |v| {
            v["shards"] == SHARDS && v["metadata"]["voters"].as_array().map(Vec::len) == Some(3)
        })
    };
    assert_eq!(
        first["metadata"]["voters"],
        serde_json::json!(["a", "b", "c"])
    );
    // Two of the three voters die one after the other; with their logs on disk each comes back
    // as the same member, so the majority is never lost for good.
    for i in [0, 1] {
        nodes[i].signal("-KILL");
        nodes[i].wait_exit();
        nodes[i] = start(i);
        let refs: Vec<&NodeProc> = nodes.iter().collect();
        wait_agreed(&refs, &mut audit, "back", |v| {
            v["metadata"]["leader"].is_string()
                && v["metadata"]["voters"] == serde_json::json!(["a", "b", "c"])
        });
    }
    // The cluster still commits: a fourth node gets its share.
    let seed = ports[2].clone();
    let d = node("d", &["--join", &seed]);
    nodes.push(d);
    let refs: Vec<&NodeProc> = nodes.iter().collect();
    let last = wait_agreed(&refs, &mut audit, "d's share", |v| owned(v, "d") >= 240);
    assert_eq!(last["metadata"]["cluster"], first["metadata"]["cluster"]);
}

fn erlmcp(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(bin())
        .args(args)
        .output()
        .expect("run erlmcp");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn erlmcp_shards_move_commits_through_the_leader_from_any_node_and_refuses_bad_moves() {
    let mut audit = OwnershipAudit::default();
    let a = node("a", &[]);
    let b = joining("b", &a);
    let c = node(
        "c",
        &["--join", &a.cluster().to_string(), "--metadata-only"],
    );
    let settled = wait_agreed(
        &[&a, &b, &c],
        &mut audit,
        "a balanced map on a and b",
        |v| {
            v["metadata"]["voters"].as_array().map(Vec::len) == Some(3)
                && owned(v, "a") >= 486
                && owned(v, "b") >= 486
        },
    );
    assert_eq!(
        owned(&settled, "c"),
        0,
        "a metadata-only node owns no shard"
    );
    let leader = settled["metadata"]["leader"].as_str().unwrap().to_string();
    // Ask a node that is not the leader: the move is committed through the leader.
    let asked = [&a, &b, &c]
        .into_iter()
        .find(|n| !leader.starts_with(&format!("{}#", shards(n.admin())["node"].as_str().unwrap())))
        .expect("a follower");
    let admin = asked.admin().to_string();
    let rows = owners(&settled);
    let shard = rows.iter().position(|(o, _)| o == "a").unwrap();
    let epoch = rows[shard].1;
    let (ok, out, err) = erlmcp(&[
        "shards",
        "move",
        &shard.to_string(),
        "--to",
        "b",
        "--admin",
        &admin,
    ]);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        format!("shard {shard} moved from a to b (epoch {})\n", epoch + 1)
    );
    let after = wait_agreed(&[&a, &b, &c], &mut audit, "the move everywhere", |v| {
        owners(v)[shard] == ("b".to_string(), epoch + 1)
    });
    let row = &after["entries"][shard];
    assert_eq!(
        row["replicas"],
        serde_json::json!(["a"]),
        "the old owner is the replica"
    );
    // Again: nothing to do.
    let (ok, out, _) = erlmcp(&[
        "shards",
        "move",
        &shard.to_string(),
        "--to",
        "b",
        "--admin",
        &admin,
    ]);
    assert!(ok);
    assert!(out.contains("is owned by b already"), "{out}");

    // Bad moves: each a clear error, nothing committed.
    let version = after["metadata"]["version"].clone();
    for (args, needle) in [
        (
            vec!["shards", "move", "1024", "--to", "b"],
            "shard 1024 is out of range: the map has 1024 shards (0..1024)",
        ),
        (
            vec!["shards", "move", "3", "--to", "nobody"],
            "unknown node \"nobody\": the registered nodes are a, b, c",
        ),
        (
            vec!["shards", "move", "3", "--to", "c"],
            "\"c\" is --metadata-only: it holds no shards",
        ),
    ] {
        let mut args = args;
        args.extend(["--admin", &admin]);
        let (ok, _, err) = erlmcp(&args);
        assert!(!ok, "{args:?}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let (code, body) = http_request(
        a.admin(),
        "POST",
        "/admin/shards/move",
        &[],
        "{\"shard\":-1}",
    );
    assert_eq!(code, 400, "{body}");
    let (ok, _, err) = erlmcp(&["shards", "move", "x", "--to", "b", "--admin", &admin]);
    assert!(!ok);
    assert!(err.contains("invalid value 'x'"), "{err}");
    // A node that is down.
    let mut b = b;
    b.signal("-KILL");
    b.wait_exit();
    wait_cluster(a.admin(), "b down", |v| {
        v["members"]
            .as_array()
            .is_some_and(|ms| ms.iter().any(|m| m["name"] == "b" && m["state"] == "down"))
    });
    let (ok, _, err) = erlmcp(&[
        "shards",
        "move",
        "3",
        "--to",
        "b",
        "--admin",
        &a.admin().to_string(),
    ]);
    assert!(!ok);
    assert!(err.contains("\"b\" is not up"), "{err}");
    assert_eq!(
        shards(a.admin())["metadata"]["version"],
        version,
        "nothing committed"
    );
}
