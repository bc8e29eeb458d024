//! Convergence: after the faults end, every node sees the same member view (exactly the
//! expected nodes, all `up`) and its supervision tree is whole.
//!
//! A pure check over the nodes' final views, which the harness collects from each node's admin
//! API (`/admin/cluster` for the members, the tree report for wholeness).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{CheckResult, Verdict};

/// The checker's name.
pub const NAME: &str = "convergence";

/// The member state a converged node reports for every member.
const UP: &str = "up";

/// One node's final view of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeView {
    /// The node's name.
    pub node: String,
    /// Whether its admin API answered (when not, the other fields are not meaningful).
    pub reachable: bool,
    /// The members it lists: (name, state as in `/admin/cluster`, e.g. `up`, `down`).
    pub members: Vec<(String, String)>,
    /// Whether its supervision tree is whole (every expected actor running).
    pub tree_whole: bool,
    /// What is wrong with the tree, when it is not whole.
    pub tree_problem: Option<String>,
}

/// Checks that every node in `expected` is reachable, lists exactly the `expected` members, each
/// `up`, and has a whole supervision tree. Views of nodes not in `expected` that are reachable are
/// disagreements too (a node that should not be in the mesh is); unreachable ones are ignored
/// (e.g. a node removed on purpose).
///
/// `details`: `expected`, `disagreements` (count), `nodes`: per node `{"reachable", "ok",
/// "problems": [..]}`.
pub fn check(views: &[NodeView], expected: &[String]) -> CheckResult {
    let expected_set: BTreeSet<&str> = expected.iter().map(String::as_str).collect();
    let mut problems: BTreeMap<&str, (bool, Vec<String>)> = BTreeMap::new();

    for name in &expected_set {
        if !views.iter().any(|v| v.node == *name) {
            problems
                .entry(name)
                .or_insert((false, Vec::new()))
                .1
                .push("no view of this node".to_string());
        }
    }

    let mut seen_views = BTreeSet::new();
    for view in views {
        let entry = problems
            .entry(view.node.as_str())
            .or_insert((view.reachable, Vec::new()));
        let list = &mut entry.1;
        if !seen_views.insert(view.node.as_str()) {
            list.push("more than one view of this node".to_string());
        }
        let is_expected = expected_set.contains(view.node.as_str());
        if !view.reachable {
            if is_expected {
                list.push("unreachable".to_string());
            }
            continue;
        }
        if !is_expected {
            list.push("not an expected node, yet reachable".to_string());
        }
        list.extend(member_problems(&view.members, &expected_set));
        if !view.tree_whole {
            list.push(format!(
                "supervision tree not whole: {}",
                view.tree_problem.as_deref().unwrap_or("no reason given")
            ));
        }
    }

    let disagreements: usize = problems.values().map(|(_, p)| p.len()).sum();
    let bad_nodes: Vec<&str> = problems
        .iter()
        .filter(|(_, (_, p))| !p.is_empty())
        .map(|(n, _)| *n)
        .collect();
    let verdict = if disagreements == 0 {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    let summary = if bad_nodes.is_empty() {
        format!(
            "{} nodes agree: all members up, trees whole",
            expected_set.len()
        )
    } else {
        format!(
            "{} of {} nodes disagree ({})",
            bad_nodes.len(),
            problems.len(),
            bad_nodes.join(", ")
        )
    };
    let nodes: serde_json::Map<String, serde_json::Value> = problems
        .into_iter()
        .map(|(node, (reachable, p))| {
            (
                node.to_string(),
                json!({"reachable": reachable, "ok": p.is_empty(), "problems": p}),
            )
        })
        .collect();

    CheckResult::new(
        NAME,
        verdict,
        summary,
        json!({
            "expected": expected_set,
            "disagreements": disagreements,
            "nodes": nodes,
        }),
    )
}

/// How a member list differs from "exactly `expected`, all up".
fn member_problems(members: &[(String, String)], expected: &BTreeSet<&str>) -> Vec<String> {
    let mut out = Vec::new();
    let mut listed = BTreeSet::new();
    for (name, state) in members {
        if !listed.insert(name.as_str()) {
            out.push(format!("lists member {name} more than once"));
        }
        if !expected.contains(name.as_str()) {
            out.push(format!("lists unexpected member {name} ({state})"));
        } else if state != UP {
            out.push(format!("sees member {name} as {state}"));
        }
    }
    for name in expected.difference(&listed) {
        out.push(format!("does not list member {name}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("node{i}")).collect()
    }

    fn view(node: &str, members: &[(&str, &str)]) -> NodeView {
        NodeView {
            node: node.to_string(),
            reachable: true,
            members: members
                .iter()
                .map(|(n, s)| (n.to_string(), s.to_string()))
                .collect(),
            tree_whole: true,
            tree_problem: None,
        }
    }

    fn all_up(n: usize) -> Vec<NodeView> {
        let members: Vec<(String, String)> =
            names(n).into_iter().map(|m| (m, UP.to_string())).collect();
        names(n)
            .iter()
            .map(|node| NodeView {
                members: members.clone(),
                ..view(node, &[])
            })
            .collect()
    }

    fn problems_of(res: &CheckResult, node: &str) -> Vec<String> {
        res.details["nodes"][node]["problems"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_str().map(str::to_string))
            .collect()
    }

    #[test]
    fn converged_mesh_passes() {
        let res = check(&all_up(3), &names(3));
        assert_eq!(res.verdict, Verdict::Pass, "{res:?}");
        assert_eq!(res.details["disagreements"], 0);
        assert_eq!(res.details["nodes"]["node2"]["ok"], true);
    }

    #[test]
    fn rejects_member_seen_down() {
        let mut views = all_up(3);
        views[0].members[2].1 = "down".to_string();
        let res = check(&views, &names(3));
        assert_eq!(res.verdict, Verdict::Fail);
        assert_eq!(
            problems_of(&res, "node0"),
            vec!["sees member node2 as down"]
        );
        assert!(problems_of(&res, "node1").is_empty());
    }

    #[test]
    fn rejects_missing_and_extra_members() {
        let mut views = all_up(3);
        views[1].members.pop();
        views[2].members.push(("node9".to_string(), UP.to_string()));
        let res = check(&views, &names(3));
        assert_eq!(res.verdict, Verdict::Fail);
        assert_eq!(
            problems_of(&res, "node1"),
            vec!["does not list member node2"]
        );
        assert_eq!(
            problems_of(&res, "node2"),
            vec!["lists unexpected member node9 (up)"]
        );
    }

    #[test]
    fn rejects_unreachable_or_absent_node() {
        let mut views = all_up(3);
        views[2].reachable = false;
        let res = check(&views, &names(3));
        assert_eq!(res.verdict, Verdict::Fail);
        assert_eq!(problems_of(&res, "node2"), vec!["unreachable"]);
        assert_eq!(res.details["nodes"]["node2"]["reachable"], false);

        let views = all_up(3);
        let res = check(&views[..2], &names(3));
        assert_eq!(res.verdict, Verdict::Fail);
        assert_eq!(problems_of(&res, "node2"), vec!["no view of this node"]);
    }

    #[test]
    fn rejects_broken_tree() {
        let mut views = all_up(2);
        views[0].tree_whole = false;
        views[0].tree_problem = Some("kv_store restarting".to_string());
        let res = check(&views, &names(2));
        assert_eq!(res.verdict, Verdict::Fail);
        assert_eq!(
            problems_of(&res, "node0"),
            vec!["supervision tree not whole: kv_store restarting"]
        );
    }

    #[test]
    fn unexpected_nodes_count_only_when_reachable() {
        let mut views = all_up(2);
        let mut extra = view("node7", &[]);
        extra.reachable = false;
        views.push(extra);
        assert_eq!(check(&views, &names(2)).verdict, Verdict::Pass);
        views[2].reachable = true;
        let res = check(&views, &names(2));
        assert_eq!(res.verdict, Verdict::Fail);
        assert!(problems_of(&res, "node7")[0].starts_with("not an expected node"));
    }
}
