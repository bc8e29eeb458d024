//! Unit tests of the report: table contents, HTML escaping, JSON round trip.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::json;

use super::*;
use crate::history::{FaultWindow, Op, OpKind, Transport};

fn op(
    id: u64,
    node: &str,
    invoke_ms: u64,
    lat_ms: u64,
    outcome: Outcome,
    error: Option<&str>,
) -> Op {
    Op {
        id,
        process: (id % 4) as u32,
        node: node.to_string(),
        transport: Transport::Http,
        key: format!("s{}/k", id % 3),
        kind: if id.is_multiple_of(2) {
            OpKind::Write
        } else {
            OpKind::Read
        },
        value: id.is_multiple_of(2).then(|| format!("v{id}")),
        invoke_us: invoke_ms * 1000,
        complete_us: Some((invoke_ms + lat_ms) * 1000),
        outcome,
        error: error.map(str::to_string),
    }
}

fn check(name: &str, verdict: Verdict, summary: &str, details: serde_json::Value) -> CheckResult {
    CheckResult {
        name: name.to_string(),
        verdict,
        summary: summary.to_string(),
        details,
    }
}

/// 10 ops: 7 ok (latencies 1..=7 ms), 2 refused, 1 timed out; one fault window.
fn report(checks: Vec<CheckResult>) -> Report {
    let mut ops: Vec<Op> = (0..7)
        .map(|i| op(i, "node0", i * 100, i + 1, Outcome::Ok, None))
        .collect();
    ops.push(op(
        7,
        "node1",
        700,
        2,
        Outcome::Fail,
        Some("connection refused"),
    ));
    ops.push(op(
        8,
        "node1",
        800,
        3,
        Outcome::Fail,
        Some("connection refused"),
    ));
    ops.push(op(9, "node1", 900, 1000, Outcome::Unknown, Some("timeout")));
    Report {
        scenario: "partition-minority".into(),
        seed: 42,
        nodes: 3,
        started_at: "2026-11-27T10:00:00Z".into(),
        history: History {
            ops,
            final_reads: vec![],
            faults: vec![FaultWindow {
                name: "partition {node1} | {node0,node2}".into(),
                kind: "partition".into(),
                targets: vec!["node1".into()],
                start_us: 650_000,
                end_us: 1_000_000,
            }],
            deadline_us: 1_000_000,
            duration_us: 2_000_000,
        },
        checks,
        faults_applied: vec![],
    }
}

fn passing_checks() -> Vec<CheckResult> {
    vec![
        check(
            "lost-writes",
            Verdict::Pass,
            "0 of 4 acknowledged writes lost",
            json!({"lost": 0}),
        ),
        check(
            "linearizable",
            Verdict::Pass,
            "3 registers linearizable",
            json!({}),
        ),
        check(
            "availability",
            Verdict::Pass,
            "70.0% overall",
            json!({"overall": 0.7, "windows": [], "per_node": {}}),
        ),
        check(
            "deadlines",
            Verdict::Unknown,
            "1 op never completed",
            json!({}),
        ),
    ]
}

#[test]
fn summary_counts_outcomes_errors_and_answered_latency() {
    let s = report(passing_checks()).summary();
    assert_eq!((s.ops, s.ok, s.fail, s.unknown, s.errors), (10, 7, 2, 1, 3));
    assert_eq!(
        s.top_errors,
        vec![
            ErrorCount {
                message: "connection refused".into(),
                count: 2
            },
            ErrorCount {
                message: "timeout".into(),
                count: 1
            },
        ]
    );
    assert_eq!(s.lost_writes, Some(0));
    assert_eq!(s.linearizable, Linearizable::Yes);
    assert_eq!(s.availability, Some(0.7));
    // Answered: latencies 1..=7 (ok) and 2, 3 (fail); the 1000 ms timeout is left out.
    assert_eq!(s.p50_ms, Some(3.0));
    assert_eq!(s.p99_ms, Some(7.0));
}

#[test]
fn summary_falls_back_when_checks_are_missing_and_reads_lost_lists() {
    let mut r = report(vec![check(
        "lost-writes",
        Verdict::Fail,
        "2 lost",
        json!({"lost": [{"key": "a"}, {"key": "b"}]}),
    )]);
    let s = r.summary();
    assert_eq!(s.lost_writes, Some(2));
    assert_eq!(s.linearizable, Linearizable::NotChecked);
    assert_eq!(
        s.availability,
        Some(0.7),
        "ok / ops without an availability check"
    );
    r.history.ops.clear();
    r.checks.clear();
    let s = r.summary();
    assert_eq!(
        (s.lost_writes, s.availability, s.p50_ms),
        (None, None, None)
    );
}

#[test]
fn top_errors_keep_the_five_most_frequent_in_a_stable_order() {
    let mut r = report(vec![]);
    r.history.ops = (0..30)
        .map(|i| {
            // e0 ×1 .. e5 ×6 (then e0 again), plus unlabelled failures.
            let msg = format!("e{}", i % 7);
            let err = (i % 7 != 6).then_some(msg.as_str());
            op(i, "node0", i, 1, Outcome::Fail, err)
        })
        .collect();
    let top = r.summary().top_errors;
    assert_eq!(top.len(), 5);
    // 30 ops over 7 labels: e0 and e1 get 5, the rest 4; ties sorted by message.
    let names: Vec<&str> = top.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(names, ["e0", "e1", "(no message)", "e2", "e3"]);
    assert_eq!(top[0].count, 5);
}

#[test]
fn passing_table_has_every_headline_row_and_one_line_per_check() {
    let mut r = report(passing_checks());
    // The history's windows are listed, not the nemesis log.
    r.faults_applied = vec!["0.650 s partition".into(), "1.000 s heal".into()];
    assert!(r.passed(), "an unknown verdict does not fail the run");
    let t = r.table();
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(
        lines[0],
        "scenario      partition-minority (seed 42, 3 nodes, started 2026-11-27T10:00:00Z, 2.0 s)"
    );
    assert_eq!(lines[1], "verdict       PASS");
    assert_eq!(lines[2], "faults        1");
    assert_eq!(
        lines[3],
        "              0.7 s .. 1.0 s: partition {node1} | {node0,node2}"
    );
    assert_eq!(lines[4], "ops           10 (ok 7, fail 2, unknown 1)");
    assert_eq!(lines[5], "errors        3");
    assert_eq!(lines[6], "                    2  connection refused");
    assert_eq!(lines[7], "                    1  timeout");
    assert_eq!(lines[8], "lost writes   0");
    assert_eq!(lines[9], "linearizable  yes");
    assert_eq!(lines[10], "availability  70.0 %");
    assert_eq!(lines[11], "latency       p50 3.00 ms, p99 7.00 ms");
    assert_eq!(lines[12], "");
    assert_eq!(lines[13], "CHECK         VERDICT  SUMMARY");
    assert_eq!(
        lines[14],
        "lost-writes   pass     0 of 4 acknowledged writes lost"
    );
    assert_eq!(lines[17], "deadlines     unknown  1 op never completed");
    assert_eq!(lines.len(), 18, "{t}");
}

#[test]
fn failing_table_says_fail_names_the_failed_check_and_falls_back_to_the_nemesis_log() {
    let mut r = report(vec![
        check(
            "lost-writes",
            Verdict::Fail,
            "3 acknowledged writes lost",
            json!({"lost": 3}),
        ),
        check(
            "linearizable",
            Verdict::Fail,
            "register s1/k: no linearization",
            json!({}),
        ),
        check(
            "a-much-longer-checker-name",
            Verdict::Pass,
            "fine",
            json!({}),
        ),
    ]);
    r.history.faults.clear();
    r.faults_applied = vec!["0.650 s partition {node1}".into(), "1.000 s heal".into()];
    assert!(!r.passed());
    let t = r.table();
    assert!(t.contains("\nverdict       FAIL\n"), "{t}");
    // No fault window in the history: the nemesis log is listed instead.
    assert!(
        t.contains("\nfaults        2\n              0.650 s partition {node1}\n              1.000 s heal\n"),
        "{t}"
    );
    assert!(t.contains("\nlost writes   3\n"), "{t}");
    assert!(t.contains("\nlinearizable  no\n"), "{t}");
    // The check column widens to the longest name.
    assert!(
        t.contains("\nCHECK                       VERDICT  SUMMARY\n"),
        "{t}"
    );
    assert!(
        t.contains("\nlost-writes                 FAIL     3 acknowledged writes lost\n"),
        "{t}"
    );
    assert!(
        t.contains("\nlinearizable                FAIL     register s1/k: no linearization\n"),
        "{t}"
    );
}

#[test]
fn table_neutralises_control_characters_and_cuts_long_messages() {
    let mut r = report(vec![]);
    let evil = format!("boom\x1b[31m\nsecond line {}", "x".repeat(300));
    r.history.ops[0] = op(0, "node0", 0, 1, Outcome::Fail, Some(&evil));
    let t = r.table();
    assert!(!t.contains('\x1b'), "{t:?}");
    let line = t.lines().find(|l| l.contains("boom")).expect("error line");
    assert!(line.ends_with('…'), "{line}");
    assert!(line.contains("boom [31m second line x"), "{line}");
    assert!(
        line.chars().count() < 14 + 9 + MAX_MESSAGE_CHARS + 1,
        "{line}"
    );
}

#[test]
fn html_escapes_everything_that_came_from_the_run() {
    let mut r = report(vec![check(
        "lost-writes",
        Verdict::Fail,
        "<b>lost</b>",
        json!({"lost": 1, "note": "</pre><script>x()</script>"}),
    )]);
    r.scenario = "<script>alert(1)</script>".into();
    r.history.ops[0] = op(
        0,
        "node\"'<img src=x>",
        0,
        1,
        Outcome::Fail,
        Some("a & b <c>"),
    );
    r.history.faults[0].name = "<i>partition</i>".into();
    r.faults_applied = vec!["<u>applied</u>".into()];
    let html = r.html();
    for raw in [
        "<script",
        "<img",
        "<b>lost",
        "<i>partition",
        "<u>applied",
        "</pre><script",
    ] {
        assert!(!html.contains(raw), "raw {raw:?} in the page");
    }
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("node&quot;&#39;&lt;img src=x&gt;"));
    assert!(html.contains("a &amp; b &lt;c&gt;"));
    assert!(html.contains("&lt;i&gt;partition&lt;/i&gt;"));
    assert_eq!(
        html::escape(r#"<a href="x">'&'</a>"#),
        "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
    );
}

#[test]
fn html_is_self_contained_and_has_the_three_plots() {
    let html = report(passing_checks()).html();
    for id in ["plot-throughput", "plot-latency", "plot-availability"] {
        assert!(html.contains(&format!(r#"<svg id="{id}""#)), "{id}");
    }
    assert_eq!(html.matches("<svg ").count(), 3);
    assert!(html.contains(r#"<div class="verdict pass" id="verdict">PASS</div>"#));
    // The only URL is the SVG namespace, which no browser fetches.
    let urls = html.matches("://").count();
    assert_eq!(urls, html.matches("http://www.w3.org/2000/svg").count());
    assert!(!html.contains("url("));
    assert!(!html.contains("<script"));
    assert!(!html.contains("<link"));
    assert!(html.contains("First 10 operations (of 10)"));
}

#[test]
fn an_empty_run_still_renders_three_plots_without_nan() {
    let r = Report {
        scenario: "smoke".into(),
        seed: 0,
        nodes: 1,
        started_at: rfc3339_utc(UNIX_EPOCH),
        history: History::default(),
        checks: vec![],
        faults_applied: vec![],
    };
    assert!(r.passed(), "no check, no failure");
    let html = r.html();
    assert_eq!(html.matches("<svg ").count(), 3);
    assert!(
        !html.contains("NaN") && !html.contains("inf\"") && !html.contains("inf,"),
        "{html}"
    );
    assert!(html.contains("no operations"));
    assert!(html.contains("No checker ran."));
    assert!(html.contains("No fault was injected."));
    let t = r.table();
    assert!(
        t.contains("\nops           0 (ok 0, fail 0, unknown 0)\n"),
        "{t}"
    );
    assert!(t.contains("\navailability  n/a\n"), "{t}");
    assert!(t.contains("\nlatency       p50 n/a, p99 n/a\n"), "{t}");
    assert!(t.contains("\nlost writes   not checked\n"), "{t}");
    assert!(t.contains("\nlinearizable  not checked\n"), "{t}");
}

#[test]
fn json_round_trips_and_carries_passed_and_summary() {
    let mut r = report(passing_checks());
    r.faults_applied = vec!["kill node1".into()];
    let dir = std::env::temp_dir().join(format!(
        "erlmcp-chaos-report-json-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("report.json");
    r.write_json(&path).expect("write");
    let back = Report::read_json(&path).expect("read");
    assert_eq!(back, r);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    assert_eq!(v["passed"], json!(true));
    assert_eq!(v["summary"]["ok"], json!(7));
    assert_eq!(v["summary"]["linearizable"], json!("yes"));
    assert_eq!(v["scenario"], json!("partition-minority"));
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn read_json_rejects_garbage_as_invalid_data() {
    let dir = std::env::temp_dir().join(format!("erlmcp-chaos-report-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("report.json");
    std::fs::write(&path, "{not json").expect("write");
    let err = Report::read_json(&path).expect_err("garbage");
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn rfc3339_formats_utc_dates() {
    assert_eq!(rfc3339_utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
    assert_eq!(
        rfc3339_utc(UNIX_EPOCH + Duration::from_secs(951_782_400)),
        "2000-02-29T00:00:00Z"
    );
    assert_eq!(
        rfc3339_utc(UNIX_EPOCH + Duration::from_secs(1_798_760_399)),
        "2026-12-31T23:39:59Z"
    );
}
