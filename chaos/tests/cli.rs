//! `erlmcp-chaos run` exit codes: 1 when a checker fails, 2 when the scenario is invalid.
//! Needs the node binary: `cargo build -p erlmcp-node` (or `ERLMCP_BIN`).

mod common;
use common::node_bin;

use std::path::PathBuf;
use std::process::Command;

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("erlmcp-chaos-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn a_failed_checker_makes_the_run_exit_1_and_the_reports_are_written() {
    let dir = scratch("fail");
    // One node killed for a while: its sessions and their acknowledged writes are gone.
    let scenario = dir.join("lose.toml");
    std::fs::write(
        &scenario,
        r#"
name = "lose"
duration = "5s"
[cluster]
nodes = 1
[workload]
clients = 3
transports = ["tcp"]
rate = 100
deadline = "1s"
routing = "sticky"
[[fault]]
kind = "kill"
at = "2s"
duration = "1s"
targets = ["node0"]
[checks]
convergence_timeout = "20s"
"#,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_erlmcp-chaos"))
        .args(["run", scenario.to_str().unwrap(), "--quiet", "--erlmcp"])
        .arg(node_bin())
        .arg("--out")
        .arg(dir.join("out"))
        .output()
        .expect("run erlmcp-chaos");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("verdict       FAIL"), "{stdout}");
    assert!(stdout.contains("lost-writes   FAIL"), "{stdout}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("out/report.json")).unwrap()).unwrap();
    assert_eq!(json["passed"], false);
    assert!(dir.join("out/report.html").is_file());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_invalid_scenario_exits_2_naming_the_problem() {
    let dir = scratch("bad");
    let scenario = dir.join("bad.toml");
    std::fs::write(
        &scenario,
        "name = 'bad'\nduration = '5s'\n[[fault]]\nkind = 'kill'\nat = '9s'\nduration = '1s'\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_erlmcp-chaos"))
        .args(["run", scenario.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("after the workload"), "{stderr}");
    let out = Command::new(env!("CARGO_BIN_EXE_erlmcp-chaos"))
        .args(["run", "/nonexistent/scenario.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read scenario"));
    let _ = std::fs::remove_dir_all(&dir);
}
