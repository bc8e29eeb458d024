//! What every session of a node shares: the server (catalog, identity, settings), the store,
//! the limits.

use std::sync::{Arc, RwLock};

use erlmcp_runtime::config::EngineConfig;
use erlmcp_runtime::registry::Registry;
use erlmcp_runtime::server::{Server, ServerInfo, ServerOptions};
use erlmcp_runtime::store::SessionStore;
use ractor::ActorRef;

use crate::shard::ShardMsg;

/// Shared by all sessions of a node (one `Arc`; the catalog is never copied).
pub struct NodeEnv {
    /// What the node serves and how.
    pub server: Arc<Server>,
    /// Committed session states. Outlives shard restarts.
    pub store: SessionStore,
    /// Limits and timeouts.
    pub config: EngineConfig,
}

impl NodeEnv {
    /// The environment of node `node` serving `registry` as erlmcp, with `config`'s limits and
    /// an empty store.
    pub fn new(registry: Registry, node: &str, config: EngineConfig) -> Self {
        let options = ServerOptions {
            limits: config.state_limits(),
            ..ServerOptions::default()
        };
        Self {
            server: Arc::new(Server::new(
                Arc::new(registry),
                ServerInfo::default(),
                Arc::from(node),
                options,
            )),
            store: SessionStore::new(),
            config,
        }
    }
}

/// Where the current instance of a restartable actor is: a restarted actor has a new ref, so
/// holders look it up here instead of keeping one.
pub struct Directory<T>(Arc<RwLock<Option<T>>>);

impl<T> Clone for Directory<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> Default for Directory<T> {
    fn default() -> Self {
        Self(Arc::new(RwLock::new(None)))
    }
}

impl<T: Clone> Directory<T> {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }
    /// The current instance, if one is running.
    pub fn get(&self) -> Option<T> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
    /// Publishes (or clears) the current instance.
    pub fn set(&self, r: Option<T>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = r;
    }
}

/// Where the current Shard is.
pub type ShardDirectory = Directory<ActorRef<ShardMsg>>;
