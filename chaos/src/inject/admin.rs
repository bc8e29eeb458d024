//! The admin calls of `inject`, through [`AdminClient`]: a client with an operator's patience,
//! and the node's process as `GET /health` describes it.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use erlmcp_net::admin::{AdminClient, Health};

/// How long connecting to an admin API may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an admin request may take, connecting included (a busy node under a restart storm
/// may be slow; an operator waits).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A client of the admin API at `admin` (`HOST:PORT` or `http://HOST:PORT/`), with `token` for
/// the fault-injection endpoints.
pub fn client(admin: &str, token: Option<&str>) -> Result<AdminClient> {
    let mut b = AdminClient::builder(admin)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT);
    if let Some(t) = token {
        b = b.token(t);
    }
    Ok(b.build()?)
}

/// A node's process as its admin API describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeProcess {
    /// Its process id.
    pub pid: u32,
    /// Its name.
    pub name: String,
}

/// The pid and name of a `GET /health` answer, refusing pids that would signal more than one
/// process (0 is a group to `kill`), init, or this very process.
pub fn node_from_health(h: &Health) -> Result<NodeProcess> {
    let body = serde_json::to_string(h).unwrap_or_else(|_| format!("{h:?}"));
    let pid = h.pid.with_context(|| {
        format!("/health has no pid (a node older than the chaos admin API?): {body}")
    })?;
    if pid <= 1 || pid == std::process::id() {
        bail!("refusing to signal pid {pid} from /health: {body}");
    }
    let name = if h.node.is_empty() { "?" } else { &h.node };
    Ok(NodeProcess {
        pid,
        name: name.to_string(),
    })
}

/// The process of the node whose admin API is at `admin` (`GET /health`).
pub async fn node_process(admin: &str) -> Result<NodeProcess> {
    let health = client(admin, None)?.health().await?;
    node_from_health(&health)
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;
    use crate::inject::testkit::Stub;
    use crate::inject::{InjectCmd, KillArgs, run};

    fn health(body: &str) -> Result<NodeProcess> {
        let h: Health = serde_json::from_str(body)?;
        node_from_health(&h)
    }

    #[test]
    fn health_bodies_give_a_pid_that_is_safe_to_signal() {
        assert_eq!(
            health(r#"{"status":"ok","node":"n1","pid":4242}"#).expect("ok"),
            NodeProcess {
                pid: 4242,
                name: "n1".into()
            }
        );
        for bad in [
            r#"{"status":"ok","node":"n1"}"#,
            r#"{"status":"ok","node":"n1","pid":0}"#,
            r#"{"status":"ok","node":"n1","pid":1}"#,
            r#"{"status":"ok","node":"n1","pid":-5}"#,
            r#"{"status":"ok","node":"n1","pid":99999999999}"#,
            "not json",
        ] {
            assert!(health(bad).is_err(), "{bad}");
        }
        let ours = format!(
            r#"{{"status":"ok","node":"n1","pid":{}}}"#,
            std::process::id()
        );
        assert!(health(&ours).is_err(), "never signal ourselves");
        let e = health(r#"{"status":"ok","node":"n1"}"#).expect_err("no pid");
        assert!(e.to_string().contains("has no pid"), "{e}");
    }

    #[tokio::test]
    async fn an_unreachable_admin_api_is_named() {
        let closed = {
            let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            l.local_addr().expect("addr")
        };
        let err = run(InjectCmd::Kill(KillArgs {
            admin: closed.to_string(),
        }))
        .await
        .expect_err("nothing listens there");
        let msg = format!("{err:#}");
        assert!(
            msg.contains(&format!("cannot reach the admin API at {closed}")),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn a_negative_pid_is_refused_before_anything_is_signalled() {
        let mut stub = Stub::start("200 OK", r#"{"status":"ok","node":"n","pid":-1}"#.into()).await;
        let err = node_process(&format!("http://{}/", stub.addr))
            .await
            .expect_err("pid -1 is every process");
        let msg = format!("{err:#}");
        assert!(msg.contains("not a health answer"), "{msg}");
        assert_eq!(stub.next().await.request_line, "GET /health HTTP/1.1");
    }
}
