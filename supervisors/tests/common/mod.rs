//! Test helpers: a worker that logs its lifecycle, and an event stream to wait on.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use erlmcp_supervisors::{ChildSpec, SupervisorEvent};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SpawnErr};
use tokio::sync::mpsc;

/// How long any test waits for an event before it fails: generous, never a synchronisation sleep.
pub const WAIT: Duration = Duration::from_secs(10);

/// Shared, ordered record of what workers did.
#[derive(Clone, Default, Debug)]
pub struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    pub fn push(&self, s: impl Into<String>) {
        self.0.lock().unwrap().push(s.into());
    }
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
    pub fn entries(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

pub struct Worker;

#[derive(Clone)]
pub struct WorkerArgs {
    pub name: String,
    pub log: Log,
    /// post_stop takes this long (to exercise shutdown timeouts).
    pub slow_stop: Option<Duration>,
    /// pre_start fails (to exercise start failures).
    pub fail_start: bool,
}

pub enum WorkerMsg {
    Panic,
    Fail,
    Stop(Option<String>),
    Ping(RpcReplyPort<String>),
}
impl ractor::Message for WorkerMsg {}

impl Actor for Worker {
    type Msg = WorkerMsg;
    type State = WorkerArgs;
    type Arguments = WorkerArgs;

    async fn pre_start(
        &self,
        _me: ActorRef<WorkerMsg>,
        args: WorkerArgs,
    ) -> Result<WorkerArgs, ActorProcessingErr> {
        if args.fail_start {
            args.log.push(format!("failstart:{}", args.name));
            return Err(format!("{} refuses to start", args.name).into());
        }
        args.log.push(format!("start:{}", args.name));
        Ok(args)
    }

    async fn post_stop(
        &self,
        _me: ActorRef<WorkerMsg>,
        s: &mut WorkerArgs,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(d) = s.slow_stop {
            s.log.push(format!("stopping:{}", s.name));
            tokio::time::sleep(d).await;
        }
        s.log.push(format!("stop:{}", s.name));
        Ok(())
    }

    async fn handle(
        &self,
        me: ActorRef<WorkerMsg>,
        msg: WorkerMsg,
        s: &mut WorkerArgs,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            WorkerMsg::Panic => panic!("{} was told to panic", s.name),
            WorkerMsg::Fail => return Err(format!("{} was told to fail", s.name).into()),
            WorkerMsg::Stop(reason) => me.stop(reason),
            WorkerMsg::Ping(reply) => {
                let _ = reply.send(s.name.clone());
            }
        }
        Ok(())
    }
}

pub fn args(name: &str, log: &Log) -> WorkerArgs {
    WorkerArgs {
        name: name.into(),
        log: log.clone(),
        slow_stop: None,
        fail_start: false,
    }
}

pub async fn spawn_worker(args: WorkerArgs, sup: ActorCell) -> Result<ActorCell, SpawnErr> {
    let (r, _) = Actor::spawn_linked(None, Worker, args, sup).await?;
    Ok(r.get_cell())
}

/// A permanent worker child that logs into `log`.
pub fn worker(name: &str, log: &Log) -> ChildSpec {
    worker_with(args(name, log))
}

pub fn worker_with(a: WorkerArgs) -> ChildSpec {
    let id = a.name.clone();
    ChildSpec::worker(id, move |sup| spawn_worker(a.clone(), sup))
}

pub fn tell(cell: &ActorCell, msg: WorkerMsg) {
    cell.send_message(msg).expect("worker is alive");
}

/// Supervisor events, awaited with a generous timeout.
pub struct Events(pub mpsc::UnboundedReceiver<SupervisorEvent>);

pub fn events() -> (mpsc::UnboundedSender<SupervisorEvent>, Events) {
    let (tx, rx) = mpsc::unbounded_channel();
    (tx, Events(rx))
}

impl Events {
    /// Waits for the first event matching `pred`, skipping others.
    pub async fn wait_for(
        &mut self,
        what: &str,
        pred: impl Fn(&SupervisorEvent) -> bool,
    ) -> SupervisorEvent {
        let fut = async {
            loop {
                match self.0.recv().await {
                    Some(e) if pred(&e) => return e,
                    Some(_) => continue,
                    None => panic!("event stream closed while waiting for {what}"),
                }
            }
        };
        tokio::time::timeout(WAIT, fut)
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
    }

    /// Waits for the next `Restarted` event of supervisor `sup` and returns the children it restarted.
    pub async fn restarted(&mut self, sup: &str) -> Vec<String> {
        match self.wait_for("restart", |e| matches!(e, SupervisorEvent::Restarted { supervisor, .. } if &**supervisor == sup)).await {
            SupervisorEvent::Restarted { children, .. } => children,
            _ => unreachable!(),
        }
    }

    /// Waits for the `ChildExited` event of child `id`.
    pub async fn exited(&mut self, id: &str) -> erlmcp_supervisors::ExitReason {
        match self
            .wait_for(
                id,
                |e| matches!(e, SupervisorEvent::ChildExited { child, .. } if child == id),
            )
            .await
        {
            SupervisorEvent::ChildExited { reason, .. } => reason,
            _ => unreachable!(),
        }
    }

    /// Waits for supervisor `sup` to escalate.
    pub async fn escalated(&mut self, sup: &str) {
        self.wait_for(
            sup,
            |e| matches!(e, SupervisorEvent::Escalated { supervisor } if &**supervisor == sup),
        )
        .await;
    }

    /// Events already delivered, without waiting.
    pub fn drain(&mut self) -> Vec<SupervisorEvent> {
        let mut v = Vec::new();
        while let Ok(e) = self.0.try_recv() {
            v.push(e);
        }
        v
    }
}

/// Actor ids of a supervisor's children by child id, in order.
pub async fn ids(
    sup: &erlmcp_supervisors::SupervisorRef,
) -> Vec<(String, Option<ractor::ActorId>)> {
    sup.which_children()
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.id, c.actor.map(|a| a.get_id())))
        .collect()
}

pub async fn child(sup: &erlmcp_supervisors::SupervisorRef, id: &str) -> ActorCell {
    sup.which_children()
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.id == id)
        .and_then(|c| c.actor)
        .unwrap_or_else(|| panic!("child {id} is not running"))
}
