//! The server-wide change bus and `subscriptions/listen` streams (revision 2026-07-28) as plain
//! data.
//!
//! A [`ChangeBus`] carries [`Change`]s of what a node serves (its tool, prompt and resource lists,
//! and updates of single resources). Every [`Registry`](crate::registry::Registry) owns one, so
//! whatever changes the catalog (an admin call, a tool such as the conformance pack's
//! `test_trigger_tool_change`) publishes there, and every transport that wants to tell clients
//! subscribes there.
//!
//! A [`Listen`] is one `subscriptions/listen` request: its subscription id (the request's JSON-RPC
//! id), the [`SubscriptionFilter`] the server honours, and a bus receiver taken when the request
//! was accepted (so no change published after the acknowledgement is missed). Reading it yields
//! the encoded JSON-RPC messages of the stream in order: the
//! `notifications/subscriptions/acknowledged` first, then one notification per matching change,
//! each tagged with `_meta["io.modelcontextprotocol/subscriptionId"]`, and, if the server shuts
//! the bus down, the graceful-closure response. See `basic/patterns/subscriptions.mdx`.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use crate::jsonrpc::{self, Id};
use crate::protocol::method;

/// `_meta` key that tags every message of a listen stream with its subscription.
pub const META_SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";
/// Method of the acknowledgement that opens a listen stream.
pub const SUBSCRIPTIONS_ACKNOWLEDGED: &str = "notifications/subscriptions/acknowledged";

/// Something a node serves changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The tool list changed (`notifications/tools/list_changed`).
    ToolsListChanged,
    /// The prompt list changed (`notifications/prompts/list_changed`).
    PromptsListChanged,
    /// The resource list changed (`notifications/resources/list_changed`).
    ResourcesListChanged,
    /// One resource's content changed (`notifications/resources/updated`).
    ResourceUpdated(String),
    /// The server is shutting down: listen streams end gracefully.
    Shutdown,
}

/// Default number of changes a slow subscriber may fall behind before it is told "everything
/// you asked for may have changed" (see [`Listen::next`]).
pub const DEFAULT_BUS_CAPACITY: usize = 256;

/// A server-wide broadcast of [`Change`]s. Cheap to clone; clones share the channel.
#[derive(Clone)]
pub struct ChangeBus {
    tx: broadcast::Sender<Change>,
}

impl std::fmt::Debug for ChangeBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeBus")
            .field("subscribers", &self.tx.receiver_count())
            .finish()
    }
}

impl Default for ChangeBus {
    fn default() -> Self {
        Self::new(DEFAULT_BUS_CAPACITY)
    }
}

impl ChangeBus {
    /// A bus whose subscribers may lag `capacity` changes behind.
    pub fn new(capacity: usize) -> Self {
        Self {
            tx: broadcast::channel(capacity.max(1)).0,
        }
    }
    /// Publishes a change to every current subscriber; returns how many there were.
    pub fn publish(&self, change: Change) -> usize {
        self.tx.send(change).unwrap_or(0)
    }
    /// A receiver of every change published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.tx.subscribe()
    }
    /// Ends every listen stream gracefully (call on node shutdown).
    pub fn shutdown(&self) {
        self.publish(Change::Shutdown);
    }
    /// Current number of subscribers.
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// What a `subscriptions/listen` request opts in to (`params.notifications`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionFilter {
    /// `notifications/tools/list_changed`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub tools_list_changed: bool,
    /// `notifications/prompts/list_changed`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub prompts_list_changed: bool,
    /// `notifications/resources/list_changed`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub resources_list_changed: bool,
    /// `notifications/resources/updated` for these URIs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_subscriptions: Option<Vec<String>>,
}

impl SubscriptionFilter {
    /// Whether a change passes the filter (a [`Change::Shutdown`] never does: it ends the stream).
    pub fn wants(&self, change: &Change) -> bool {
        match change {
            Change::ToolsListChanged => self.tools_list_changed,
            Change::PromptsListChanged => self.prompts_list_changed,
            Change::ResourcesListChanged => self.resources_list_changed,
            Change::ResourceUpdated(uri) => self
                .resource_subscriptions
                .as_ref()
                .is_some_and(|uris| uris.iter().any(|u| u == uri)),
            Change::Shutdown => false,
        }
    }

    /// Every change this filter would pass, as if all of them happened (what a subscriber that
    /// fell behind is told).
    pub fn everything(&self) -> Vec<Change> {
        let mut out = Vec::new();
        if self.tools_list_changed {
            out.push(Change::ToolsListChanged);
        }
        if self.prompts_list_changed {
            out.push(Change::PromptsListChanged);
        }
        if self.resources_list_changed {
            out.push(Change::ResourcesListChanged);
        }
        for uri in self.resource_subscriptions.iter().flatten() {
            out.push(Change::ResourceUpdated(uri.clone()));
        }
        out
    }
}

/// The encoded notification for `change` on the stream of subscription `subscription_id`
/// (`None` for [`Change::Shutdown`]).
pub fn notification_for(change: &Change, subscription_id: &Id) -> Option<String> {
    let mut params = Map::new();
    params.insert(
        "_meta".into(),
        json!({ META_SUBSCRIPTION_ID: subscription_id }),
    );
    let m = match change {
        Change::ToolsListChanged => method::TOOLS_LIST_CHANGED,
        Change::PromptsListChanged => method::PROMPTS_LIST_CHANGED,
        Change::ResourcesListChanged => method::RESOURCES_LIST_CHANGED,
        Change::ResourceUpdated(uri) => {
            params.insert("uri".into(), json!(uri));
            method::RESOURCES_UPDATED
        }
        Change::Shutdown => return None,
    };
    Some(jsonrpc::encode_notification(
        m,
        Some(&Value::Object(params)),
    ))
}

/// One open `subscriptions/listen` stream. Read it with [`Listen::next`] (or
/// [`Listen::into_stream`]); drop it when the client goes away.
#[derive(Debug)]
pub struct Listen {
    id: Id,
    filter: SubscriptionFilter,
    rx: broadcast::Receiver<Change>,
    queue: VecDeque<String>,
    ended: bool,
}

impl Listen {
    /// A stream for listen request `id` honouring `filter`, reading changes from `rx` (take it
    /// from [`ChangeBus::subscribe`] before acknowledging, so nothing is missed).
    pub fn new(id: Id, filter: SubscriptionFilter, rx: broadcast::Receiver<Change>) -> Self {
        let mut listen = Self {
            id,
            filter,
            rx,
            queue: VecDeque::new(),
            ended: false,
        };
        let ack = listen.acknowledgement();
        listen.queue.push_back(ack);
        listen
    }

    /// The subscription id (the listen request's JSON-RPC id, same JSON type).
    pub fn subscription_id(&self) -> &Id {
        &self.id
    }

    /// The filter the server honours (what the acknowledgement lists).
    pub fn filter(&self) -> &SubscriptionFilter {
        &self.filter
    }

    /// The encoded `notifications/subscriptions/acknowledged` that opens the stream.
    pub fn acknowledgement(&self) -> String {
        let params = json!({
            "_meta": { META_SUBSCRIPTION_ID: self.id },
            "notifications": self.filter,
        });
        jsonrpc::encode_notification(SUBSCRIPTIONS_ACKNOWLEDGED, Some(&params))
    }

    /// The encoded response that ends the subscription gracefully.
    pub fn closing_response(&self) -> String {
        jsonrpc::encode_result(
            &self.id,
            &json!({ "resultType": "complete", "_meta": { META_SUBSCRIPTION_ID: self.id } }),
        )
    }

    /// The next message of the stream: the acknowledgement first, then matching changes as they
    /// are published. A subscriber that fell behind the bus gets one notification for everything
    /// its filter covers (list-changed and resource-updated notifications are invalidations, so
    /// this loses nothing). When the bus shuts down it yields the closing response, then `None`.
    pub async fn next(&mut self) -> Option<String> {
        loop {
            if let Some(m) = self.queue.pop_front() {
                return Some(m);
            }
            if self.ended {
                return None;
            }
            match self.rx.recv().await {
                Ok(Change::Shutdown) | Err(broadcast::error::RecvError::Closed) => {
                    self.ended = true;
                    return Some(self.closing_response());
                }
                Ok(change) => {
                    if self.filter.wants(&change)
                        && let Some(m) = notification_for(&change, &self.id)
                    {
                        return Some(m);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let everything = self.filter.everything();
                    self.queue.extend(
                        everything
                            .iter()
                            .filter_map(|c| notification_for(c, &self.id)),
                    );
                }
            }
        }
    }

    /// Whether the stream has yielded its closing response (the last message).
    pub fn is_closed(&self) -> bool {
        self.ended && self.queue.is_empty()
    }

    /// The stream as a `futures::Stream` of encoded messages.
    pub fn into_stream(self) -> impl futures::Stream<Item = String> + Send + 'static {
        futures::stream::unfold(self, |mut l| async move { l.next().await.map(|m| (m, l)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(m: &str) -> Value {
        serde_json::from_str(m).unwrap()
    }

    #[tokio::test]
    async fn listen_acknowledges_first_then_sends_only_what_the_filter_asks_for() {
        let bus = ChangeBus::default();
        let filter = SubscriptionFilter {
            tools_list_changed: true,
            resource_subscriptions: Some(vec!["test://a".into()]),
            ..Default::default()
        };
        let mut l = Listen::new(Id::Num(7), filter, bus.subscribe());
        bus.publish(Change::PromptsListChanged);
        bus.publish(Change::ResourceUpdated("test://b".into()));
        bus.publish(Change::ToolsListChanged);
        bus.publish(Change::ResourceUpdated("test://a".into()));

        let ack = parse(&l.next().await.unwrap());
        assert_eq!(ack["method"], SUBSCRIPTIONS_ACKNOWLEDGED);
        assert_eq!(ack["params"]["_meta"][META_SUBSCRIPTION_ID], 7);
        assert_eq!(
            ack["params"]["notifications"],
            json!({"toolsListChanged": true, "resourceSubscriptions": ["test://a"]})
        );
        let n = parse(&l.next().await.unwrap());
        assert_eq!(n["method"], "notifications/tools/list_changed");
        assert_eq!(n["params"]["_meta"][META_SUBSCRIPTION_ID], 7);
        let n = parse(&l.next().await.unwrap());
        assert_eq!(n["method"], "notifications/resources/updated");
        assert_eq!(n["params"]["uri"], "test://a");
        assert_eq!(n["params"]["_meta"][META_SUBSCRIPTION_ID], 7);
    }

    #[tokio::test]
    async fn shutdown_ends_the_stream_with_the_graceful_response() {
        let bus = ChangeBus::default();
        let mut l = Listen::new(
            Id::Str("s-1".into()),
            SubscriptionFilter::default(),
            bus.subscribe(),
        );
        bus.shutdown();
        l.next().await.unwrap();
        let end = parse(&l.next().await.unwrap());
        assert_eq!(end["id"], "s-1");
        assert_eq!(
            end["result"],
            json!({"resultType": "complete", "_meta": {META_SUBSCRIPTION_ID: "s-1"}})
        );
        assert_eq!(l.next().await, None);
    }

    #[tokio::test]
    async fn a_lagging_subscriber_is_told_everything_it_asked_for_once() {
        let bus = ChangeBus::new(2);
        let filter = SubscriptionFilter {
            prompts_list_changed: true,
            ..Default::default()
        };
        let mut l = Listen::new(Id::Num(1), filter, bus.subscribe());
        for _ in 0..5 {
            bus.publish(Change::ToolsListChanged);
        }
        l.next().await.unwrap(); // ack
        let n = parse(&l.next().await.unwrap());
        assert_eq!(n["method"], "notifications/prompts/list_changed");
        // Publishing again may overrun it again: it is told again, then the stream ends.
        bus.shutdown();
        loop {
            let m = parse(&l.next().await.unwrap());
            if m.get("result").is_some() {
                break;
            }
            assert_eq!(m["method"], "notifications/prompts/list_changed");
        }
        assert_eq!(l.next().await, None);
    }

    #[test]
    fn filters_parse_from_listen_params_and_publish_counts_subscribers() {
        let f: SubscriptionFilter =
            serde_json::from_value(json!({"promptsListChanged": true, "toolsListChanged": false}))
                .unwrap();
        assert!(f.wants(&Change::PromptsListChanged) && !f.wants(&Change::ToolsListChanged));
        assert_eq!(
            serde_json::to_value(&f).unwrap(),
            json!({"promptsListChanged": true})
        );
        let bus = ChangeBus::default();
        assert_eq!(bus.publish(Change::ToolsListChanged), 0);
        let _rx = bus.subscribe();
        assert_eq!(bus.publish(Change::ToolsListChanged), 1);
    }
}
