//! A small tree: a rest_for_one root with a worker and a dynamic supervisor of sessions.
//! A crash of a session restarts only that session; a snapshot shows the whole tree.
//!
//! `cargo run -p erlmcp-supervisors --example tree`

use std::time::Duration;

use erlmcp_supervisors::{
    ChildSpec, DynamicSupervisorRef, DynamicSupervisorSpec, Restart, Shutdown, Strategy,
    Supervisor, SupervisorSpec,
};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef};

/// A worker that crashes when told to.
struct Session;

enum SessionMsg {
    Crash,
}
impl ractor::Message for SessionMsg {}

impl Actor for Session {
    type Msg = SessionMsg;
    type State = String;
    type Arguments = String;

    async fn pre_start(
        &self,
        _: ActorRef<SessionMsg>,
        id: String,
    ) -> Result<String, ActorProcessingErr> {
        println!("session {id} started");
        Ok(id)
    }

    async fn handle(
        &self,
        _: ActorRef<SessionMsg>,
        msg: SessionMsg,
        id: &mut String,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SessionMsg::Crash => Err(format!("session {id} crashed").into()),
        }
    }
}

async fn start_session(id: String, sup: ActorCell) -> Result<ActorCell, ractor::SpawnErr> {
    let (r, _) = Actor::spawn_linked(None, Session, id, sup).await?;
    Ok(r.get_cell())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sessions = DynamicSupervisorSpec::new("SessionSup", start_session)
        .restart(Restart::Transient)
        .intensity(10, Duration::from_secs(5));
    let spec = SupervisorSpec::new("NodeSup", Strategy::RestForOne)
        .intensity(3, Duration::from_secs(5))
        .child(
            ChildSpec::worker("telemetry", |sup| start_session("telemetry".into(), sup))
                .shutdown(Shutdown::Timeout(Duration::from_secs(1))),
        )
        .child(ChildSpec::dynamic_supervisor("sessions", sessions));
    let (root, _join) = Supervisor::start(spec).await?;

    let session_sup = root.which_children().await?[1]
        .actor
        .clone()
        .ok_or("sessions not running")?;
    let session_sup: DynamicSupervisorRef<String> =
        DynamicSupervisorRef::from_actor(session_sup.into());
    let a = session_sup.start_child("a".into()).await?;
    session_sup.start_child("b".into()).await?;

    a.send_message(SessionMsg::Crash)?;
    // Wait (bounded) until the supervisor has replaced it.
    for _ in 0..100 {
        let children = session_sup.which_children().await?;
        if children
            .iter()
            .any(|c| c.restarts == 1 && c.actor.is_some())
        {
            break;
        }
        tokio::task::yield_now().await;
    }
    println!("{}", serde_json_like(&root.snapshot().await?, 0));
    root.shutdown().await;
    Ok(())
}

/// Indented text form of a snapshot (keeps the example free of extra dependencies).
fn serde_json_like(t: &erlmcp_supervisors::TreeSnapshot, depth: usize) -> String {
    let mut s = format!(
        "{}{} ({:?}, actor {}, restarts {})\n",
        "  ".repeat(depth),
        t.id,
        t.kind,
        t.actor_id.as_deref().unwrap_or("-"),
        t.restarts
    );
    for c in &t.children {
        s.push_str(&serde_json_like(c, depth + 1));
    }
    s
}
