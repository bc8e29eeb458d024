//! Introspection: `which_children`, `count_children` and a whole-tree snapshot.

use ractor::{ActorCell, ActorRef};

use crate::{ChildKind, SupervisorMsg};

/// One child as `which_children` reports it.
#[derive(Debug, Clone)]
pub struct ChildInfo {
    /// Child id (for dynamic children: `template#serial`).
    pub id: String,
    /// The running actor, or `None` if its spec is kept but it is not running (or restarting).
    pub actor: Option<ActorCell>,
    /// Worker or supervisor.
    pub kind: ChildKind,
    /// How often this child has been restarted.
    pub restarts: u32,
}

/// `count_children`, as OTP reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct ChildCounts {
    /// All child specs (running or not).
    pub specs: usize,
    /// Running children.
    pub active: usize,
    /// Children of kind supervisor.
    pub supervisors: usize,
    /// Children of kind worker.
    pub workers: usize,
}

/// A supervision tree as seen at one moment: what the admin API shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TreeSnapshot {
    /// Child id (the root's is its supervisor name).
    pub id: String,
    /// Worker or supervisor.
    pub kind: ChildKind,
    /// The actor id, if running.
    pub actor_id: Option<String>,
    /// Restart count of this child.
    pub restarts: u32,
    /// For supervisors: their children.
    pub children: Vec<TreeSnapshot>,
}

/// Walks a tree from `root` (a [`crate::Supervisor`] or [`crate::DynamicSupervisor`]),
/// asking each supervisor for its children. Children of kind supervisor that are not one of
/// ours are shown without children.
pub async fn tree_snapshot(
    root: &ActorRef<SupervisorMsg>,
) -> Result<TreeSnapshot, crate::SupervisorError> {
    let name = ractor::call!(root, SupervisorMsg::Name)?;
    let mut top = TreeSnapshot {
        id: name,
        kind: ChildKind::Supervisor,
        actor_id: Some(root.get_id().to_string()),
        restarts: 0,
        children: Vec::new(),
    };
    // Iterative walk: (path of indices to the node, supervisor to ask).
    let mut pending: Vec<(Vec<usize>, ActorRef<SupervisorMsg>)> = vec![(Vec::new(), root.clone())];
    while let Some((path, sup)) = pending.pop() {
        let Ok(children) = ractor::call!(sup, SupervisorMsg::WhichChildren) else {
            continue; // it stopped meanwhile: show it without children
        };
        let node = path.iter().fold(&mut top, |n, &i| &mut n.children[i]);
        for (i, c) in children.into_iter().enumerate() {
            if c.kind == ChildKind::Supervisor
                && let Some(cell) = &c.actor
                && cell.is_message_type_of::<SupervisorMsg>() == Some(true)
            {
                let mut p = path.clone();
                p.push(i);
                pending.push((p, ActorRef::from(cell.clone())));
            }
            node.children.push(TreeSnapshot {
                id: c.id,
                kind: c.kind,
                actor_id: c.actor.as_ref().map(|a| a.get_id().to_string()),
                restarts: c.restarts,
                children: Vec::new(),
            });
        }
    }
    Ok(top)
}
