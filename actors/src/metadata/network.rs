//! Consensus traffic over the QUIC mesh: every openraft RPC is one call to the target node's
//! `ClusterAgent` ([`AgentMsg::Raft`]), JSON inside (openraft's types are serde; a metadata
//! snapshot is a few tens of KB). The request names the consensus id it is for, so a restarted
//! node (a new life, a new id) never answers for its earlier life.

use std::future::Future;
use std::time::Duration;

use erlmcp_runtime::metadata::{MetadataCmd, MetadataReply, MetadataTag, node_of};
use erlmcp_runtime::placement::NodeSpec;
use openraft::alias::{SnapshotMetaOf, SnapshotOf, VoteOf};
use openraft::errors::{
    Fatal, NetworkError, RPCError, RaftError, ReplicationClosed, StreamingError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetworkFactory, v2::RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{AnyError, OptionalSend};
use serde::{Deserialize, Serialize};

use super::{MetadataConfig, Raft, TypeConfig};
use crate::cluster::{AgentMsg, Cluster};

type C = TypeConfig;

/// A consensus RPC as it crosses the mesh.
#[derive(Serialize, Deserialize)]
pub(crate) struct Request {
    /// The consensus id it is for.
    pub to: String,
    /// The call.
    pub rpc: Rpc,
}

/// The calls.
#[derive(Serialize, Deserialize)]
pub(crate) enum Rpc {
    Append(AppendEntriesRequest<C>),
    Vote(VoteRequest<C>),
    Snapshot {
        vote: VoteOf<C>,
        meta: SnapshotMetaOf<C>,
        data: Vec<u8>,
    },
    /// Which metadata cluster the node belongs to, and how it is placed (founding, merging,
    /// and the leader's registrations).
    Status,
    /// Commit a change (sent to the leader).
    Propose(MetadataCmd),
}

/// The answers.
#[derive(Serialize, Deserialize)]
pub(crate) enum Response {
    Append(Result<AppendEntriesResponse<C>, RaftError<C>>),
    Vote(Result<VoteResponse<C>, RaftError<C>>),
    Snapshot(Result<SnapshotResponse<C>, Fatal<C>>),
    Status {
        /// The node's consensus id.
        id: String,
        /// Its metadata cluster, if it belongs to one.
        tag: Option<MetadataTag>,
        /// The node as placement sees it.
        spec: NodeSpec,
        /// Started with `--voter`.
        voter: bool,
    },
    Proposed(Result<MetadataReply, String>),
    /// The node is not (or no longer) that consensus id, or has no metadata running.
    NotHere(String),
}

/// The answer of a node whose metadata member is not running.
pub(crate) fn not_running() -> Vec<u8> {
    serde_json::to_vec(&Response::NotHere("no metadata member runs here".into()))
        .unwrap_or_default()
}

/// Answers one request addressed to this node (`raft` runs as consensus id `me`).
pub(crate) async fn serve(
    raft: &Raft,
    me: &str,
    tag: Option<MetadataTag>,
    cfg: &MetadataConfig,
    bytes: &[u8],
) -> Vec<u8> {
    let response = match serde_json::from_slice::<Request>(bytes) {
        Err(e) => Response::NotHere(format!("malformed consensus request: {e}")),
        Ok(Request {
            rpc: Rpc::Status, ..
        }) => Response::Status {
            id: me.to_string(),
            tag,
            spec: cfg.spec.clone(),
            voter: cfg.voter,
        },
        Ok(Request {
            rpc: Rpc::Propose(cmd),
            ..
        }) => Response::Proposed(
            raft.client_write(cmd)
                .await
                .map(|r| r.data)
                .map_err(|e| e.to_string()),
        ),
        Ok(req) if req.to != me => {
            Response::NotHere(format!("this is {me}, not {} (the node restarted)", req.to))
        }
        Ok(Request { rpc, .. }) => match rpc {
            Rpc::Append(r) => Response::Append(raft.append_entries(r).await),
            Rpc::Vote(r) => Response::Vote(raft.vote(r).await),
            Rpc::Snapshot { vote, meta, data } => Response::Snapshot(
                raft.install_full_snapshot(
                    vote,
                    SnapshotOf::<C, Vec<u8>> {
                        meta,
                        snapshot: data,
                    },
                )
                .await,
            ),
            Rpc::Status | Rpc::Propose(_) => Response::NotHere("answered above".into()),
        },
    };
    serde_json::to_vec(&response).unwrap_or_default()
}

/// Sends `rpc` to consensus id `to` through its node's agent, within `timeout`.
pub(crate) async fn call(
    cluster: &Cluster,
    to: &str,
    rpc: Rpc,
    timeout: Duration,
) -> Result<Response, String> {
    let agent = cluster
        .agent_of(node_of(to))
        .await
        .ok_or_else(|| format!("{} is not connected", node_of(to)))?;
    let bytes = serde_json::to_vec(&Request {
        to: to.to_string(),
        rpc,
    })
    .map_err(|e| e.to_string())?;
    let answer = agent
        .call(|reply| AgentMsg::Raft(bytes, reply), Some(timeout))
        .await
        .map_err(|e| e.to_string())?;
    match answer {
        // A node without a metadata member (e.g. a benchmark peer) answers nothing.
        ractor::rpc::CallResult::Success(bytes) if bytes.is_empty() => Ok(Response::NotHere(
            format!("{} runs no metadata member", node_of(to)),
        )),
        ractor::rpc::CallResult::Success(bytes) => {
            serde_json::from_slice(&bytes).map_err(|e| format!("malformed consensus answer: {e}"))
        }
        ractor::rpc::CallResult::Timeout => Err(format!("no answer within {timeout:?}")),
        ractor::rpc::CallResult::SenderError => Err("the peer dropped the call".into()),
    }
}

/// Makes a [`Peer`] per target.
pub struct Network {
    pub(crate) cluster: Cluster,
}

impl RaftNetworkFactory<C> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: String, _node: &super::Member) -> Peer {
        Peer {
            cluster: self.cluster.clone(),
            target,
        }
    }
}

/// The connection to one consensus peer.
pub struct Peer {
    cluster: Cluster,
    target: String,
}

fn unreachable(e: impl Into<String>) -> Unreachable<C> {
    Unreachable::new(&AnyError::error(e.into()))
}

impl Peer {
    async fn rpc(&self, rpc: Rpc, option: &RPCOption) -> Result<Response, Unreachable<C>> {
        match call(&self.cluster, &self.target, rpc, option.hard_ttl()).await {
            Ok(Response::NotHere(why)) => Err(unreachable(why)),
            Ok(r) => Ok(r),
            Err(e) => Err(unreachable(e)),
        }
    }
}

fn unexpected<E>() -> RPCError<C, E>
where
    E: std::error::Error,
{
    RPCError::Network(NetworkError::from_string(
        "unexpected consensus answer".to_string(),
    ))
}

impl RaftNetworkV2<C> for Peer {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        req: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<C>, RPCError<C>> {
        match self.rpc(Rpc::Append(req), &option).await? {
            Response::Append(r) => r.map_err(|e| RPCError::Unreachable(Unreachable::new(&e))),
            _ => Err(unexpected()),
        }
    }

    async fn vote(
        &mut self,
        req: VoteRequest<C>,
        option: RPCOption,
    ) -> Result<VoteResponse<C>, RPCError<C>> {
        match self.rpc(Rpc::Vote(req), &option).await? {
            Response::Vote(r) => r.map_err(|e| RPCError::Unreachable(Unreachable::new(&e))),
            _ => Err(unexpected()),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<C>,
        snapshot: SnapshotOf<C, Vec<u8>>,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<C>, StreamingError<C>> {
        let rpc = Rpc::Snapshot {
            vote,
            meta: snapshot.meta,
            data: snapshot.snapshot,
        };
        let send = self.rpc(rpc, &option);
        tokio::pin!(cancel);
        tokio::select! {
            closed = &mut cancel => Err(StreamingError::Closed(closed)),
            r = send => match r? {
                Response::Snapshot(Ok(r)) => Ok(r),
                Response::Snapshot(Err(fatal)) => Err(StreamingError::Unreachable(unreachable(
                    format!("the peer failed installing the snapshot: {fatal}"),
                ))),
                _ => Err(StreamingError::Network(NetworkError::from_string(
                    "unexpected consensus answer".to_string(),
                ))),
            },
        }
    }
}
