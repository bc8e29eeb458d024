//! `ClusterAgent`: the one remote-addressable actor of a node's cluster side. Peers find it in
//! the process group [`AGENT_GROUP`] and send it gossip (bincode bytes, decoded by Membership so
//! a malformed payload is an error there, not a panic in ractor_cluster), leave notices and
//! pings. It holds no state of its own beyond a cast counter used by the benchmark.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorClusterMessage;

use super::membership::MembershipMsg;
use super::{Shared, lock};

/// Process group every node's agent joins.
pub const AGENT_GROUP: &str = "erlmcp.cluster.agent";

/// What peers send an agent.
#[derive(RactorClusterMessage)]
pub enum AgentMsg {
    /// A peer's member list ([`erlmcp_runtime::cluster::wire::Gossip`], bincode).
    Gossip(Vec<u8>),
    /// A peer is leaving; answered once Membership has it, so the peer can close right after.
    #[rpc]
    Leave(Vec<u8>, RpcReplyPort<bool>),
    /// Round trip: answers its argument.
    #[rpc]
    Ping(u64, RpcReplyPort<u64>),
    /// Counts one message (remote cast throughput).
    Count(u64),
    /// How many `Count`s arrived so far.
    #[rpc]
    Counted(u64, RpcReplyPort<u64>),
    /// A consensus RPC of the metadata cluster (JSON), answered by this node's metadata member.
    #[rpc]
    Raft(Vec<u8>, RpcReplyPort<Vec<u8>>),
}

/// The agent actor.
pub struct ClusterAgent;

/// The agent's state.
pub struct AgentState {
    membership: ActorRef<MembershipMsg>,
    shared: Arc<Shared>,
    counted: u64,
}

impl Actor for ClusterAgent {
    type Msg = AgentMsg;
    type State = AgentState;
    type Arguments = (ActorRef<MembershipMsg>, Arc<Shared>);

    async fn pre_start(
        &self,
        myself: ActorRef<AgentMsg>,
        (membership, shared): (ActorRef<MembershipMsg>, Arc<Shared>),
    ) -> Result<AgentState, ActorProcessingErr> {
        ractor::pg::join(AGENT_GROUP.to_string(), vec![myself.get_cell()]);
        Ok(AgentState {
            membership,
            shared,
            counted: 0,
        })
    }

    async fn post_stop(
        &self,
        myself: ActorRef<AgentMsg>,
        _: &mut AgentState,
    ) -> Result<(), ActorProcessingErr> {
        ractor::pg::leave(AGENT_GROUP.to_string(), vec![myself.get_cell()]);
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<AgentMsg>,
        msg: AgentMsg,
        s: &mut AgentState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            AgentMsg::Gossip(bytes) => {
                let _ = s.membership.cast(MembershipMsg::Gossip(bytes));
            }
            AgentMsg::Leave(bytes, reply) => {
                let _ = s.membership.cast(MembershipMsg::Gossip(bytes));
                let _ = reply.send(true);
            }
            AgentMsg::Ping(x, reply) => {
                let _ = reply.send(x);
            }
            AgentMsg::Count(_) => s.counted += 1,
            AgentMsg::Counted(_, reply) => {
                let _ = reply.send(s.counted);
            }
            AgentMsg::Raft(bytes, reply) => {
                // Consensus calls can wait (an append waits for the log): never on this actor.
                let handler = lock(&s.shared.raft_handler).clone();
                tokio::spawn(async move {
                    let answer = match handler {
                        Some(h) => h(bytes).await,
                        None => Vec::new(),
                    };
                    let _ = reply.send(answer);
                });
            }
        }
        Ok(())
    }
}

/// The agent running on the peer that ractor_cluster calls `node_id` (a remote stand-in).
pub fn agent_on(node_id: u64) -> Option<ActorRef<AgentMsg>> {
    ractor::pg::get_members(&AGENT_GROUP.to_string())
        .into_iter()
        .find(|c| !c.get_id().is_local() && c.get_id().node() == node_id)
        .map(ActorRef::from)
}
