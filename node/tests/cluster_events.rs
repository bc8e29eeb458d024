//! The cluster side as a library: an in-process `Cluster` (this test process is a node) joined by
//! an `erlmcp node` process. Subscribers get node-up and node-down events; a peer's agent answers
//! remote calls.

mod common;

use std::time::Duration;

use common::*;
use erlmcp_actors::cluster::{AgentMsg, Cluster, ClusterConfig, DEFAULT_MAX_FRAME_BYTES};
use erlmcp_net::cluster::{TransportTuning, cluster_transport};
use erlmcp_net::pki::NodeIdentity;
use erlmcp_net::tls;
use erlmcp_runtime::cluster::membership::{MemberEvent, MemberState};
use erlmcp_supervisors::Supervisor;
use tokio::sync::broadcast;

async fn next_event(
    rx: &mut broadcast::Receiver<MemberEvent>,
    name: &str,
    to: MemberState,
) -> MemberEvent {
    tokio::time::timeout(WAIT, async {
        loop {
            match rx.recv().await {
                Ok(e) if e.name == name && e.to == to => return e,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(e) => panic!("event stream ended: {e}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {name} → {to:?} event"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_see_a_peer_come_up_and_go_down_and_its_agent_answers_calls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let id = NodeIdentity::dev("erlmcp-dev-cookie", "host").unwrap();
    let tuning = TransportTuning::default();
    let transport = cluster_transport(tuning).unwrap();
    let cluster = Cluster::new(ClusterConfig {
        name: "host".into(),
        bind: "127.0.0.1:0".into(),
        advertise: None,
        seeds: vec![],
        cookie: "erlmcp-dev-cookie".into(),
        server_config: tls::cluster_server_config(&id, transport.clone()).unwrap(),
        client_config: tls::cluster_client_config(&id, transport).unwrap(),
        tuning,
        max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
        forget_left_after: erlmcp_runtime::cluster::membership::DEFAULT_FORGET_LEFT_AFTER,
    });
    let mut events = cluster.subscribe();
    let (sup, _handle) = Supervisor::start(cluster.spec()).await.unwrap();
    let at = cluster.local_addr().expect("bound").to_string();

    let peer = tokio::task::spawn_blocking(move || {
        NodeProc::start_with(None, &["--name", "peer"], &["--join", &at], "info")
    })
    .await
    .unwrap();
    let up = next_event(&mut events, "peer", MemberState::Up).await;
    assert_eq!(up.from, Some(MemberState::Down), "{up:?}");

    let agent = cluster.agent_of("peer").await.expect("peer's agent");
    for x in [1u64, 42, u64::MAX] {
        let back = agent
            .call(|r| AgentMsg::Ping(x, r), Some(Duration::from_secs(5)))
            .await
            .expect("remote call")
            .success_or(())
            .unwrap_or_else(|_| panic!("ping {x} answered"));
        assert_eq!(back, x);
    }
    let snap = cluster.snapshot().await.expect("view");
    assert_eq!(snap.node, "host");
    assert!(
        snap.members
            .iter()
            .any(|m| m.name == "peer" && m.state == MemberState::Up),
        "{snap:?}"
    );

    let mut peer = peer;
    peer.signal("-KILL");
    tokio::task::spawn_blocking(move || peer.wait_exit())
        .await
        .unwrap();
    let down = next_event(&mut events, "peer", MemberState::Down).await;
    assert!(down.from.is_some_and(|s| s.is_connected()), "{down:?}");
    assert!(
        cluster.agent_of("peer").await.is_none(),
        "no agent once down"
    );
    sup.shutdown().await;
}
