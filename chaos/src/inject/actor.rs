//! `inject actor-kill`: asks a node to kill one of its actors (`POST /admin/chaos/kill`, only
//! on a node started with `--chaos --admin-token TOKEN`), once or as a restart storm.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use erlmcp_net::admin::KillRequest;

use super::admin;
use crate::scenario::parse_duration;

/// Arguments of `inject actor-kill`.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct ActorKillArgs {
    /// The node's admin API, HOST:PORT.
    #[arg(long, value_name = "ADDR")]
    pub admin: String,
    /// The node's admin token (`--admin-token`).
    #[arg(long, value_name = "T")]
    pub token: String,
    /// What to kill.
    #[arg(long, value_enum)]
    pub kind: ActorKind,
    /// The session id (kind session) or the child path in the supervision tree, like
    /// ClusterSup/Membership (kind child).
    #[arg(long)]
    pub id: Option<String>,
    /// Kill this many times (a restart storm, to trip the supervisor's intensity).
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,
    /// Wait this long between kills.
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    pub every: Option<Duration>,
}

/// The kinds of actor `POST /admin/chaos/kill` knows.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorKind {
    /// A live session (`--id SESSION`).
    Session,
    /// The node's session shard.
    Shard,
    /// A child in the supervision tree (`--id` a path like ClusterSup/Membership).
    Child,
}

impl ActorKillArgs {
    /// The request, `{"kind":..,"id":..}`; an id is required for sessions and children,
    /// refused for the shard (checked here so a typo fails before anything is killed).
    pub fn request(&self) -> Result<KillRequest> {
        match (self.kind, &self.id) {
            (ActorKind::Shard, None) => Ok(KillRequest::Shard),
            (ActorKind::Shard, Some(_)) => bail!("--kind shard takes no --id"),
            (ActorKind::Session, Some(id)) if !id.is_empty() => {
                Ok(KillRequest::Session { id: id.clone() })
            }
            (ActorKind::Child, Some(id)) if !id.is_empty() => {
                Ok(KillRequest::Child { id: id.clone() })
            }
            (ActorKind::Session, _) => bail!("--kind session needs --id SESSION"),
            (ActorKind::Child, _) => {
                bail!(
                    "--kind child needs --id PATH, a path of child ids like ClusterSup/Membership"
                )
            }
        }
    }
}

/// Runs `inject actor-kill`: `--repeat` kills, `--every` apart; stops at the first refusal.
pub async fn run(a: ActorKillArgs) -> Result<()> {
    let what = a.request()?;
    let client = admin::client(&a.admin, Some(&a.token))?;
    for i in 1..=a.repeat {
        if i > 1
            && let Some(every) = a.every
        {
            tokio::time::sleep(every).await;
        }
        let killed = client
            .kill(&what)
            .await
            .with_context(|| format!("kill {i}/{}", a.repeat))?;
        println!("kill {i}/{}: killed {}", a.repeat, killed.killed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::inject::testkit::{Stub, parse};
    use crate::inject::{InjectCmd, run as inject};

    #[test]
    fn actor_kill_arguments() {
        assert_eq!(
            parse(&[
                "actor-kill",
                "--admin",
                "a:1",
                "--token",
                "t",
                "--kind",
                "child",
                "--id",
                "ClusterSup/Membership",
                "--repeat",
                "5",
                "--every",
                "200ms",
            ])
            .expect("parses"),
            InjectCmd::ActorKill(ActorKillArgs {
                admin: "a:1".into(),
                token: "t".into(),
                kind: ActorKind::Child,
                id: Some("ClusterSup/Membership".into()),
                repeat: 5,
                every: Some(Duration::from_millis(200)),
            })
        );
        let kill = ["actor-kill", "--admin", "a:1", "--token", "t", "--kind"];
        assert!(
            parse(&[&kill[..], &["process"]].concat()).is_err(),
            "unknown kind"
        );
        assert!(
            parse(&[&kill[..], &["shard", "--repeat", "0"]].concat()).is_err(),
            "repeat 0"
        );
        assert!(
            parse(&["actor-kill", "--admin", "a:1", "--kind", "shard"]).is_err(),
            "no token"
        );
    }

    fn actor_kill(kind: ActorKind, id: Option<&str>) -> ActorKillArgs {
        ActorKillArgs {
            admin: "a:1".into(),
            token: "t".into(),
            kind,
            id: id.map(str::to_string),
            repeat: 1,
            every: None,
        }
    }

    #[test]
    fn actor_kill_bodies_and_their_ids() {
        let body = |k, id| {
            actor_kill(k, id)
                .request()
                .map(|r| serde_json::to_value(r).expect("serializes"))
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            body(ActorKind::Session, Some("s-1")).expect("ok"),
            json!({"kind": "session", "id": "s-1"})
        );
        assert_eq!(
            body(ActorKind::Shard, None).expect("ok"),
            json!({"kind": "shard"})
        );
        assert_eq!(
            body(ActorKind::Child, Some("ClusterSup/Membership")).expect("ok"),
            json!({"kind": "child", "id": "ClusterSup/Membership"})
        );
        assert!(
            body(ActorKind::Session, None)
                .expect_err("no id")
                .contains("--id")
        );
        assert!(
            body(ActorKind::Child, Some(""))
                .expect_err("empty id")
                .contains("--id")
        );
        assert!(body(ActorKind::Shard, Some("x")).is_err());
    }

    #[tokio::test]
    async fn actor_kill_posts_the_token_and_body_each_time() {
        let mut stub = Stub::start("200 OK", r#"{"killed":"session s-1"}"#.into()).await;
        let mut args = actor_kill(ActorKind::Session, Some("s-1"));
        args.admin = stub.addr.to_string();
        args.token = "sekrit".into();
        args.repeat = 3;
        args.every = Some(Duration::from_millis(1));
        inject(InjectCmd::ActorKill(args)).await.expect("kills");
        for _ in 0..3 {
            let req = stub.next().await;
            assert_eq!(req.request_line, "POST /admin/chaos/kill HTTP/1.1");
            assert_eq!(req.header("authorization"), Some("Bearer sekrit"));
            assert_eq!(req.header("content-type"), Some("application/json"));
            assert_eq!(req.header("connection"), Some("close"));
            let body: Value = serde_json::from_slice(&req.body).expect("JSON body");
            assert_eq!(body, json!({"kind": "session", "id": "s-1"}));
        }
        stub.nothing_more();
    }

    #[tokio::test]
    async fn actor_kill_fails_on_a_refusal_with_the_servers_message() {
        let mut stub = Stub::start(
            "401 Unauthorized",
            r#"{"error":"missing or wrong token: send Authorization: Bearer TOKEN"}"#.into(),
        )
        .await;
        let mut args = actor_kill(ActorKind::Shard, None);
        args.admin = stub.addr.to_string();
        args.repeat = 3;
        let err = inject(InjectCmd::ActorKill(args))
            .await
            .expect_err("a 401 is an error");
        let msg = format!("{err:#}");
        assert!(msg.contains("401 Unauthorized"), "{msg}");
        assert!(msg.contains("missing or wrong token"), "{msg}");
        assert!(msg.contains(&stub.addr.to_string()), "{msg}");
        let req = stub.next().await;
        assert_eq!(
            serde_json::from_slice::<Value>(&req.body).expect("JSON"),
            json!({"kind": "shard"})
        );
        // The storm stops at the first refusal.
        stub.nothing_more();
    }
}
