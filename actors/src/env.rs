//! What every session of a node shares: the catalog, server identity, store, limits.

use std::sync::{Arc, RwLock};

use erlmcp_runtime::config::EngineConfig;
use erlmcp_runtime::engine::ServerInfo;
use erlmcp_runtime::registry::Registry;
use erlmcp_runtime::store::SessionStore;
use ractor::ActorRef;

use crate::shard::ShardMsg;

/// Shared by all sessions of a node (one `Arc`; the catalog is never copied per session).
pub struct NodeEnv {
    /// Tools, resources, prompts.
    pub registry: Arc<Registry>,
    /// Name and version for `initialize`.
    pub info: ServerInfo,
    /// This node's name.
    pub node: Arc<str>,
    /// Committed session states. Outlives shard restarts.
    pub store: SessionStore,
    /// Limits and timeouts.
    pub config: EngineConfig,
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
