//! The `Supervisor` behaviour, one test per documented sentence (after OTP's `supervisor_SUITE`).

mod common;

use std::time::Duration;

use common::*;
use erlmcp_supervisors::{
    ChildKind, ChildSpec, ExitReason, Restart, Shutdown, Strategy, Supervisor, SupervisorError,
    SupervisorEvent, SupervisorMetrics, SupervisorSpec,
};
use ractor::ActorStatus;

fn spec(name: &str, strategy: Strategy, log: &Log, children: &[&str]) -> SupervisorSpec {
    let mut s = SupervisorSpec::new(name, strategy).intensity(10, Duration::from_secs(10));
    for c in children {
        s = s.child(worker(c, log));
    }
    s
}

/// Returns which children got a new actor between two `ids` snapshots.
fn changed(
    before: &[(String, Option<ractor::ActorId>)],
    after: &[(String, Option<ractor::ActorId>)],
) -> Vec<String> {
    before
        .iter()
        .zip(after)
        .filter(|(b, a)| b.1 != a.1)
        .map(|(b, _)| b.0.clone())
        .collect()
}

// ---- start ----------------------------------------------------------------------------------

#[tokio::test]
async fn children_start_in_spec_order() {
    let log = Log::default();
    let (sup, _) = Supervisor::start(spec("s", Strategy::OneForOne, &log, &["a", "b", "c"]))
        .await
        .unwrap();
    assert_eq!(log.take(), ["start:a", "start:b", "start:c"]);
    assert_eq!(
        ids(&sup)
            .await
            .iter()
            .map(|c| c.0.as_str())
            .collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
    sup.shutdown().await;
}

#[tokio::test]
async fn start_failure_stops_started_children_in_reverse_and_names_the_child() {
    let log = Log::default();
    let bad = WorkerArgs {
        fail_start: true,
        ..args("c", &log)
    };
    let s = SupervisorSpec::new("s", Strategy::OneForOne)
        .child(worker("a", &log))
        .child(worker("b", &log))
        .child(worker_with(bad))
        .child(worker("d", &log));
    let err = Supervisor::start(s).await.expect_err("start must fail");
    let msg = err.to_string();
    assert!(
        msg.contains("child c failed to start"),
        "error names the child: {msg}"
    );
    assert_eq!(
        log.take(),
        ["start:a", "start:b", "failstart:c", "stop:b", "stop:a"]
    );
}

// ---- strategies ------------------------------------------------------------------------------

#[tokio::test]
async fn one_for_one_restarts_only_the_crashed_child() {
    let log = Log::default();
    let (tx, mut ev) = events();
    let (sup, _) =
        Supervisor::start(spec("s", Strategy::OneForOne, &log, &["a", "b", "c"]).events(tx))
            .await
            .unwrap();
    let before = ids(&sup).await;
    log.take();
    tell(&child(&sup, "b").await, WorkerMsg::Panic);
    assert_eq!(ev.restarted("s").await, ["b"]);
    let after = ids(&sup).await;
    assert_eq!(changed(&before, &after), ["b"]);
    assert_eq!(
        log.take(),
        ["start:b"],
        "a panicking actor skips post_stop; siblings untouched"
    );
    sup.shutdown().await;
}

#[tokio::test]
async fn one_for_all_restarts_all_children() {
    let log = Log::default();
    let (tx, mut ev) = events();
    let (sup, _) =
        Supervisor::start(spec("s", Strategy::OneForAll, &log, &["a", "b", "c"]).events(tx))
            .await
            .unwrap();
    let before = ids(&sup).await;
    log.take();
    tell(&child(&sup, "b").await, WorkerMsg::Panic);
    assert_eq!(ev.restarted("s").await, ["a", "b", "c"]);
    assert_eq!(changed(&before, &ids(&sup).await), ["a", "b", "c"]);
    // The others are stopped in reverse order, then all start in order.
    assert_eq!(
        log.take(),
        ["stop:c", "stop:a", "start:a", "start:b", "start:c"]
    );
    sup.shutdown().await;
}

#[tokio::test]
async fn rest_for_one_restarts_the_crashed_child_and_those_after_it() {
    let log = Log::default();
    let (tx, mut ev) = events();
    let (sup, _) =
        Supervisor::start(spec("s", Strategy::RestForOne, &log, &["a", "b", "c", "d"]).events(tx))
            .await
            .unwrap();
    let before = ids(&sup).await;
    log.take();
    tell(&child(&sup, "b").await, WorkerMsg::Panic);
    assert_eq!(ev.restarted("s").await, ["b", "c", "d"]);
    assert_eq!(changed(&before, &ids(&sup).await), ["b", "c", "d"]);
    assert_eq!(
        log.take(),
        ["stop:d", "stop:c", "start:b", "start:c", "start:d"]
    );
    sup.shutdown().await;
}

#[tokio::test]
async fn rest_for_one_crash_of_the_last_child_restarts_only_it() {
    let log = Log::default();
    let (tx, mut ev) = events();
    let (sup, _) =
        Supervisor::start(spec("s", Strategy::RestForOne, &log, &["a", "b", "c"]).events(tx))
            .await
            .unwrap();
    let before = ids(&sup).await;
    tell(&child(&sup, "c").await, WorkerMsg::Fail);
    assert_eq!(ev.restarted("s").await, ["c"]);
    assert_eq!(changed(&before, &ids(&sup).await), ["c"]);
    sup.shutdown().await;
}

// ---- restart types --------------------------------------------------------------------------

#[tokio::test]
async fn permanent_child_is_restarted_after_normal_and_abnormal_exit() {
    let log = Log::default();
    let (tx, mut ev) = events();
    let (sup, _) = Supervisor::start(spec("s", Strategy::OneForOne, &log, &["p"]).events(tx))
        .await
        .unwrap();
    tell(&child(&sup, "p").await, WorkerMsg::Stop(None));
    assert_eq!(ev.exited("p").await, ExitReason::Normal);
    assert_eq!(ev.restarted("s").await, ["p"]);
    tell(&child(&sup, "p").await, WorkerMsg::Panic);
    assert!(matches!(ev.exited("p").await, ExitReason::Failed(_)));
    assert_eq!(ev.restarted("s").await, ["p"]);
    assert_eq!(sup.which_children().await.unwrap()[0].restarts, 2);
    sup.shutdown().await;
}

#[tokio::test]
async fn transient_child_is_restarted_only_after_abnormal_exit() {
    let log = Log::default();
    let (tx, mut ev) = events();
    let s = SupervisorSpec::new("s", Strategy::OneForOne)
        .intensity(10, Duration::from_secs(10))
        .events(tx)
        .child(worker("t", &log).restart(Restart::Transient));
    let (sup, _) = Supervisor::start(s).await.unwrap();

    // An Err from a handler is abnormal: restarted.
    tell(&child(&sup, "t").await, WorkerMsg::Fail);
    assert!(matches!(ev.exited("t").await, ExitReason::Failed(_)));
    assert_eq!(ev.restarted("s").await, ["t"]);
    // A panic is abnormal: restarted.
    tell(&child(&sup, "t").await, WorkerMsg::Panic);
    assert_eq!(ev.restarted("s").await, ["t"]);
    // Killed by someone else is abnormal: restarted.
    child(&sup, "t").await.kill();
    assert_eq!(ev.exited("t").await, ExitReason::Killed);
    assert_eq!(ev.restarted("s").await, ["t"]);
    // `shutdown` is normal: not restarted, spec kept.
    tell(
        &child(&sup, "t").await,
        WorkerMsg::Stop(Some("shutdown".into())),
    );
    assert_eq!(ev.exited("t").await, ExitReason::Shutdown);
    let counts = sup.count_children().await.unwrap();
    assert_eq!((counts.specs, counts.active), (1, 0));
    // A normal stop is normal: not restarted either.
    sup.restart_child("t").await.unwrap();
    tell(&child(&sup, "t").await, WorkerMsg::Stop(None));
    assert_eq!(ev.exited("t").await, ExitReason::Normal);
    let counts = sup.count_children().await.unwrap();
    assert_eq!((counts.specs, counts.active), (1, 0));
    assert!(
        !ev.drain()
            .iter()
            .any(|e| matches!(e, SupervisorEvent::Restarted { .. })),
        "no restart after a normal exit"
    );
    sup.shutdown().await;
}

#[tokio::test]
async fn temporary_child_is_never_restarted_and_its_spec_is_removed() {
    let log = Log::default();
    let (tx, mut ev) = events();
    let s = SupervisorSpec::new("s", Strategy::OneForOne)
        .events(tx)
        .child(worker("keep", &log))
        .child(worker("tmp", &log).restart(Restart::Temporary));
    let (sup, _) = Supervisor::start(s).await.unwrap();
    tell(&child(&sup, "tmp").await, WorkerMsg::Panic);
    assert!(matches!(ev.exited("tmp").await, ExitReason::Failed(_)));
    let children: Vec<_> = ids(&sup).await.into_iter().map(|c| c.0).collect();
    assert_eq!(children, ["keep"]);
    assert!(
        !ev.drain()
            .iter()
            .any(|e| matches!(e, SupervisorEvent::Restarted { .. }))
    );
    sup.shutdown().await;
}

#[tokio::test]
async fn temporary_sibling_is_not_restarted_under_one_for_all() {
    let log = Log::default();
    let (tx, mut ev) = events();
    let s = SupervisorSpec::new("s", Strategy::OneForAll)
        .events(tx)
        .child(worker("a", &log))
        .child(worker("tmp", &log).restart(Restart::Temporary))
        .child(worker("c", &log));
    let (sup, _) = Supervisor::start(s).await.unwrap();
    log.take();
    tell(&child(&sup, "c").await, WorkerMsg::Panic);
    assert_eq!(ev.restarted("s").await, ["a", "c"]);
    assert_eq!(log.take(), ["stop:tmp", "stop:a", "start:a", "start:c"]);
    let children: Vec<_> = ids(&sup).await.into_iter().map(|c| c.0).collect();
    assert_eq!(children, ["a", "c"]);
    sup.shutdown().await;
}

// ---- shutdown -------------------------------------------------------------------------------

#[tokio::test]
async fn shutdown_stops_children_in_reverse_start_order() {
    let log = Log::default();
    let (sup, handle) = Supervisor::start(spec("s", Strategy::OneForOne, &log, &["a", "b", "c"]))
        .await
        .unwrap();
    log.take();
    sup.shutdown().await;
    assert_eq!(log.take(), ["stop:c", "stop:b", "stop:a"]);
    tokio::time::timeout(WAIT, handle).await.unwrap().unwrap();
    assert_eq!(sup.cell().get_status(), ActorStatus::Stopped);
}

#[tokio::test]
async fn shutdown_timeout_kills_a_child_that_does_not_stop_in_time() {
    let log = Log::default();
    let slow = WorkerArgs {
        slow_stop: Some(Duration::from_secs(3600)),
        ..args("slow", &log)
    };
    let s = SupervisorSpec::new("s", Strategy::OneForOne)
        .child(worker("a", &log))
        .child(worker_with(slow).shutdown(Shutdown::Timeout(Duration::from_millis(50))));
    let (sup, _) = Supervisor::start(s).await.unwrap();
    log.take();
    tokio::time::timeout(WAIT, sup.shutdown())
        .await
        .expect("the slow child is killed after its timeout");
    // It was asked (its post_stop began), then killed before finishing; then a stopped.
    assert_eq!(log.take(), ["stopping:slow", "stop:a"]);
}

#[tokio::test]
async fn brutal_kill_does_not_let_the_child_run_post_stop() {
    let log = Log::default();
    let s = SupervisorSpec::new("s", Strategy::OneForOne)
        .child(worker("a", &log))
        .child(worker("k", &log).shutdown(Shutdown::BrutalKill));
    let (sup, _) = Supervisor::start(s).await.unwrap();
    log.take();
    sup.shutdown().await;
    assert_eq!(log.take(), ["stop:a"]);
}

#[tokio::test]
async fn terminate_child_honours_the_shutdown_policy() {
    let log = Log::default();
    let s = SupervisorSpec::new("s", Strategy::OneForOne)
        .child(worker("graceful", &log))
        .child(worker("brutal", &log).shutdown(Shutdown::BrutalKill));
    let (sup, _) = Supervisor::start(s).await.unwrap();
    log.take();
    sup.terminate_child("graceful").await.unwrap();
    sup.terminate_child("brutal").await.unwrap();
    assert_eq!(log.take(), ["stop:graceful"]);
    sup.shutdown().await;
}

#[tokio::test]
async fn infinity_waits_for_a_child_supervisor_to_stop_its_own_children_first() {
    let log = Log::default();
    let inner = spec("inner", Strategy::OneForOne, &log, &["x", "y"]);
    let s = SupervisorSpec::new("outer", Strategy::OneForOne)
        .child(worker("a", &log))
        .child(ChildSpec::supervisor("inner", inner))
        .child(worker("b", &log));
    let (sup, _) = Supervisor::start(s).await.unwrap();
    assert_eq!(log.take(), ["start:a", "start:x", "start:y", "start:b"]);
    sup.shutdown().await;
    assert_eq!(log.take(), ["stop:b", "stop:y", "stop:x", "stop:a"]);
}

// ---- intensity ------------------------------------------------------------------------------

#[tokio::test]
async fn crashing_child_does_not_stop_its_siblings_until_intensity_is_hit() {
    let log = Log::default();
    let (tx, mut ev) = events();
    let s = spec("s", Strategy::OneForOne, &log, &["a", "b", "c"])
        .intensity(5, Duration::from_secs(60))
        .events(tx);
    let (sup, handle) = Supervisor::start(s).await.unwrap();
    let before = ids(&sup).await;
    for _ in 0..5 {
        tell(&child(&sup, "b").await, WorkerMsg::Panic);
        assert_eq!(ev.restarted("s").await, ["b"]);
        let now = ids(&sup).await;
        assert_eq!(
            (now[0].1, now[2].1),
            (before[0].1, before[2].1),
            "siblings keep running"
        );
    }
    log.take();
    tell(&child(&sup, "b").await, WorkerMsg::Panic);
    ev.escalated("s").await;
    tokio::time::timeout(WAIT, handle).await.unwrap().unwrap();
    assert_eq!(
        log.take(),
        ["stop:c", "stop:a"],
        "all children stopped in reverse order"
    );
    assert_eq!(sup.cell().get_status(), ActorStatus::Stopped);
}

#[tokio::test]
async fn intensity_exceeded_escalates_through_three_levels() {
    let log = Log::default();
    let (tx, mut ev) = events();
    let metrics = SupervisorMetrics::new();
    let leaf = SupervisorSpec::new("leaf", Strategy::OneForOne)
        .intensity(2, Duration::from_secs(60))
        .metrics(metrics.clone())
        .events(tx.clone())
        .child(worker("w", &log));
    // mid tolerates no restart at all, so the leaf's failure escalates straight through it...
    let mid = SupervisorSpec::new("mid", Strategy::OneForOne)
        .intensity(0, Duration::from_secs(60))
        .metrics(metrics.clone())
        .events(tx.clone())
        .child(worker("m", &log))
        .child(ChildSpec::supervisor("leaf", leaf));
    // ...and the root's as well.
    let root = SupervisorSpec::new("root", Strategy::OneForOne)
        .intensity(0, Duration::from_secs(60))
        .metrics(metrics.clone())
        .events(tx)
        .child(worker("r", &log))
        .child(ChildSpec::supervisor("mid", mid));
    let (sup, handle) = Supervisor::start(root).await.unwrap();
    let snap = sup.snapshot().await.unwrap();
    let leaf_ref: ractor::ActorRef<erlmcp_supervisors::SupervisorMsg> = {
        let mid_cell = child(&sup, "mid").await;
        let mid_ref = erlmcp_supervisors::SupervisorRef::from_actor(mid_cell.into());
        child(&mid_ref, "leaf").await.into()
    };
    let leaf_ref = erlmcp_supervisors::SupervisorRef::from_actor(leaf_ref);
    assert_eq!(snap.children[1].children[1].id, "leaf");

    // Two crashes are within the leaf's intensity; the third exceeds it.
    for _ in 0..2 {
        tell(&child(&leaf_ref, "w").await, WorkerMsg::Panic);
        assert_eq!(ev.restarted("leaf").await, ["w"]);
    }
    tell(&child(&leaf_ref, "w").await, WorkerMsg::Panic);
    ev.escalated("leaf").await;
    ev.escalated("mid").await;
    ev.escalated("root").await;
    tokio::time::timeout(WAIT, handle).await.unwrap().unwrap();
    assert_eq!(sup.cell().get_status(), ActorStatus::Stopped);
    assert_eq!(metrics.snapshot().escalations, 3);
    assert_eq!(metrics.snapshot().running_children, 0);
    let stops: Vec<_> = log
        .entries()
        .into_iter()
        .filter(|e| e.starts_with("stop:"))
        .collect();
    assert_eq!(
        stops,
        ["stop:m", "stop:r"],
        "each level stopped its remaining children"
    );
}

#[tokio::test]
async fn escalation_is_absorbed_by_a_parent_with_intensity_left() {
    let log = Log::default();
    let (tx, mut ev) = events();
    let leaf = SupervisorSpec::new("leaf", Strategy::OneForOne)
        .intensity(0, Duration::from_secs(60))
        .events(tx.clone())
        .child(worker("w", &log));
    let root = SupervisorSpec::new("root", Strategy::OneForOne)
        .intensity(5, Duration::from_secs(60))
        .events(tx)
        .child(worker("r", &log))
        .child(ChildSpec::supervisor("leaf", leaf));
    let (sup, _) = Supervisor::start(root).await.unwrap();
    let before = ids(&sup).await;
    let leaf_ref = erlmcp_supervisors::SupervisorRef::from_actor(child(&sup, "leaf").await.into());
    tell(&child(&leaf_ref, "w").await, WorkerMsg::Panic);
    ev.escalated("leaf").await;
    assert_eq!(ev.restarted("root").await, ["leaf"]);
    assert_eq!(changed(&before, &ids(&sup).await), ["leaf"]);
    let leaf_ref = erlmcp_supervisors::SupervisorRef::from_actor(child(&sup, "leaf").await.into());
    assert_eq!(
        leaf_ref.count_children().await.unwrap().active,
        1,
        "the new leaf started its worker"
    );
    sup.shutdown().await;
}

// ---- backoff and restart failures -----------------------------------------------------------

// The backoff is a tokio timer: on the paused clock, time moves only when every task waits, so
// the check below is exact (no slack) and no delay of this test's own task can fail it.
#[tokio::test(start_paused = true)]
async fn backoff_delays_the_restart() {
    let log = Log::default();
    let (tx, mut ev) = events();
    let delay = Duration::from_millis(200);
    let s = spec("s", Strategy::OneForOne, &log, &["a"])
        .backoff(erlmcp_supervisors::Backoff::Fixed(delay))
        .events(tx);
    let (sup, _) = Supervisor::start(s).await.unwrap();
    tell(&child(&sup, "a").await, WorkerMsg::Panic);
    ev.exited("a").await;
    let exited_at = tokio::time::Instant::now();
    assert_eq!(
        sup.count_children().await.unwrap().active,
        0,
        "not restarted before the delay"
    );
    assert_eq!(ev.restarted("s").await, ["a"]);
    assert!(
        exited_at.elapsed() >= delay,
        "restarted after the backoff: {:?}",
        exited_at.elapsed()
    );
    assert_eq!(sup.count_children().await.unwrap().active, 1);
    sup.shutdown().await;
}

#[test]
fn exponential_backoff_doubles_up_to_its_cap() {
    let b = erlmcp_supervisors::Backoff::Exponential {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(70),
    };
    let d: Vec<_> = (1..=5).map(|n| b.delay(n).as_millis()).collect();
    assert_eq!(d, [10, 20, 40, 70, 70]);
}

#[tokio::test]
async fn a_failing_restart_is_retried_and_counts_toward_intensity() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    let log = Log::default();
    let (tx, mut ev) = events();
    let starts = Arc::new(AtomicU32::new(0));
    // Starts once, then refuses the next two starts, then starts again.
    let spec_child = {
        let (log, starts) = (log.clone(), starts.clone());
        ChildSpec::worker("flaky", move |sup| {
            let n = starts.fetch_add(1, Ordering::SeqCst);
            let a = WorkerArgs {
                fail_start: n == 1 || n == 2,
                ..args("flaky", &log)
            };
            spawn_worker(a, sup)
        })
    };
    let s = SupervisorSpec::new("s", Strategy::OneForOne)
        .intensity(3, Duration::from_secs(60))
        .events(tx)
        .child(spec_child);
    let (sup, _) = Supervisor::start(s).await.unwrap();
    tell(&child(&sup, "flaky").await, WorkerMsg::Panic);
    let mut failures = 0;
    loop {
        match ev
            .wait_for("restart or failure", |e| {
                matches!(
                    e,
                    SupervisorEvent::RestartFailed { .. } | SupervisorEvent::Restarted { .. }
                )
            })
            .await
        {
            SupervisorEvent::RestartFailed { child, .. } => {
                assert_eq!(child, "flaky");
                failures += 1;
            }
            SupervisorEvent::Restarted { children, .. } => {
                assert_eq!(children, ["flaky"]);
                break;
            }
            _ => unreachable!(),
        }
    }
    assert_eq!(
        failures, 2,
        "two failed attempts before the third succeeded"
    );
    assert_eq!(starts.load(Ordering::SeqCst), 4);
    sup.shutdown().await;

    // With a lower intensity the same flakiness escalates.
    let starts = Arc::new(AtomicU32::new(0));
    let (tx, mut ev) = events();
    let spec_child = {
        let (log, starts) = (log.clone(), starts.clone());
        ChildSpec::worker("flaky", move |sup| {
            let n = starts.fetch_add(1, Ordering::SeqCst);
            let a = WorkerArgs {
                fail_start: n >= 1,
                ..args("flaky", &log)
            };
            spawn_worker(a, sup)
        })
    };
    let s = SupervisorSpec::new("s2", Strategy::OneForOne)
        .intensity(2, Duration::from_secs(60))
        .events(tx)
        .child(spec_child);
    let (sup, handle) = Supervisor::start(s).await.unwrap();
    tell(&child(&sup, "flaky").await, WorkerMsg::Panic);
    ev.escalated("s2").await;
    tokio::time::timeout(WAIT, handle).await.unwrap().unwrap();
}

// ---- runtime API ----------------------------------------------------------------------------

#[tokio::test]
async fn start_child_adds_a_child_at_the_end_and_rejects_duplicates() {
    let log = Log::default();
    let (sup, _) = Supervisor::start(spec("s", Strategy::OneForOne, &log, &["a"]))
        .await
        .unwrap();
    let cell = sup.start_child(worker("b", &log)).await.unwrap();
    let got: String =
        ractor::call!(ractor::ActorRef::<WorkerMsg>::from(cell), WorkerMsg::Ping).unwrap();
    assert_eq!(got, "b");
    assert!(
        matches!(sup.start_child(worker("b", &log)).await, Err(SupervisorError::AlreadyStarted(id)) if id == "b")
    );
    sup.terminate_child("b").await.unwrap();
    assert!(
        matches!(sup.start_child(worker("b", &log)).await, Err(SupervisorError::AlreadyPresent(id)) if id == "b")
    );
    let bad = WorkerArgs {
        fail_start: true,
        ..args("c", &log)
    };
    assert!(
        matches!(sup.start_child(worker_with(bad)).await, Err(SupervisorError::ChildStartFailed { child, .. }) if child == "c")
    );
    let names: Vec<_> = ids(&sup).await.into_iter().map(|c| c.0).collect();
    assert_eq!(
        names,
        ["a", "b"],
        "a child that failed to start is not added"
    );
    sup.shutdown().await;
}

#[tokio::test]
async fn terminate_child_stops_it_without_restart_and_keeps_the_spec() {
    let log = Log::default();
    let (sup, _) = Supervisor::start(spec("s", Strategy::OneForAll, &log, &["a", "b"]))
        .await
        .unwrap();
    let before = ids(&sup).await;
    sup.terminate_child("b").await.unwrap();
    let after = ids(&sup).await;
    assert_eq!(after[0].1, before[0].1, "no sibling restarted");
    assert_eq!(after[1].1, None);
    assert!(matches!(
        sup.terminate_child("zzz").await,
        Err(SupervisorError::NotFound(_))
    ));
    sup.shutdown().await;
}

#[tokio::test]
async fn restart_child_starts_a_terminated_child_and_refuses_a_running_one() {
    let log = Log::default();
    let (sup, _) = Supervisor::start(spec("s", Strategy::OneForOne, &log, &["a"]))
        .await
        .unwrap();
    assert!(matches!(
        sup.restart_child("a").await,
        Err(SupervisorError::Running(_))
    ));
    sup.terminate_child("a").await.unwrap();
    sup.restart_child("a").await.unwrap();
    assert_eq!(sup.count_children().await.unwrap().active, 1);
    assert!(matches!(
        sup.restart_child("nope").await,
        Err(SupervisorError::NotFound(_))
    ));
    sup.shutdown().await;
}

#[tokio::test]
async fn delete_child_removes_a_stopped_spec_only() {
    let log = Log::default();
    let (sup, _) = Supervisor::start(spec("s", Strategy::OneForOne, &log, &["a", "b"]))
        .await
        .unwrap();
    assert!(matches!(
        sup.delete_child("a").await,
        Err(SupervisorError::Running(_))
    ));
    sup.terminate_child("a").await.unwrap();
    sup.delete_child("a").await.unwrap();
    assert!(matches!(
        sup.delete_child("a").await,
        Err(SupervisorError::NotFound(_))
    ));
    let names: Vec<_> = ids(&sup).await.into_iter().map(|c| c.0).collect();
    assert_eq!(names, ["b"]);
    sup.shutdown().await;
}

#[tokio::test]
async fn which_children_and_count_children_report_kinds_and_states() {
    let log = Log::default();
    let s = spec("s", Strategy::OneForOne, &log, &["a", "b"]).child(ChildSpec::supervisor(
        "sub",
        spec("sub", Strategy::OneForOne, &log, &["x"]),
    ));
    let (sup, _) = Supervisor::start(s).await.unwrap();
    sup.terminate_child("b").await.unwrap();
    let counts = sup.count_children().await.unwrap();
    assert_eq!(
        (
            counts.specs,
            counts.active,
            counts.supervisors,
            counts.workers
        ),
        (3, 2, 1, 2)
    );
    let which = sup.which_children().await.unwrap();
    assert_eq!(
        which.iter().map(|c| c.kind).collect::<Vec<_>>(),
        [ChildKind::Worker, ChildKind::Worker, ChildKind::Supervisor]
    );
    assert!(which[1].actor.is_none());
    sup.shutdown().await;
}

#[tokio::test]
async fn tree_snapshot_shows_ids_kinds_actors_and_restart_counts() {
    let log = Log::default();
    let (tx, mut ev) = events();
    let sub = spec("sub", Strategy::OneForOne, &log, &["x", "y"]).events(tx);
    let s = spec("top", Strategy::OneForOne, &log, &["a"]).child(ChildSpec::supervisor("sub", sub));
    let (sup, _) = Supervisor::start(s).await.unwrap();
    let sub_ref = erlmcp_supervisors::SupervisorRef::from_actor(child(&sup, "sub").await.into());
    tell(&child(&sub_ref, "y").await, WorkerMsg::Panic);
    ev.restarted("sub").await;
    let snap = sup.snapshot().await.unwrap();
    assert_eq!(snap.id, "top");
    assert_eq!(snap.children.len(), 2);
    assert_eq!(snap.children[1].kind, ChildKind::Supervisor);
    let sub_snap = &snap.children[1];
    assert_eq!(
        sub_snap
            .children
            .iter()
            .map(|c| (c.id.as_str(), c.restarts))
            .collect::<Vec<_>>(),
        [("x", 0), ("y", 1)]
    );
    assert!(sub_snap.children.iter().all(|c| c.actor_id.is_some()));
    let json = serde_json::to_string(&snap).unwrap();
    assert!(json.contains("\"kind\":\"supervisor\""));
    sup.shutdown().await;
}

#[tokio::test]
async fn static_supervisor_refuses_dynamic_start() {
    let log = Log::default();
    let (sup, _) = Supervisor::start(spec("s", Strategy::OneForOne, &log, &[]))
        .await
        .unwrap();
    let r: Result<_, SupervisorError> = ractor::call!(
        sup.actor(),
        erlmcp_supervisors::SupervisorMsg::StartDynamic,
        Box::new(1u32)
    )
    .unwrap();
    assert!(matches!(r, Err(SupervisorError::NotSupported(_))));
    sup.shutdown().await;
}

#[tokio::test]
async fn metrics_count_starts_exits_and_restarts() {
    let log = Log::default();
    let (tx, mut ev) = events();
    let m = SupervisorMetrics::new();
    let (sup, _) = Supervisor::start(
        spec("s", Strategy::OneForOne, &log, &["a", "b"])
            .metrics(m.clone())
            .events(tx),
    )
    .await
    .unwrap();
    tell(&child(&sup, "a").await, WorkerMsg::Panic);
    ev.restarted("s").await;
    let s = m.snapshot();
    assert_eq!(
        (s.starts, s.restarts, s.exits_abnormal, s.running_children),
        (3, 1, 1, 2)
    );
    sup.shutdown().await;
    let s = m.snapshot();
    assert_eq!((s.exits_normal, s.running_children), (2, 0));
}

// ---- resources of a dead child --------------------------------------------------------------

/// A worker whose state owns a listening socket on a fixed port.
struct PortHolder;

impl ractor::Actor for PortHolder {
    type Msg = ();
    type State = std::net::TcpListener;
    type Arguments = u16;

    async fn pre_start(
        &self,
        _: ractor::ActorRef<()>,
        port: u16,
    ) -> Result<Self::State, ractor::ActorProcessingErr> {
        Ok(std::net::TcpListener::bind(("127.0.0.1", port))?)
    }
}

#[tokio::test]
async fn a_killed_childs_state_is_dropped_before_its_replacement_starts() {
    // The replacement binds the same port: it can only if the dead child's state (which ractor
    // hands to the supervisor with the exit event) is gone first. Before the fix, the first
    // restart failed with "address in use".
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let (tx, mut ev) = events();
    let holder = ChildSpec::worker("holder", move |sup: ractor::ActorCell| async move {
        let (r, _) = ractor::Actor::spawn_linked(None, PortHolder, port, sup).await?;
        Ok(r.get_cell())
    });
    let spec = SupervisorSpec::new("s", Strategy::OneForOne)
        .intensity(10, Duration::from_secs(10))
        .child(holder)
        .events(tx);
    let (sup, _) = Supervisor::start(spec).await.unwrap();
    child(&sup, "holder").await.kill();
    let first = ev
        .wait_for("restart or failed restart", |e| {
            matches!(
                e,
                SupervisorEvent::Restarted { .. } | SupervisorEvent::RestartFailed { .. }
            )
        })
        .await;
    assert!(
        matches!(first, SupervisorEvent::Restarted { .. }),
        "the first restart succeeded: {first:?}"
    );
    sup.shutdown().await;
}
