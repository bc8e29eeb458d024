//! An MCP client over any of the node's three transports, reduced to what the workload needs:
//! open a session, re-attach to one, call a tool; and every failure classified as *definite*
//! (the request was certainly not applied) or *indeterminate* (it may have been).
//!
//! Sessions per transport:
//!
//! - **TCP** and **QUIC** (one bidirectional stream per session): NDJSON. `initialize` returns
//!   the session id in `result._meta["io.erlmcp/session"]`; `initialize` with
//!   `params._meta["io.erlmcp/resume"] = ID` on a new connection re-attaches to the session, or
//!   answers -32602 when the node does not know it.
//! - **HTTP** (Streamable HTTP, 2025-11-25): the session is the `Mcp-Session-Id` header, on any
//!   connection; a node that does not know it answers 404. A resume is a `ping` carrying the id,
//!   so an unknown session shows up there and not on the first tool call.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use erlmcp_net::pki;
use erlmcp_net::tls::{self, McpTrust};
use serde_json::{Value, json};
use tokio::time::{Instant, timeout_at};

use super::http::{HttpConn, Reply};
use super::lines::{LineConn, excerpt};
use crate::history::Transport;

/// The MCP revision the client speaks.
pub const PROTOCOL_VERSION: &str = "2025-11-25";
/// `_meta` key of the session id in an `initialize` result.
pub const META_SESSION: &str = "io.erlmcp/session";
/// `_meta` key of the session id an `initialize` asks to resume.
pub const META_RESUME: &str = "io.erlmcp/resume";
/// The cookie of a node started without `--cookie`: dev-mode nodes derive their QUIC CA from it.
pub const DEV_COOKIE: &str = "erlmcp-dev-cookie";
/// The TLS server name dialled over QUIC: every node certificate carries it.
const QUIC_SERVER_NAME: &str = "localhost";
/// QUIC keep-alive: a connection the workload does not use for a while (random routing spreads
/// a client's operations over many nodes) must not be dropped by the node's idle timeout.
const QUIC_KEEP_ALIVE: Duration = Duration::from_secs(5);

/// JSON-RPC "internal error": the node may have failed *after* acting (e.g. "session
/// unavailable" when a call to the session actor fails, which may have applied the write).
const RPC_INTERNAL_ERROR: i64 = -32603;
/// JSON-RPC "request timeout": the node gave up waiting, the work may still complete.
const RPC_REQUEST_TIMEOUT: i64 = -32001;

/// Where a node's MCP listeners are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeTarget {
    /// Node name (what [`crate::history::Op::node`] records).
    pub name: String,
    /// NDJSON over TCP.
    pub tcp: Option<SocketAddr>,
    /// Streamable HTTP (`/mcp`).
    pub http: Option<SocketAddr>,
    /// MCP over QUIC (ALPN `mcp`).
    pub quic: Option<SocketAddr>,
}

impl NodeTarget {
    /// The address of `transport`, if the node serves it.
    pub fn addr(&self, transport: Transport) -> Option<SocketAddr> {
        match transport {
            Transport::Tcp => self.tcp,
            Transport::Http => self.http,
            Transport::Quic => self.quic,
        }
    }
}

/// Why a call did not return a result.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// No connection could be made (refused, unreachable, handshake failed, no address for the
    /// transport): nothing was sent. Definite.
    #[error("connect failed: {0}")]
    Connect(String),
    /// The connection was found closed before the request was written. Definite.
    #[error("not sent: {0}")]
    NotSent(String),
    /// A JSON-RPC error response. Definite, except codes -32603 (internal error) and -32001
    /// (request timeout), which a node may return after acting.
    #[error("JSON-RPC error {code}: {message}")]
    Rpc {
        /// Error code.
        code: i64,
        /// Error message.
        message: String,
    },
    /// A `tools/call` result with `isError: true` (the tool ran and reported failure). Definite.
    #[error("tool error: {0}")]
    Tool(String),
    /// A non-2xx HTTP status. Definite for 4xx (404: unknown session), 501 and 503 (refused
    /// before processing); indeterminate for other 5xx (a gateway or a crash mid-request).
    #[error("HTTP {status}: {body}")]
    Http {
        /// Status code.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// No response within the deadline, after the request was (maybe partly) sent.
    /// Indeterminate.
    #[error("no response within {0:?}")]
    Timeout(Duration),
    /// The connection broke after the request was (maybe partly) sent. Indeterminate.
    #[error("connection lost: {0}")]
    Dropped(String),
    /// A response that cannot be understood (not JSON, not the expected shape, cut short).
    /// Indeterminate.
    #[error("malformed response: {0}")]
    Malformed(String),
}

impl CallError {
    /// Whether the request was certainly not applied.
    pub fn is_definite(&self) -> bool {
        match self {
            CallError::Connect(_) | CallError::NotSent(_) | CallError::Tool(_) => true,
            CallError::Rpc { code, .. } => {
                !matches!(*code, RPC_INTERNAL_ERROR | RPC_REQUEST_TIMEOUT)
            }
            CallError::Http { status, .. } => {
                (400..500).contains(status) || matches!(*status, 501 | 503)
            }
            CallError::Timeout(_) | CallError::Dropped(_) | CallError::Malformed(_) => false,
        }
    }

    /// Whether the node answered that it does not know the session (JSON-RPC -32602 to a
    /// resume, or HTTP 404).
    pub fn is_unknown_session(&self) -> bool {
        match self {
            CallError::Rpc { code, message } => *code == -32602 && message.contains("session"),
            CallError::Http { status, .. } => *status == 404,
            _ => false,
        }
    }
}

/// Shared client-side state: the trust anchor for QUIC and the QUIC endpoints (one UDP socket
/// per address family, shared by every QUIC connection of the run). Cheap to clone.
///
/// An endpoint belongs to the Tokio runtime that created it: use a connector within one
/// runtime.
#[derive(Clone)]
pub struct Connector {
    inner: Arc<ConnectorInner>,
}

struct ConnectorInner {
    trust: Option<McpTrust>,
    v4: Mutex<Option<quinn::Endpoint>>,
    v6: Mutex<Option<quinn::Endpoint>>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("trust", &self.inner.trust)
            .finish_non_exhaustive()
    }
}

impl Connector {
    /// A connector whose QUIC connections trust `trust`; `None`: the dev-mode CA of
    /// [`DEV_COOKIE`] (nodes started without `--cookie` or certificates).
    pub fn new(trust: Option<McpTrust>) -> Self {
        Self {
            inner: Arc::new(ConnectorInner {
                trust,
                v4: Mutex::new(None),
                v6: Mutex::new(None),
            }),
        }
    }

    /// The QUIC endpoint for `addr`'s family, made on first use.
    fn endpoint(&self, addr: SocketAddr) -> Result<quinn::Endpoint, String> {
        let slot = if addr.is_ipv4() {
            &self.inner.v4
        } else {
            &self.inner.v6
        };
        let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(ep) = slot.as_ref() {
            return Ok(ep.clone());
        }
        let trust = match &self.inner.trust {
            Some(t) => t.clone(),
            None => McpTrust::Ca(vec![
                pki::dev_ca_cert(DEV_COOKIE).map_err(|e| format!("dev CA: {e}"))?,
            ]),
        };
        let mut config =
            tls::mcp_client_config(trust).map_err(|e| format!("QUIC client config: {e}"))?;
        let mut transport = quinn::TransportConfig::default();
        transport.keep_alive_interval(Some(QUIC_KEEP_ALIVE));
        config.transport_config(Arc::new(transport));
        let bind: SocketAddr = if addr.is_ipv4() {
            SocketAddr::from(([0, 0, 0, 0], 0))
        } else {
            SocketAddr::from(([0u16; 8], 0))
        };
        let mut ep =
            quinn::Endpoint::client(bind).map_err(|e| format!("QUIC endpoint on {bind}: {e}"))?;
        ep.set_default_client_config(config);
        *slot = Some(ep.clone());
        Ok(ep)
    }
}

impl Default for Connector {
    fn default() -> Self {
        Self::new(None)
    }
}

enum Conn {
    Lines(LineConn),
    Http(HttpConn),
}

/// One connection to one node on one transport, carrying (at most) one MCP session.
pub struct McpClient {
    node: String,
    transport: Transport,
    conn: Conn,
    next_id: u64,
    session: Option<String>,
}

impl std::fmt::Debug for McpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpClient")
            .field("node", &self.node)
            .field("transport", &self.transport)
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl McpClient {
    /// Connects to `node` over `transport` within `timeout` (HTTP: on the first request).
    /// Every error is [`CallError::Connect`] (definite: nothing was sent).
    pub async fn connect(
        connector: &Connector,
        node: &NodeTarget,
        transport: Transport,
        timeout: Duration,
    ) -> Result<Self, CallError> {
        let deadline = Instant::now() + timeout;
        let addr = node.addr(transport).ok_or_else(|| {
            CallError::Connect(format!(
                "node {} has no {} address",
                node.name,
                transport.as_str()
            ))
        })?;
        let fail = |what: String| CallError::Connect(format!("{} {addr}: {what}", node.name));
        let conn = match transport {
            Transport::Tcp => {
                let s = timeout_at(deadline, tokio::net::TcpStream::connect(addr))
                    .await
                    .map_err(|_| fail(format!("timed out after {timeout:?}")))?
                    .map_err(|e| fail(e.to_string()))?;
                // Without it a request line waits on delayed ACKs.
                s.set_nodelay(true).map_err(|e| fail(e.to_string()))?;
                let (r, w) = s.into_split();
                Conn::Lines(LineConn::new(r, w, None))
            }
            Transport::Quic => {
                let ep = connector.endpoint(addr).map_err(fail)?;
                let connecting = ep
                    .connect(addr, QUIC_SERVER_NAME)
                    .map_err(|e| fail(e.to_string()))?;
                let q = timeout_at(deadline, connecting)
                    .await
                    .map_err(|_| fail(format!("handshake timed out after {timeout:?}")))?
                    .map_err(|e| fail(e.to_string()))?;
                // Opening a stream is local (the node sees it with the first bytes), so it
                // only fails on a connection that is already gone.
                let (send, recv) = timeout_at(deadline, q.open_bi())
                    .await
                    .map_err(|_| fail("opening a stream timed out".into()))?
                    .map_err(|e| fail(e.to_string()))?;
                Conn::Lines(LineConn::new(recv, send, Some(q)))
            }
            // Connects on the first request (reqwest), where a refusal is a definite
            // `NotSent`: nothing is lost by not dialling here.
            Transport::Http => Conn::Http(HttpConn::new(addr, timeout).map_err(fail)?),
        };
        Ok(Self {
            node: node.name.clone(),
            transport,
            conn,
            next_id: 1,
            session: None,
        })
    }

    /// The node this client talks to.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The transport.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The session this client speaks for, once opened or resumed.
    pub fn session_id(&self) -> Option<&str> {
        self.session.as_deref()
    }

    /// Whether the connection can carry a request now (the node has not closed it, and no
    /// earlier request on it ended in doubt). Checked before each request so a stale
    /// connection is replaced before anything is sent.
    pub fn usable(&mut self) -> bool {
        match &mut self.conn {
            Conn::Lines(c) => c.usable(),
            Conn::Http(c) => c.usable(),
        }
    }

    /// Creates a new session (`initialize`, then `notifications/initialized`); returns its id.
    pub async fn open_session(&mut self, timeout: Duration) -> Result<String, CallError> {
        let deadline = Instant::now() + timeout;
        let params = json!({
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "erlmcp-chaos", "version": env!("CARGO_PKG_VERSION")},
        });
        let (msg, header) = self.request("initialize", params, deadline).await?;
        let result = rpc_result(msg)?;
        let sid = match (header, result["_meta"][META_SESSION].as_str()) {
            (Some(h), _) => h,
            (None, Some(s)) => s.to_string(),
            (None, None) => {
                return Err(CallError::Malformed(format!(
                    "initialize returned no session id: {}",
                    excerpt(&result.to_string())
                )));
            }
        };
        self.session = Some(sid.clone());
        if let Conn::Http(c) = &mut self.conn {
            c.set_session(Some(sid.clone()));
        }
        self.notify("notifications/initialized", deadline).await?;
        Ok(sid)
    }

    /// Re-attaches this (fresh) connection to session `session_id`. An unknown session is a
    /// definite error ([`CallError::is_unknown_session`]).
    pub async fn resume(&mut self, session_id: &str, timeout: Duration) -> Result<(), CallError> {
        let deadline = Instant::now() + timeout;
        if let Conn::Http(c) = &mut self.conn {
            c.set_session(Some(session_id.to_string()));
        }
        match &self.conn {
            Conn::Http(_) => {
                let (msg, _) = self.request("ping", json!({}), deadline).await?;
                rpc_result(msg)?;
            }
            Conn::Lines(_) => {
                if self.session.is_some() {
                    return Err(CallError::NotSent(
                        "this connection is already bound to a session".into(),
                    ));
                }
                let params = json!({
                    "protocolVersion": PROTOCOL_VERSION,
                    "capabilities": {},
                    "clientInfo": {"name": "erlmcp-chaos", "version": env!("CARGO_PKG_VERSION")},
                    "_meta": {META_RESUME: session_id},
                });
                let (msg, _) = self.request("initialize", params, deadline).await?;
                let result = rpc_result(msg)?;
                if result["_meta"][META_SESSION].as_str() != Some(session_id) {
                    return Err(CallError::Malformed(format!(
                        "resume of {session_id} attached to another session: {}",
                        excerpt(&result.to_string())
                    )));
                }
            }
        }
        self.session = Some(session_id.to_string());
        Ok(())
    }

    /// Calls tool `name` with `args`; returns the `tools/call` result (`isError` results and
    /// error responses are errors).
    pub async fn call_tool(
        &mut self,
        name: &str,
        args: Value,
        timeout: Duration,
    ) -> Result<Value, CallError> {
        let deadline = Instant::now() + timeout;
        let (msg, _) = self
            .request(
                "tools/call",
                json!({"name": name, "arguments": args}),
                deadline,
            )
            .await?;
        let result = rpc_result(msg)?;
        if result.get("isError").and_then(Value::as_bool) == Some(true) {
            let text = result["content"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["text"].as_str())
                .collect::<Vec<_>>()
                .join(" ");
            return Err(CallError::Tool(excerpt(&text)));
        }
        Ok(result)
    }

    /// Sends a request; returns the response message and (HTTP) the `Mcp-Session-Id` header.
    async fn request(
        &mut self,
        method: &str,
        params: Value,
        deadline: Instant,
    ) -> Result<(Value, Option<String>), CallError> {
        let id = self.next_id;
        self.next_id += 1;
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        match &mut self.conn {
            Conn::Lines(c) => Ok((c.request(&msg, id, deadline).await?, None)),
            Conn::Http(c) => match c.post(&msg, Some(id), deadline).await? {
                (Reply::Message(m), header) => Ok((m, header)),
                (Reply::Accepted, _) => Err(CallError::Malformed(format!(
                    "{method} was accepted without a response"
                ))),
            },
        }
    }

    async fn notify(&mut self, method: &str, deadline: Instant) -> Result<(), CallError> {
        let msg = json!({"jsonrpc": "2.0", "method": method});
        match &mut self.conn {
            Conn::Lines(c) => c.notify(&msg, deadline).await,
            Conn::Http(c) => c.post(&msg, None, deadline).await.map(|_| ()),
        }
    }
}

/// The `result` of a response message, or its `error` as [`CallError::Rpc`].
fn rpc_result(msg: Value) -> Result<Value, CallError> {
    let mut msg = msg;
    if let Some(e) = msg.get("error") {
        return Err(CallError::Rpc {
            code: e["code"].as_i64().unwrap_or_default(),
            message: e["message"].as_str().unwrap_or_default().to_string(),
        });
    }
    match msg.get_mut("result") {
        Some(r) => Ok(r.take()),
        None => Err(CallError::Malformed(format!(
            "a response without result or error: {}",
            excerpt(&msg.to_string())
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified_definite_or_indeterminate() {
        let rpc = |code| CallError::Rpc {
            code,
            message: String::new(),
        };
        let http = |status| CallError::Http {
            status,
            body: String::new(),
        };
        for e in [
            CallError::Connect("refused".into()),
            CallError::NotSent("closed".into()),
            CallError::Tool("boom".into()),
            rpc(-32602),
            rpc(-32601),
            http(400),
            http(404),
            http(503),
        ] {
            assert!(e.is_definite(), "{e:?}");
        }
        for e in [
            CallError::Timeout(Duration::from_secs(1)),
            CallError::Dropped("reset".into()),
            CallError::Malformed("garbage".into()),
            rpc(-32603),
            rpc(-32001),
            http(500),
            http(502),
            http(504),
        ] {
            assert!(!e.is_definite(), "{e:?}");
        }
        assert!(http(404).is_unknown_session());
        assert!(
            CallError::Rpc {
                code: -32602,
                message: "Unknown session x in _meta".into()
            }
            .is_unknown_session()
        );
        assert!(!http(400).is_unknown_session());
    }

    #[test]
    fn rpc_results_and_errors_are_told_apart() {
        assert_eq!(
            rpc_result(json!({"id": 1, "result": {"a": 1}})),
            Ok(json!({"a": 1}))
        );
        assert_eq!(
            rpc_result(json!({"id": 1, "error": {"code": -32602, "message": "no"}})),
            Err(CallError::Rpc {
                code: -32602,
                message: "no".into()
            })
        );
        assert!(matches!(
            rpc_result(json!({"id": 1})),
            Err(CallError::Malformed(_))
        ));
    }
}
