//! The `DynamicSupervisor` behaviour (OTP `simple_one_for_one`).

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use erlmcp_supervisors::{
    ChildSpec, DynamicSupervisor, DynamicSupervisorRef, DynamicSupervisorSpec, Restart, Strategy,
    Supervisor, SupervisorError, SupervisorEvent, SupervisorMetrics, SupervisorMsg, SupervisorSpec,
};
use ractor::{ActorCell, ActorStatus};

fn template(log: &Log) -> DynamicSupervisorSpec<String> {
    let log = log.clone();
    DynamicSupervisorSpec::new("dyn", move |name: String, sup: ActorCell| {
        spawn_worker(args(&name, &log), sup)
    })
}

async fn ping(cell: &ActorCell) -> String {
    ractor::call!(
        ractor::ActorRef::<WorkerMsg>::from(cell.clone()),
        WorkerMsg::Ping
    )
    .unwrap()
}

#[tokio::test]
async fn dynamic_supervisor_starts_children_from_its_template() {
    let log = Log::default();
    let (sup, _) = DynamicSupervisor::start(template(&log)).await.unwrap();
    let a = sup.start_child("a".to_string()).await.unwrap();
    let b = sup.start_child("b".to_string()).await.unwrap();
    assert_eq!(
        (ping(&a).await, ping(&b).await),
        ("a".to_string(), "b".to_string())
    );
    let counts = sup.count_children().await.unwrap();
    assert_eq!((counts.specs, counts.active, counts.workers), (2, 2, 2));
    let which = sup.which_children().await.unwrap();
    assert_eq!(
        which.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        ["dyn#0", "dyn#1"]
    );
    sup.shutdown().await;
    let mut stops = log
        .take()
        .into_iter()
        .filter(|e| e.starts_with("stop:"))
        .collect::<Vec<_>>();
    stops.sort();
    assert_eq!(stops, ["stop:a", "stop:b"], "shutdown stops every child");
}

#[tokio::test]
async fn dynamic_child_start_failure_is_a_clear_error() {
    let log = Log::default();
    let l = log.clone();
    let spec = DynamicSupervisorSpec::new("dyn", move |name: String, sup: ActorCell| {
        spawn_worker(
            WorkerArgs {
                fail_start: name == "bad",
                ..args(&name, &l)
            },
            sup,
        )
    });
    let (sup, _) = DynamicSupervisor::start(spec).await.unwrap();
    let err = sup.start_child("bad".into()).await.unwrap_err();
    assert!(
        matches!(&err, SupervisorError::ChildStartFailed { reason, .. } if reason.contains("bad refuses to start")),
        "{err}"
    );
    assert_eq!(sup.count_children().await.unwrap().specs, 0);
    sup.start_child("good".into()).await.unwrap();
    sup.shutdown().await;
}

#[tokio::test]
async fn max_children_is_a_clear_error_not_a_panic() {
    let log = Log::default();
    let (sup, _) = DynamicSupervisor::start(template(&log).max_children(2))
        .await
        .unwrap();
    sup.start_child("a".into()).await.unwrap();
    let b = sup.start_child("b".into()).await.unwrap();
    let err = sup.start_child("c".into()).await.unwrap_err();
    assert!(matches!(err, SupervisorError::MaxChildren { max: 2, .. }));
    assert!(err.to_string().contains("limit of 2 children"));
    // Room again after one ends.
    sup.terminate_child(b.get_id()).await.unwrap();
    sup.start_child("c".into()).await.unwrap();
    sup.shutdown().await;
}

#[tokio::test]
async fn start_child_with_the_wrong_argument_type_is_refused() {
    let log = Log::default();
    let (sup, _) = DynamicSupervisor::start(template(&log)).await.unwrap();
    let r: Result<_, SupervisorError> =
        ractor::call!(sup.actor(), SupervisorMsg::StartDynamic, Box::new(42u64)).unwrap();
    assert!(matches!(r, Err(SupervisorError::WrongArgumentType)));
    sup.shutdown().await;
}

#[tokio::test]
async fn restart_child_and_delete_child_are_not_supported() {
    let log = Log::default();
    let (sup, _) = DynamicSupervisor::start(template(&log)).await.unwrap();
    let r: Result<_, SupervisorError> =
        ractor::call!(sup.actor(), SupervisorMsg::RestartChild, "x".into()).unwrap();
    assert!(matches!(r, Err(SupervisorError::NotSupported(_))));
    let r: Result<_, SupervisorError> =
        ractor::call!(sup.actor(), SupervisorMsg::DeleteChild, "x".into()).unwrap();
    assert!(matches!(r, Err(SupervisorError::NotSupported(_))));
    sup.shutdown().await;
}

#[tokio::test]
async fn terminate_child_stops_it_for_good() {
    let log = Log::default();
    let (tx, mut ev) = events();
    let (sup, _) = DynamicSupervisor::start(template(&log).events(tx))
        .await
        .unwrap();
    let a = sup.start_child("a".into()).await.unwrap();
    sup.terminate_child(a.get_id()).await.unwrap();
    assert_eq!(a.get_status(), ActorStatus::Stopped);
    assert_eq!(sup.count_children().await.unwrap().specs, 0);
    assert!(matches!(
        sup.terminate_child(a.get_id()).await,
        Err(SupervisorError::NotFound(_))
    ));
    assert!(
        !ev.drain()
            .iter()
            .any(|e| matches!(e, SupervisorEvent::Restarted { .. }))
    );
    sup.shutdown().await;
}

#[tokio::test]
async fn dynamic_transient_children_restart_only_after_abnormal_exit() {
    let log = Log::default();
    let (tx, mut ev) = events();
    let (sup, _) = DynamicSupervisor::start(
        template(&log)
            .restart(Restart::Transient)
            .intensity(10, Duration::from_secs(10))
            .events(tx),
    )
    .await
    .unwrap();
    let a = sup.start_child("a".into()).await.unwrap();
    tell(&a, WorkerMsg::Panic);
    assert_eq!(ev.restarted("dyn").await, ["dyn#0"]);
    let a2 = sup.which_children().await.unwrap()[0]
        .actor
        .clone()
        .unwrap();
    assert_ne!(a2.get_id(), a.get_id());
    assert_eq!(ping(&a2).await, "a", "restarted with the same arguments");
    tell(&a2, WorkerMsg::Stop(None));
    ev.exited("dyn#0").await;
    assert_eq!(
        sup.count_children().await.unwrap().specs,
        0,
        "a normal exit ends a transient child"
    );
    sup.shutdown().await;
}

#[tokio::test]
async fn dynamic_temporary_children_are_never_restarted() {
    let log = Log::default();
    let (tx, mut ev) = events();
    let (sup, _) = DynamicSupervisor::start(template(&log).restart(Restart::Temporary).events(tx))
        .await
        .unwrap();
    let a = sup.start_child("a".into()).await.unwrap();
    tell(&a, WorkerMsg::Panic);
    ev.exited("dyn#0").await;
    assert_eq!(sup.count_children().await.unwrap().specs, 0);
    sup.shutdown().await;
}

#[tokio::test]
async fn dynamic_supervisor_with_10000_children_restarts_exactly_the_100_killed() {
    let log = Log::default();
    let (tx, mut ev) = events();
    let spec = {
        let log = log.clone();
        DynamicSupervisorSpec::new("big", move |i: u32, sup: ActorCell| {
            spawn_worker(args(&i.to_string(), &log), sup)
        })
        .intensity(100, Duration::from_secs(60))
        .events(tx)
    };
    let (sup, _) = DynamicSupervisor::start(spec).await.unwrap();
    for i in 0..10_000u32 {
        sup.start_child(i).await.unwrap();
    }
    let before = sup.which_children().await.unwrap();
    assert_eq!(before.len(), 10_000);
    ev.drain();
    // Kill every 100th child.
    let killed: HashSet<String> = before.iter().step_by(100).map(|c| c.id.clone()).collect();
    assert_eq!(killed.len(), 100);
    for c in before.iter().step_by(100) {
        c.actor.as_ref().unwrap().kill();
    }
    let mut restarted = HashSet::new();
    while restarted.len() < 100 {
        let r = ev.restarted("big").await;
        restarted.extend(r);
    }
    assert_eq!(restarted, killed);
    let after = sup.which_children().await.unwrap();
    assert_eq!(after.len(), 10_000);
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b.id, a.id);
        let same = b.actor.as_ref().unwrap().get_id() == a.actor.as_ref().unwrap().get_id();
        assert_eq!(
            same,
            !killed.contains(&b.id),
            "child {} restarted iff killed",
            b.id
        );
        assert_eq!(a.restarts, u32::from(killed.contains(&b.id)));
    }
    sup.shutdown().await;
}

#[tokio::test]
async fn dynamic_intensity_exceeded_stops_all_children_and_escalates() {
    let log = Log::default();
    let (tx, mut ev) = events();
    let m = SupervisorMetrics::new();
    let (sup, handle) = DynamicSupervisor::start(
        template(&log)
            .intensity(2, Duration::from_secs(60))
            .metrics(m.clone())
            .events(tx),
    )
    .await
    .unwrap();
    let keep = sup.start_child("keep".into()).await.unwrap();
    sup.start_child("crashy".into()).await.unwrap();
    for _ in 0..2 {
        let crashy = sup.which_children().await.unwrap()[1]
            .actor
            .clone()
            .unwrap();
        tell(&crashy, WorkerMsg::Panic);
        ev.restarted("dyn").await;
        assert_eq!(
            keep.get_status(),
            ActorStatus::Running,
            "siblings are untouched"
        );
    }
    let crashy = sup.which_children().await.unwrap()[1]
        .actor
        .clone()
        .unwrap();
    tell(&crashy, WorkerMsg::Panic);
    ev.escalated("dyn").await;
    tokio::time::timeout(WAIT, handle).await.unwrap().unwrap();
    assert_eq!(keep.get_status(), ActorStatus::Stopped);
    assert!(
        log.entries().contains(&"stop:keep".to_string()),
        "the sibling was stopped gracefully"
    );
    assert_eq!(m.snapshot().escalations, 1);
    assert_eq!(m.snapshot().running_children, 0);
}

#[tokio::test]
async fn dynamic_supervisor_under_a_supervisor_escalates_and_is_restarted_empty() {
    let log = Log::default();
    let (tx, mut ev) = events();
    let dspec = template(&log)
        .intensity(0, Duration::from_secs(60))
        .events(tx.clone());
    let top = SupervisorSpec::new("top", Strategy::OneForOne)
        .intensity(3, Duration::from_secs(60))
        .events(tx)
        .child(ChildSpec::dynamic_supervisor("sessions", dspec));
    let (sup, _) = Supervisor::start(top).await.unwrap();
    let dyn_ref: DynamicSupervisorRef<String> =
        DynamicSupervisorRef::from_actor(child(&sup, "sessions").await.into());
    let a = dyn_ref.start_child("a".into()).await.unwrap();
    tell(&a, WorkerMsg::Fail);
    ev.escalated("dyn").await;
    assert_eq!(ev.restarted("top").await, ["sessions"]);
    let dyn_ref: DynamicSupervisorRef<String> =
        DynamicSupervisorRef::from_actor(child(&sup, "sessions").await.into());
    assert_eq!(
        dyn_ref.count_children().await.unwrap().specs,
        0,
        "a restarted dynamic supervisor starts empty, as in OTP"
    );
    let snap = sup.snapshot().await.unwrap();
    assert_eq!(snap.children[0].restarts, 1);
    sup.shutdown().await;
}

// On the paused clock (the backoff is a tokio timer): exact, see supervisor_suite.rs.
#[tokio::test(start_paused = true)]
async fn dynamic_backoff_delays_restarts() {
    let log = Log::default();
    let (tx, mut ev) = events();
    let delay = Duration::from_millis(150);
    let (sup, _) = DynamicSupervisor::start(
        template(&log)
            .backoff(erlmcp_supervisors::Backoff::Fixed(delay))
            .events(tx),
    )
    .await
    .unwrap();
    let a = sup.start_child("a".into()).await.unwrap();
    tell(&a, WorkerMsg::Panic);
    ev.exited("dyn#0").await;
    let t = tokio::time::Instant::now();
    let c = sup.count_children().await.unwrap();
    assert_eq!(
        (c.specs, c.active),
        (1, 0),
        "pending restart still counts as a child"
    );
    ev.restarted("dyn").await;
    assert!(
        t.elapsed() >= delay,
        "restarted after the backoff: {:?}",
        t.elapsed()
    );
    sup.shutdown().await;
}

#[tokio::test]
async fn start_children_starts_a_batch_concurrently_and_respects_max_children() {
    let log = Log::default();
    let (sup, _) = DynamicSupervisor::start(template(&log).max_children(1500))
        .await
        .unwrap();
    let names: Vec<String> = (0..2000).map(|i| i.to_string()).collect();
    let results = sup.start_children(names).await.unwrap();
    assert_eq!(results.len(), 2000);
    assert!(results[..1500].iter().all(|r| r.is_ok()));
    assert!(
        results[1500..]
            .iter()
            .all(|r| matches!(r, Err(SupervisorError::MaxChildren { max: 1500, .. })))
    );
    assert_eq!(
        ping(results[7].as_ref().unwrap()).await,
        "7",
        "results are in argument order"
    );
    let c = sup.count_children().await.unwrap();
    assert_eq!((c.specs, c.active), (1500, 1500));
    let ids: HashSet<_> = sup
        .which_children()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids.len(), 1500, "distinct serials");
    sup.shutdown().await;
}
