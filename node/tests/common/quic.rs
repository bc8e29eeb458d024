//! A quinn MCP client for tests: one session per bidirectional stream, NDJSON. Used by
//! `node/tests/quic_mcp.rs` (through `common`) and by the listener's unit test in
//! `node/src/quic.rs` (through `#[path]`), so both speak to the node the same way.

#![allow(dead_code)] // each user needs a different subset

use std::net::SocketAddr;
use std::time::Duration;

use erlmcp_net::pki;
use erlmcp_net::tls::{self, McpTrust};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Bound of every wait (debug builds on a busy 2-core machine).
pub const WAIT: Duration = Duration::from_secs(30);

/// A quinn client endpoint trusting the dev CA of `cookie`, connected to `addr` as
/// `server_name`.
pub async fn dial(
    addr: SocketAddr,
    cookie: &str,
    server_name: &str,
) -> (quinn::Endpoint, quinn::Connection) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("endpoint");
    let ca = pki::dev_ca_cert(cookie).expect("dev CA");
    ep.set_default_client_config(tls::mcp_client_config(McpTrust::Ca(vec![ca])).expect("config"));
    let conn = tokio::time::timeout(WAIT, ep.connect(addr, server_name).expect("dial"))
        .await
        .expect("handshake in time")
        .expect("handshake");
    (ep, conn)
}

/// The session id an `initialize` result carries.
pub fn session_id(init: &Value) -> String {
    init["_meta"]["io.erlmcp/session"]
        .as_str()
        .unwrap_or_else(|| panic!("no session id: {init}"))
        .to_string()
}

/// One MCP session on one bidirectional stream of a quinn connection.
pub struct Session {
    pub send: quinn::SendStream,
    pub lines: tokio::io::Lines<BufReader<quinn::RecvStream>>,
}

impl Session {
    pub async fn open(conn: &quinn::Connection) -> Self {
        let (send, recv) = conn.open_bi().await.expect("open a stream");
        Self {
            send,
            lines: BufReader::new(recv).lines(),
        }
    }

    pub async fn send_line(&mut self, line: &str) {
        self.send
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("write");
    }

    /// The next message, `None` at the end of the stream.
    pub async fn recv(&mut self) -> Option<Value> {
        let line = tokio::time::timeout(WAIT, self.lines.next_line())
            .await
            .expect("a line in time")
            .expect("read");
        line.map(|l| serde_json::from_str(&l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
    }

    pub async fn request(&mut self, id: u64, method: &str, params: Value) -> Value {
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.send_line(&msg.to_string()).await;
        loop {
            let m = self.recv().await.expect("an answer before the end");
            if m["id"] == json!(id) {
                return m;
            }
        }
    }

    /// initialize + notifications/initialized; returns the initialize result.
    pub async fn initialize(&mut self) -> Value {
        let r = self
            .request(
                0,
                "initialize",
                json!({"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "quic-tests", "version": "0"}}),
            )
            .await;
        self.send_line(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
            .await;
        r.get("result")
            .cloned()
            .unwrap_or_else(|| panic!("initialize failed: {r}"))
    }

    /// tools/call echo; returns the echoed text.
    pub async fn echo(&mut self, id: u64, text: &str) -> String {
        let r = self
            .request(
                id,
                "tools/call",
                json!({"name": "echo", "arguments": {"text": text}}),
            )
            .await;
        r["result"]["structuredContent"]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("echo failed: {r}"))
            .to_string()
    }
}
