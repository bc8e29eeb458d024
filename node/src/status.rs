//! `erlmcp status`: a node's view of the mesh, from its admin API's `GET /admin/cluster`,
//! printed as a table (or as the JSON itself with `--json`).
//!
//! The request is a small hand-written HTTP/1.1 GET with `Connection: close` (one request, a
//! few hundred bytes back: no HTTP client library is worth its weight here), bounded by
//! [`TIMEOUT`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bound on the whole exchange with the admin API (connect, request, response).
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// Largest response read; a cluster view is a few hundred bytes per member.
const MAX_RESPONSE: u64 = 16 << 20;
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
}

/// A node's view of the mesh, as `GET /admin/cluster` returns it. Unknown fields are ignored,
/// so a newer node's answer still prints.
#[derive(Debug, Clone, Deserialize)]
pub struct ClusterView {
    /// The answering node's name. (Its incarnation and cluster address are also in the
    /// answer, and in its own row, marked `self`.)
    pub node: String,
    /// Every member it knows of, itself included.
    pub members: Vec<Member>,
}

/// One member as the answering node sees it.
#[derive(Debug, Clone, Deserialize)]
pub struct Member {
    /// Node name.
    pub name: String,
    /// Node-to-node endpoint.
    #[serde(default)]
    pub cluster_addr: Option<String>,
    /// Admin API, if the member advertised one.
    #[serde(default)]
    pub admin_addr: Option<String>,
    /// `up`, `suspect`, `down` or `left` (kept as text so a newer state still prints).
    pub state: String,
    /// The member's incarnation.
    pub incarnation: u64,
    /// Last measured round trip in microseconds, if any.
    #[serde(default)]
    pub rtt_us: Option<u64>,
    /// Whether this member is the answering node.
    #[serde(rename = "self", default)]
    pub is_self: bool,
    /// Milliseconds since the member entered its current state.
    #[serde(default)]
    pub since_ms: Option<u64>,
}

/// Runs `erlmcp status`.
pub async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let (code, body) = http_get(&args.admin, "/admin/cluster").await?;
    if code != 200 {
        bail!(
            "the admin API at {} answered {code} to GET /admin/cluster: {}",
            args.admin,
            abbreviate(body.trim(), 2000)
        );
    }
    let text = if args.json {
        let v: serde_json::Value = serde_json::from_str(&body)
            .with_context(|| format!("the admin API at {} answered invalid JSON", args.admin))?;
        let mut s = serde_json::to_string_pretty(&v).context("re-encoding the JSON")?;
        s.push('\n');
        s
    } else {
        let view: ClusterView = serde_json::from_str(&body).with_context(|| {
            format!(
                "the admin API at {} answered something that is not a cluster view",
                args.admin
            )
        })?;
        render(&view)
    };
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("writing to stdout")
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
                m.state.clone(),
                m.incarnation.to_string(),
                m.rtt_us.map_or_else(dash, format_rtt),
                m.since_ms.map_or_else(dash, format_since),
                m.cluster_addr.clone().unwrap_or_else(dash),
                m.admin_addr.clone().unwrap_or_else(dash),
            ]
        })
        .collect();
    // Widths in characters, not bytes: "µs" is one column wide.
    let mut widths = HEADER.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell); // no trailing spaces
            } else {
                let pad = widths[i] - cell.chars().count() + 2;
                l.push_str(cell);
                l.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(&l);
        out.push('\n');
    };
    line(&HEADER);
    for row in &rows {
        line(&row.each_ref().map(String::as_str));
    }
    let _ = writeln!(out, "{} (seen by {})", summary(&view.members), view.node);
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

fn abbreviate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// `GET path` on `addr` over HTTP/1.1: (status code, body).
async fn http_get(addr: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let exchange = async {
        let mut sock = TcpStream::connect(addr).await.map_err(|e| {
            anyhow!(
                "cannot reach the admin API at {addr}: {e} (is the node running? pass --admin ADDR)"
            )
        })?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
        );
        sock.write_all(request.as_bytes())
            .await
            .with_context(|| format!("sending the request to {addr}"))?;
        let mut raw = Vec::new();
        (&mut sock)
            .take(MAX_RESPONSE)
            .read_to_end(&mut raw)
            .await
            .with_context(|| format!("reading the answer of {addr}"))?;
        parse_response(&raw).with_context(|| format!("the admin API at {addr} answered badly"))
    };
    tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| {
            anyhow!(
                "the admin API at {addr} did not answer within {}s (is it a node's admin port? pass --admin ADDR)",
                TIMEOUT.as_secs()
            )
        })?
}

/// Splits a whole HTTP/1.1 response into its status code and (de-chunked) body.
fn parse_response(raw: &[u8]) -> anyhow::Result<(u16, String)> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("no end of headers in {} bytes", raw.len()))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    let code: u16 = status
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow!("bad status line {status:?}"))?;
    let mut chunked = false;
    let mut length = None;
    for l in lines {
        let Some((name, value)) = l.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<usize>().ok();
        }
    }
    let body = if chunked {
        dechunk(body)?
    } else {
        match length {
            Some(n) if n <= body.len() => body[..n].to_vec(),
            Some(n) => bail!("body cut short: {} of {n} bytes", body.len()),
            None => body.to_vec(),
        }
    };
    Ok((code, String::from_utf8_lossy(&body).into_owned()))
}

/// Decodes a chunked body (trailers ignored).
fn dechunk(mut raw: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| anyhow!("malformed chunked body: no chunk size line"))?;
        let size_line = String::from_utf8_lossy(&raw[..eol]);
        let size_hex = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| anyhow!("malformed chunked body: bad chunk size {size_hex:?}"))?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if raw.len() < size + 2 {
            bail!("malformed chunked body: chunk cut short");
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        v.members[0].state = "joining".into();
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

    #[test]
    fn parses_plain_and_chunked_responses() {
        let plain =
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(parse_response(plain).expect("plain"), (200, "{}".into()));
        let chunked = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nnot \r\n5;x=y\r\nfound\r\n0\r\n\r\n";
        assert_eq!(
            parse_response(chunked).expect("chunked"),
            (404, "not found".into())
        );
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse_response(b"garbage\r\n\r\n").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n{}").is_err());
        let bad = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n";
        assert!(parse_response(bad).is_err());
    }

    #[test]
    fn abbreviates_long_bodies_on_char_boundaries() {
        assert_eq!(abbreviate("µµµ", 2), "µµ…");
        assert_eq!(abbreviate("ab", 2), "ab");
    }
}
