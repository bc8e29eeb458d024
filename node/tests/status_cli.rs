//! `erlmcp status` against fake admin APIs (its errors, its table) and against a real node
//! (`status_shows_a_lone_node`, which needs the node's `GET /admin/cluster`).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Output, Stdio};

use common::*;
use serde_json::Value;

fn status(args: &[&str]) -> Output {
    Command::new(bin())
        .arg("status")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run erlmcp status")
}

/// An admin API stand-in that answers one request with `response`, on its own thread.
fn one_shot_server(response: String) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().expect("accept");
        let mut reader = BufReader::new(s.try_clone().expect("clone"));
        let mut line = String::new();
        // Read the request head before answering, as a server would.
        while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
            line.clear();
        }
        let _ = s.write_all(response.as_bytes());
    });
    addr
}

const VIEW: &str = r#"{"node":"node0","incarnation":1764240000123,"cluster_addr":"127.0.0.1:7403","members":[{"name":"node0","cluster_addr":"127.0.0.1:7403","admin_addr":"127.0.0.1:7404","state":"up","incarnation":1764240000123,"rtt_us":null,"self":true,"since_ms":1520},{"name":"node1","cluster_addr":"127.0.0.1:7413","admin_addr":"127.0.0.1:7414","state":"suspect","incarnation":1764240000456,"rtt_us":230,"self":false,"since_ms":40}]}"#;

#[test]
fn status_reports_an_unreachable_admin_api() {
    // A port that was just free: nothing listens there.
    let addr = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let out = status(&["--admin", &addr.to_string()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("cannot reach the admin API at {addr}"))
            && err.contains("pass --admin ADDR"),
        "{err}"
    );
}

#[test]
fn status_reports_a_non_200_answer_with_its_body() {
    let body = r#"{"error":"not here"}"#;
    let addr = one_shot_server(format!(
        "HTTP/1.1 404 Not Found\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ));
    let out = status(&["--admin", &addr.to_string()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("answered 404") && err.contains("not here"),
        "{err}"
    );
}

#[test]
fn status_prints_the_table_and_summary() {
    // Chunked, as a streaming server may send it.
    let addr = one_shot_server(format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{VIEW}\r\n0\r\n\r\n",
        VIEW.len()
    ));
    let out = status(&["--admin", &addr.to_string()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("RTT"),
        "{text}"
    );
    assert!(
        lines[1].starts_with("node0*") && lines[1].contains("1.5s"),
        "{text}"
    );
    assert!(
        lines[2].contains("suspect") && lines[2].contains("230µs"),
        "{text}"
    );
    assert_eq!(lines[3], "2 members: 1 up, 1 suspect (seen by node0)");
}

#[test]
fn status_json_prints_the_answer() {
    let addr = one_shot_server(format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{VIEW}",
        VIEW.len()
    ));
    let out = status(&["--admin", &addr.to_string(), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v, serde_json::from_str::<Value>(VIEW).expect("VIEW"));
}

#[test]
fn status_shows_a_lone_node() {
    let node = NodeProc::start(None, &[]);
    let admin = node.admin().to_string();
    let out = status(&["--admin", &admin]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("test@127.0.0.1*"), "{text}");
    assert!(
        text.ends_with("1 member: 1 up (seen by test@127.0.0.1)\n"),
        "{text}"
    );
}
