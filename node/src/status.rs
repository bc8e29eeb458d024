//! `erlmcp status`: a node's view of the mesh, from its admin API's `GET /admin/cluster`
//! ([`AdminClient::cluster`]), printed as a table (or as the JSON itself with `--json`); and
//! `erlmcp forget NODE`, which asks a node to forget a member that is down or left.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, anyhow};
use erlmcp_net::admin::{
    AdminClient, AdminError, CLUSTER_PATH, ClusterView, Member, SHARDS_PATH, SessionsView,
    ShardsView,
};

/// Bound on the whole exchange with the admin API (connect, request, response).
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// States in the order the summary lists them; others (from a newer node) follow by name.
const STATES: [&str; 4] = ["up", "suspect", "down", "left"];

/// `erlmcp status` flags.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// The node's admin API, HOST:PORT.
    #[arg(long, value_name = "ADDR", default_value = crate::config::DEFAULT_ADMIN)]
    pub admin: String,
    /// Print the JSON the node answered (pretty-printed) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Show the metadata cluster and the shard map (GET /admin/shards) instead of the members.
    #[arg(long)]
    pub shards: bool,
}

/// `erlmcp forget` flags.
#[derive(clap::Args, Debug)]
pub struct ForgetArgs {
    /// The member to forget (its node name); it must be down or left.
    #[arg(value_name = "NODE")]
    pub node: String,
    /// The admin API of the node to ask, HOST:PORT (it tells its connected peers).
    #[arg(long, value_name = "ADDR", default_value = crate::config::DEFAULT_ADMIN)]
    pub admin: String,
}

/// Runs `erlmcp forget`: prints what was forgotten, or fails with the node's reason.
pub async fn forget(args: ForgetArgs) -> anyhow::Result<()> {
    let client = AdminClient::builder(&args.admin)
        .connect_timeout(TIMEOUT)
        .timeout(TIMEOUT)
        .build()?;
    let done = client.forget(&args.node).await.map_err(hint)?;
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "forgot {} (incarnation {}) on {} and its connected peers",
        done.node, done.incarnation, args.admin
    )
    .and_then(|()| out.flush())
    .context("writing to stdout")
}

/// `erlmcp shards` flags.
#[derive(clap::Args, Debug)]
pub struct ShardsArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ShardsCommand,
    /// The admin API of the node to ask, HOST:PORT.
    #[arg(long, value_name = "ADDR", default_value = crate::config::DEFAULT_ADMIN, global = true)]
    pub admin: String,
}

/// `erlmcp shards` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum ShardsCommand {
    /// The metadata cluster and the shard map (as `erlmcp status --shards`).
    List,
    /// Give shard SHARD a new owner (committed through the metadata leader; its epoch goes up
    /// by one). The next rebalance may move it back if the map is out of balance.
    Move {
        /// The shard number (0 to the shard count - 1).
        #[arg(value_name = "SHARD")]
        shard: u32,
        /// The node that will own it (up, and not --metadata-only).
        #[arg(long, value_name = "NODE")]
        to: String,
    },
}

/// Runs `erlmcp shards`.
pub async fn shards(args: ShardsArgs) -> anyhow::Result<()> {
    let client = AdminClient::builder(&args.admin)
        .connect_timeout(TIMEOUT)
        .timeout(TIMEOUT)
        .build()?;
    let text = match args.command {
        ShardsCommand::List => render_shards(&client.shards().await.map_err(hint)?),
        ShardsCommand::Move { shard, to } => {
            let m = client.move_shard(shard, &to).await.map_err(hint)?;
            if m.moved {
                format!(
                    "shard {} moved from {} to {} (epoch {})\n",
                    m.shard, m.from, m.to, m.epoch
                )
            } else {
                format!(
                    "shard {} is owned by {} already (epoch {})\n",
                    m.shard, m.to, m.epoch
                )
            }
        }
    };
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("writing to stdout")
}

/// `erlmcp sessions` flags.
#[derive(clap::Args, Debug)]
pub struct SessionsArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: SessionsCommand,
    /// The admin API of the node to ask, HOST:PORT.
    #[arg(long, value_name = "ADDR", default_value = crate::config::DEFAULT_ADMIN, global = true)]
    pub admin: String,
}

/// `erlmcp sessions` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum SessionsCommand {
    /// The sessions (and state handles) the node holds, a page at a time, in id order.
    List {
        /// At most this many (1 to 1000).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=1000))]
        limit: u16,
        /// Start after this session id (the `next` of the previous page).
        #[arg(long, value_name = "ID", allow_hyphen_values = true)]
        after: Option<String>,
    },
    /// One session: its shard and owner, state, client and size.
    Show {
        /// The session (or state handle) id (ids may begin with `-`: base64url).
        #[arg(value_name = "ID", allow_hyphen_values = true)]
        id: String,
    },
}

/// Runs `erlmcp sessions`.
pub async fn sessions(args: SessionsArgs) -> anyhow::Result<()> {
    let client = AdminClient::builder(&args.admin)
        .connect_timeout(TIMEOUT)
        .timeout(TIMEOUT)
        .build()?;
    let text = match args.command {
        SessionsCommand::List { limit, after } => render_sessions(
            &client
                .sessions(usize::from(limit), after.as_deref())
                .await
                .map_err(hint)?,
        ),
        SessionsCommand::Show { id } => {
            let d = client.session(&id).await.map_err(hint)?;
            let r = &d.row;
            let mut out = String::new();
            let dash = || "-".to_string();
            for (k, v) in [
                ("id", r.id.clone()),
                ("node", d.node.clone()),
                ("shard", r.shard.to_string()),
                ("owner", r.owner.clone().unwrap_or_else(dash)),
                ("live", r.live.to_string()),
                ("idle", format_since(r.idle_ms)),
                ("origin", d.origin.clone()),
                ("phase", d.phase.clone()),
                ("protocol", d.protocol_version.clone()),
                ("client", d.client.clone().unwrap_or_else(dash)),
                ("kv", format!("{} keys, {} bytes", d.kv_keys, d.kv_bytes)),
                ("subscriptions", d.subscriptions.to_string()),
                ("lifecycle", d.lifecycle.clone()),
                ("version", r.version.to_string()),
                ("size", format!("{} bytes", r.bytes)),
            ] {
                let _ = writeln!(out, "{k:<14}{v}");
            }
            out
        }
    };
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("writing to stdout")
}

/// A page of sessions as a table, then how many of how many, and how to get the next page.
pub fn render_sessions(v: &SessionsView) -> String {
    const HEADER: [&str; 7] = ["ID", "SHARD", "OWNER", "LIVE", "IDLE", "VERSION", "BYTES"];
    let rows: Vec<[String; 7]> = v
        .sessions
        .iter()
        .map(|s| {
            [
                s.id.clone(),
                s.shard.to_string(),
                s.owner.clone().unwrap_or_else(|| "-".into()),
                if s.live { "yes" } else { "no" }.to_string(),
                format_since(s.idle_ms),
                s.version.to_string(),
                s.bytes.to_string(),
            ]
        })
        .collect();
    let mut out = table(HEADER, rows);
    let _ = write!(
        out,
        "{} of {} session{} on {}",
        v.sessions.len(),
        v.total,
        if v.total == 1 { "" } else { "s" },
        v.node
    );
    match &v.next {
        Some(n) => {
            let _ = writeln!(out, " (more: erlmcp sessions list --after {n})");
        }
        None => out.push('\n'),
    }
    out
}

/// Runs `erlmcp status`.
pub async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let client = AdminClient::builder(&args.admin)
        .connect_timeout(TIMEOUT)
        .timeout(TIMEOUT)
        .build()?;
    let path = if args.shards {
        SHARDS_PATH
    } else {
        CLUSTER_PATH
    };
    let text = if args.json {
        // Untyped, so a newer node's extra fields are printed too.
        let v = client.get_json(path).await.map_err(hint)?;
        let mut s = serde_json::to_string_pretty(&v).context("re-encoding the JSON")?;
        s.push('\n');
        s
    } else if args.shards {
        render_shards(&client.shards().await.map_err(hint)?)
    } else {
        render(&client.cluster().await.map_err(hint)?)
    };
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("writing to stdout")
}

/// The error, with a hint when the address may simply be wrong.
fn hint(e: AdminError) -> anyhow::Error {
    match e {
        AdminError::Unreachable { .. } | AdminError::Timeout { .. } => {
            anyhow!("{e} (is the node running? is it a node's admin port? pass --admin ADDR)")
        }
        e => e.into(),
    }
}

/// The table of members followed by the summary line, e.g.
/// `3 members: 2 up, 1 suspect (seen by node0)`.
pub fn render(view: &ClusterView) -> String {
    const HEADER: [&str; 7] = [
        "NAME",
        "STATE",
        "INCARNATION",
        "RTT",
        "SINCE",
        "CLUSTER",
        "ADMIN",
    ];
    let dash = || "-".to_string();
    let rows: Vec<[String; 7]> = view
        .members
        .iter()
        .map(|m| {
            [
                if m.is_self {
                    format!("{}*", m.name)
                } else {
                    m.name.clone()
                },
                m.state.to_string(),
                m.incarnation.to_string(),
                m.rtt_us.map_or_else(dash, format_rtt),
                m.since_ms.map_or_else(dash, format_since),
                m.cluster_addr.clone().unwrap_or_else(dash),
                m.admin_addr.clone().unwrap_or_else(dash),
            ]
        })
        .collect();
    let mut out = table(HEADER, rows);
    let _ = writeln!(out, "{} (seen by {})", summary(&view.members), view.node);
    if let Some(why) = &view.refused {
        let _ = writeln!(out, "refused by the mesh: {why}");
    } else if !view.joined {
        let _ = writeln!(out, "not joined yet: no seed has answered");
    }
    for seed in view.seeds.iter().filter(|s| !s.reachable) {
        let _ = write!(
            out,
            "seed {} unreachable ({} attempt{})",
            seed.addr,
            seed.attempts,
            if seed.attempts == 1 { "" } else { "s" }
        );
        match &seed.last_error {
            Some(e) => {
                let _ = writeln!(out, ": {e}");
            }
            None => out.push('\n'),
        }
    }
    out
}

/// The metadata cluster in a line, then a row per registered node (shards owned and
/// replicated), e.g. for `erlmcp status --shards`.
pub fn render_shards(v: &ShardsView) -> String {
    let mut out = String::new();
    let m = &v.metadata;
    let _ = writeln!(
        out,
        "metadata cluster {} (term {}, version {}): leader {}, voters {}{}",
        m.cluster
            .as_deref()
            .unwrap_or("(not founded or not joined yet)"),
        m.term,
        m.version,
        m.leader.as_deref().unwrap_or("none"),
        if m.voters.is_empty() {
            "none".to_string()
        } else {
            m.voters.join(", ")
        },
        if m.learners.is_empty() {
            String::new()
        } else {
            format!("; learners {}", m.learners.join(", "))
        }
    );
    if v.shards == 0 {
        let _ = writeln!(out, "no shard map yet (seen by {})", v.node);
        return out;
    }
    let rows: Vec<[String; 5]> = v
        .nodes
        .iter()
        .map(|n| {
            [
                n.name.clone(),
                n.owned.to_string(),
                n.replicated.to_string(),
                n.capacity.to_string(),
                if n.holds_sessions {
                    n.region.clone().unwrap_or_else(|| "-".into())
                } else {
                    "metadata-only".into()
                },
            ]
        })
        .collect();
    const HEADER: [&str; 5] = ["NODE", "OWNS", "REPLICAS", "CAPACITY", "REGION"];
    out.push_str(&table(HEADER, rows));
    let _ = writeln!(
        out,
        "{} shards, replication factor {}, {} placement override{} (seen by {})",
        v.shards,
        v.replication_factor,
        v.overrides,
        if v.overrides == 1 { "" } else { "s" },
        v.node
    );
    out
}

/// `header` and `rows` as columns two spaces apart, widths in characters ("µs" is one
/// column), no trailing spaces.
fn table<const N: usize>(header: [&str; N], rows: Vec<[String; N]>) -> String {
    let mut widths = header.map(|h| h.chars().count());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in std::iter::once(header.map(String::from)).chain(rows) {
        for (i, c) in r.iter().enumerate() {
            out.push_str(c);
            if i + 1 < N {
                out.extend(std::iter::repeat_n(' ', widths[i] - c.chars().count() + 2));
            }
        }
        out.push('\n');
    }
    out
}

/// `N members: A up, B suspect, ...` listing only the states present.
fn summary(members: &[Member]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for m in members {
        *counts.entry(m.state.as_str()).or_default() += 1;
    }
    let n = members.len();
    let mut s = format!("{n} member{}", if n == 1 { "" } else { "s" });
    let known: Vec<(&str, usize)> = STATES
        .iter()
        .filter_map(|st| counts.remove(st).map(|c| (*st, c)))
        .collect();
    let parts: Vec<String> = known
        .into_iter()
        .chain(counts)
        .map(|(st, c)| format!("{c} {st}"))
        .collect();
    if !parts.is_empty() {
        let _ = write!(s, ": {}", parts.join(", "));
    }
    s
}

/// `230µs`, `1.2ms`, `1.50s`.
fn format_rtt(us: u64) -> String {
    if us < 1_000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        format!("{:.1}ms", us as f64 / 1e3)
    } else {
        format!("{:.2}s", us as f64 / 1e6)
    }
}

/// `40ms`, `1.5s`, `2m05s`, `3h07m`, `2d04h`.
fn format_since(ms: u64) -> String {
    let s = ms / 1000;
    if ms < 1_000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1e3)
    } else if s < 3_600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else if s < 86_400 {
        format!("{}h{:02}m", s / 3_600, (s % 3_600) / 60)
    } else {
        format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3_600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use erlmcp_net::admin::Seed;

    const VIEW: &str = r#"{"node":"node0","incarnation":1764240000123,"cluster_addr":"127.0.0.1:7403",
 "members":[{"name":"node0","cluster_addr":"127.0.0.1:7403","admin_addr":"127.0.0.1:7404","state":"up","incarnation":1764240000123,"rtt_us":null,"self":true,"since_ms":1520},
            {"name":"node1","cluster_addr":"127.0.0.1:7413","admin_addr":"127.0.0.1:7414","state":"suspect","incarnation":1764240000456,"rtt_us":230,"self":false,"since_ms":40},
            {"name":"node2","cluster_addr":"127.0.0.1:7423","admin_addr":null,"state":"down","incarnation":1764240000789,"rtt_us":1234,"self":false,"since_ms":125000,"future_field":[1,2]},
            {"name":"node3","cluster_addr":"127.0.0.1:7433","admin_addr":"127.0.0.1:7434","state":"left","incarnation":1764240000999,"rtt_us":2500000,"self":false,"since_ms":7500000},
            {"name":"node4","cluster_addr":"127.0.0.1:7443","admin_addr":"127.0.0.1:7444","state":"up","incarnation":1764240001000,"rtt_us":999,"self":false,"since_ms":200000000}],
 "extra":{"ignored":true}}"#;

    fn view() -> ClusterView {
        serde_json::from_str(VIEW).expect("the documented schema parses")
    }

    #[test]
    fn renders_every_state_null_rtt_and_self() {
        let text = render(&view());
        let expected = "\
NAME    STATE    INCARNATION    RTT    SINCE  CLUSTER         ADMIN
node0*  up       1764240000123  -      1.5s   127.0.0.1:7403  127.0.0.1:7404
node1   suspect  1764240000456  230µs  40ms   127.0.0.1:7413  127.0.0.1:7414
node2   down     1764240000789  1.2ms  2m05s  127.0.0.1:7423  -
node3   left     1764240000999  2.50s  2h05m  127.0.0.1:7433  127.0.0.1:7434
node4   up       1764240001000  999µs  2d07h  127.0.0.1:7443  127.0.0.1:7444
5 members: 2 up, 1 suspect, 1 down, 1 left (seen by node0)
";
        assert_eq!(text, expected, "\n{text}");
    }

    #[test]
    fn summary_counts_only_present_states_and_unknown_ones_last() {
        let mut v = view();
        v.members.truncate(1);
        assert_eq!(summary(&v.members), "1 member: 1 up");
        v.members[0].state = "joining".to_string().into();
        v.members.push(view().members[1].clone());
        assert_eq!(summary(&v.members), "2 members: 1 suspect, 1 joining");
        assert_eq!(summary(&[]), "0 members");
    }

    #[test]
    fn minimal_members_parse_with_missing_optionals() {
        let v: ClusterView = serde_json::from_str(
            r#"{"node":"a","incarnation":1,"members":[{"name":"a","state":"up","incarnation":1}]}"#,
        )
        .expect("parses");
        let text = render(&v);
        assert_eq!(
            text.lines().nth(1),
            Some("a     up     1            -    -      -        -"),
            "\n{text}"
        );
    }

    #[test]
    fn unreachable_seeds_and_a_refusal_are_shown_below_the_summary() {
        let mut v = view();
        v.seeds = vec![
            Seed {
                addr: "127.0.0.1:7413".into(),
                node: Some("node1".into()),
                reachable: true,
                attempts: 0,
                last_error: None,
            },
            Seed {
                addr: "10.9.9.9:7403".into(),
                node: None,
                reachable: false,
                attempts: 4,
                last_error: Some("no QUIC handshake within 2s".into()),
            },
        ];
        v.joined = false;
        let text = render(&v);
        let tail: Vec<&str> = text.lines().skip(6).collect();
        assert_eq!(
            tail,
            [
                "5 members: 2 up, 1 suspect, 1 down, 1 left (seen by node0)",
                "not joined yet: no seed has answered",
                "seed 10.9.9.9:7403 unreachable (4 attempts): no QUIC handshake within 2s",
            ]
        );
        v.refused = Some("node name \"node0\" is taken".into());
        assert!(render(&v).contains("refused by the mesh: node name \"node0\" is taken\n"));
    }

    #[test]
    fn shards_render_the_metadata_line_and_a_row_per_node() {
        let v: ShardsView = serde_json::from_str(
            r#"{"node":"a","metadata":{"id":"a#1","cluster":"a#1","leader":"b#2","term":3,
                "voters":["a#1","b#2","c#3"],"learners":["d#4"],"version":9},
                "shards":1024,"replication_factor":2,"overrides":1,
                "nodes":[{"name":"a","capacity":1,"holds_sessions":true,"owned":512,"replicated":500},
                         {"name":"m","capacity":1,"holds_sessions":false,"owned":0,"replicated":0},
                         {"name":"b","capacity":2,"region":"eu","holds_sessions":true,"owned":512,"replicated":524}],
                "entries":[]}"#,
        )
        .expect("parses");
        assert_eq!(
            render_shards(&v),
            "\
metadata cluster a#1 (term 3, version 9): leader b#2, voters a#1, b#2, c#3; learners d#4
NODE  OWNS  REPLICAS  CAPACITY  REGION
a     512   500       1         -
m     0     0         1         metadata-only
b     512   524       2         eu
1024 shards, replication factor 2, 1 placement override (seen by a)
"
        );
        let none: ShardsView =
            serde_json::from_str(r#"{"node":"z","metadata":{"id":"z#5"}}"#).expect("parses");
        assert_eq!(
            render_shards(&none),
            "metadata cluster (not founded or not joined yet) (term 0, version 0): leader none, voters none\nno shard map yet (seen by z)\n"
        );
    }

    #[test]
    fn durations_format() {
        assert_eq!(format_rtt(0), "0µs");
        assert_eq!(format_rtt(1_000), "1.0ms");
        assert_eq!(format_rtt(999_949), "999.9ms");
        assert_eq!(format_since(999), "999ms");
        assert_eq!(format_since(1_000), "1.0s");
        assert_eq!(format_since(59_999), "60.0s");
        assert_eq!(format_since(60_000), "1m00s");
        assert_eq!(format_since(3_600_000), "1h00m");
        assert_eq!(format_since(86_400_000), "1d00h");
    }
}
