//! `report.html`: one self-contained page (inline CSS and SVG, no script, no external URL).
//!
//! Every piece of text that came from the run (scenario, node names, keys, values, errors,
//! check summaries and details) goes through [`escape`]: a node or a server under test must not
//! be able to inject markup into the page an engineer opens.

use std::fmt::Write as _;

use super::stats;
use super::svg::{self, BarGroup, LineChart, Series, Shade};
use super::{Report, millis, palette, percent, secs, verdict_str};
use crate::check::{Bucket, Verdict};
use crate::history::Outcome;

/// How many operations the collapsed operation table lists.
const OPS_LISTED: usize = 200;

/// Check details longer than this (pretty JSON) are cut on the page; report.json has them whole.
const MAX_DETAILS_CHARS: usize = 20_000;

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// The page's stylesheet. Light background, white cards; verdict colours from the palette.
fn css() -> String {
    format!(
        r#"
*{{box-sizing:border-box}}
body{{margin:0;background:#ffffff;color:#1f2328;font:14px/1.45 "DejaVu Sans",system-ui,-apple-system,"Segoe UI",sans-serif}}
main{{max-width:1200px;margin:0 auto;padding:20px 24px 40px}}
header.top{{display:flex;align-items:center;justify-content:space-between;gap:24px;border-bottom:2px solid #d0d7de;padding-bottom:14px;margin-bottom:16px}}
h1{{font-size:26px;margin:0 0 4px}}
h2{{font-size:16px;margin:0 0 8px}}
.meta{{color:#57606a;margin:0}}
.verdict{{font-size:40px;font-weight:800;letter-spacing:2px;color:#fff;padding:6px 28px;border-radius:10px}}
.verdict.pass{{background:{pass}}}
.verdict.fail{{background:{fail}}}
.grid{{display:grid;grid-template-columns:minmax(0,5fr) minmax(0,7fr);gap:16px;margin-bottom:16px}}
.card{{border:1px solid #d0d7de;border-radius:8px;padding:12px 16px;margin-bottom:16px;background:#fff}}
.grid .card{{margin-bottom:0}}
table{{border-collapse:collapse;width:100%}}
td,th{{text-align:left;padding:3px 8px 3px 0;vertical-align:top}}
table.kv th{{color:#57606a;font-weight:600;white-space:nowrap;width:1%;padding-right:16px}}
table.faults{{width:auto}}
table.faults th{{color:#57606a;font-weight:600}}
table.faults td,table.faults th{{padding-right:32px}}
table.checks td:first-child{{font-weight:600;white-space:nowrap}}
table.ops{{width:auto;font:12px/1.35 "DejaVu Sans Mono",ui-monospace,monospace}}
table.ops th{{border-bottom:1px solid #d0d7de;position:sticky;top:0;background:#fff}}
table.ops td{{padding-right:12px;white-space:nowrap}}
.num{{text-align:right}}
.badge{{display:inline-block;min-width:64px;text-align:center;border-radius:4px;padding:0 6px;font-weight:700;font-size:12px;color:#fff}}
.badge.pass{{background:{pass}}}
.badge.fail{{background:{fail}}}
.badge.unknown{{background:#9a6700}}
.errs{{margin:2px 0 0;padding-left:18px;color:#57606a}}
.errs li{{word-break:break-word}}
.o-ok{{color:#1a7f37}}.o-fail{{color:#cf222e}}.o-unknown{{color:#9a6700}}
svg.plot{{width:100%;height:auto;display:block}}
svg .grid{{stroke:#eaeef2;stroke-width:1}}
svg .axis{{stroke:#57606a;stroke-width:1}}
svg .frame{{fill:none;stroke:#8c959f;stroke-width:1}}
svg text{{font-family:"DejaVu Sans",sans-serif;fill:#1f2328}}
svg .tick{{font-size:11px;fill:#57606a}}
svg .tick.group{{font-size:12px;fill:#1f2328;font-weight:600}}
svg .note{{font-size:10px;fill:#57606a}}
svg .legend{{font-size:12px}}
svg .axis-label{{font-size:12px;fill:#57606a}}
svg .bar-value{{font-size:11px;font-weight:600}}
svg .bar-value.inside{{fill:#fff}}
svg .shade-label{{font-size:11px;font-weight:600;fill:#8a3b00;paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round}}
.caption{{color:#57606a;font-size:12px;margin:4px 0 0}}
details summary{{cursor:pointer;font-weight:600}}
pre{{background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;padding:8px;overflow:auto;max-height:360px;font-size:12px}}
.scroll{{overflow:auto;max-height:600px;margin-top:8px}}
footer{{color:#8c959f;font-size:12px;margin-top:8px}}
"#,
        pass = palette::PASS_BADGE,
        fail = palette::FAIL_BADGE,
    )
}

/// The whole page.
pub(crate) fn render(r: &Report) -> String {
    let s = r.summary();
    let h = &r.history;
    let passed = r.passed();
    let verdict = if passed { "PASS" } else { "FAIL" };
    let span = stats::span_us(h);
    let width = stats::bucket_width_us(span);
    let buckets = stats::buckets(h, width);
    let shades: Vec<Shade> = h
        .faults
        .iter()
        .map(|f| Shade {
            start: f.start_us as f64 / 1e6,
            end: f.end_us as f64 / 1e6,
            label: f.name.clone(),
        })
        .collect();

    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>erlmcp-chaos: {scenario} — {verdict}</title><style>{css}</style></head>
<body><main>
<header class="top"><div><h1>{scenario}</h1><p class="meta">seed {seed} · {nodes} nodes · started {started} · {duration} · {ops} operations</p></div>
<div class="verdict {class}" id="verdict">{verdict}</div></header>
"#,
        scenario = escape(&r.scenario),
        css = css(),
        seed = r.seed,
        nodes = r.nodes,
        started = escape(&r.started_at),
        duration = secs(h.duration_us),
        ops = s.ops,
        class = if passed { "pass" } else { "fail" },
    );

    // Summary and checks side by side: the verdict's reasons sit next to the figures.
    out.push_str(r#"<section class="grid"><div class="card"><h2>Summary</h2><table class="kv">"#);
    let kv = |out: &mut String, k: &str, v: &str| {
        let _ = write!(out, "<tr><th>{}</th><td>{v}</td></tr>", escape(k));
    };
    kv(&mut out, "scenario", &escape(&r.scenario));
    let fault_lines = r.fault_lines();
    let mut faults = fault_lines.len().to_string();
    if !fault_lines.is_empty() {
        faults.push_str(r#"<ul class="errs">"#);
        for f in &fault_lines {
            let _ = write!(faults, "<li>{}</li>", escape(f));
        }
        faults.push_str("</ul>");
    }
    kv(&mut out, "faults", &faults);
    kv(
        &mut out,
        "ops",
        &format!(
            r#"{} (<span class="o-ok">ok {}</span>, <span class="o-fail">fail {}</span>, <span class="o-unknown">unknown {}</span>)"#,
            s.ops, s.ok, s.fail, s.unknown
        ),
    );
    let mut errors = s.errors.to_string();
    if !s.top_errors.is_empty() {
        errors.push_str(r#"<ul class="errs">"#);
        for e in &s.top_errors {
            let _ = write!(errors, "<li>{} × {}</li>", e.count, escape(&e.message));
        }
        errors.push_str("</ul>");
    }
    kv(&mut out, "errors", &errors);
    kv(
        &mut out,
        "lost writes",
        &s.lost_writes
            .map_or_else(|| "not checked".to_string(), |n| n.to_string()),
    );
    kv(&mut out, "linearizable", s.linearizable.as_str());
    kv(&mut out, "availability", &percent(s.availability));
    kv(
        &mut out,
        "latency",
        &format!("p50 {} · p99 {}", millis(s.p50_ms), millis(s.p99_ms)),
    );
    out.push_str("</table></div>");

    out.push_str(r#"<div class="card"><h2>Checks</h2>"#);
    if r.checks.is_empty() {
        out.push_str(r#"<p class="meta">No checker ran.</p>"#);
    } else {
        out.push_str(r#"<table class="checks">"#);
        for c in &r.checks {
            let class = match c.verdict {
                Verdict::Pass => "pass",
                Verdict::Fail => "fail",
                Verdict::Unknown => "unknown",
            };
            let _ = write!(
                out,
                r#"<tr><td>{}</td><td><span class="badge {class}">{}</span></td><td>{}</td></tr>"#,
                escape(&c.name),
                verdict_str(c.verdict),
                escape(&c.summary),
            );
        }
        out.push_str("</table>");
        for c in &r.checks {
            let mut details =
                serde_json::to_string_pretty(&c.details).unwrap_or_else(|e| e.to_string());
            if details.len() > MAX_DETAILS_CHARS {
                let cut = (0..=MAX_DETAILS_CHARS)
                    .rev()
                    .find(|i| details.is_char_boundary(*i))
                    .unwrap_or(0);
                details.truncate(cut);
                details.push_str("\n… (cut; report.json has it all)");
            }
            let _ = write!(
                out,
                "<details><summary>{} details</summary><pre>{}</pre></details>",
                escape(&c.name),
                escape(&details)
            );
        }
    }
    out.push_str("</div></section>\n");

    // Plot 1: throughput by outcome.
    let mid = |b: &Bucket| (b.start_us as f64 + width as f64 / 2.0) / 1e6;
    // The last bucket may be cut short by the end of the run: divide by the time it covers,
    // or a full-speed run would seem to slow down at the very end.
    let rate = |b: &Bucket, n: u64| {
        let covered = width.min(span.saturating_sub(b.start_us)).max(1);
        Some((mid(b), n as f64 / (covered as f64 / 1e6)))
    };
    let throughput = svg::line_chart(&LineChart {
        id: "plot-throughput",
        title: "Throughput (ops/s) over time",
        x_label: "time since start (s)",
        y_label: "ops/s",
        x_max: span as f64 / 1e6,
        height: 320.0,
        series: vec![
            Series {
                name: "ok",
                color: palette::OK,
                points: buckets.iter().map(|b| rate(b, b.ok)).collect(),
            },
            Series {
                name: "fail",
                color: palette::FAIL,
                points: buckets.iter().map(|b| rate(b, b.fail)).collect(),
            },
            Series {
                name: "unknown",
                color: palette::UNKNOWN,
                points: buckets.iter().map(|b| rate(b, b.unknown)).collect(),
            },
        ],
        shades: &shades,
    });
    let bucket_label = if width >= 1_000_000 {
        format!("{} s", width as f64 / 1e6)
    } else {
        format!("{} ms", width as f64 / 1e3)
    };
    let _ = writeln!(
        out,
        r#"<section class="card"><h2>Throughput (ops/s) over time</h2>{throughput}<p class="caption">Operations by the time they were invoked, in {bucket_label} buckets, by outcome. Shaded: fault windows.</p></section>"#
    );

    // Plot 2: latency.
    let lat = |v: Option<u64>, b: &Bucket| v.map(|us| (mid(b), us as f64 / 1e3));
    let latency = svg::line_chart(&LineChart {
        id: "plot-latency",
        title: "Latency over time",
        x_label: "time since start (s)",
        y_label: "latency (ms)",
        x_max: span as f64 / 1e6,
        height: 300.0,
        series: vec![
            Series {
                name: "p50",
                color: palette::P50,
                points: buckets.iter().map(|b| lat(b.p50_us, b)).collect(),
            },
            Series {
                name: "p99",
                color: palette::P99,
                points: buckets.iter().map(|b| lat(b.p99_us, b)).collect(),
            },
        ],
        shades: &shades,
    });
    let _ = writeln!(
        out,
        r#"<section class="card"><h2>Latency over time</h2>{latency}<p class="caption">Latency of answered operations (ok or fail; unknown ones, mostly timeouts, are left out) per {bucket_label} bucket. Gaps: no answered operation in the bucket.</p></section>"#
    );

    // Plot 3: availability per node.
    let nodes = stats::per_node(h);
    let mut series = vec![("whole run", palette::BAR_ALL)];
    if !h.faults.is_empty() {
        series.push(("during faults", palette::BAR_FAULT));
    }
    let groups: Vec<BarGroup> = nodes
        .iter()
        .map(|n| {
            let mut values = vec![n.share()];
            if !h.faults.is_empty() {
                values.push(n.fault_share());
            }
            BarGroup {
                label: n.node.clone(),
                values,
                note: format!("{} ok of {} ops", n.ok, n.ops),
            }
        })
        .collect();
    let bars = svg::bar_chart(
        "plot-availability",
        "Availability per node",
        &series,
        &groups,
    );
    let _ = writeln!(
        out,
        r#"<section class="card"><h2>Availability per node</h2>{bars}<p class="caption">Share of the operations sent to each node that succeeded (ok), over the whole run and among those invoked during a fault window.</p></section>"#
    );

    // Faults.
    out.push_str(r#"<section class="card" id="faults"><h2>Faults</h2>"#);
    if h.faults.is_empty() && r.faults_applied.is_empty() {
        out.push_str(r#"<p class="meta">No fault was injected.</p>"#);
    }
    if !h.faults.is_empty() {
        out.push_str(
            r#"<table class="faults"><tr><th>start</th><th>end</th><th>kind</th><th>targets</th><th>fault</th></tr>"#,
        );
        for f in &h.faults {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                secs(f.start_us),
                secs(f.end_us),
                escape(&f.kind),
                escape(&f.targets.join(", ")),
                escape(&f.name),
            );
        }
        out.push_str("</table>");
    }
    if !r.faults_applied.is_empty() {
        out.push_str("<details><summary>As applied</summary><pre>");
        for line in &r.faults_applied {
            let _ = writeln!(out, "{}", escape(line));
        }
        out.push_str("</pre></details>");
    }
    out.push_str("</section>\n");

    // The first operations, collapsed: enough to see what the workload did.
    let listed = h.ops.len().min(OPS_LISTED);
    let _ = write!(
        out,
        r#"<details class="card" id="ops"><summary>First {listed} operations (of {})</summary><div class="scroll"><table class="ops"><tr><th class="num">id</th><th class="num">proc</th><th>node</th><th>via</th><th>key</th><th>op</th><th>value</th><th class="num">invoke (ms)</th><th class="num">latency (ms)</th><th>outcome</th><th>error</th></tr>"#,
        h.ops.len()
    );
    for op in h.ops.iter().take(OPS_LISTED) {
        let (outcome, class) = match op.outcome {
            Outcome::Ok => ("ok", "o-ok"),
            Outcome::Fail => ("fail", "o-fail"),
            Outcome::Unknown => ("unknown", "o-unknown"),
        };
        let latency = op.complete_us.map_or_else(
            || "—".to_string(),
            |c| format!("{:.2}", c.saturating_sub(op.invoke_us) as f64 / 1e3),
        );
        let kind = match op.kind {
            crate::history::OpKind::Write => "write",
            crate::history::OpKind::Read => "read",
        };
        let _ = write!(
            out,
            r#"<tr><td class="num">{}</td><td class="num">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{kind}</td><td>{}</td><td class="num">{:.2}</td><td class="num">{latency}</td><td class="{class}">{outcome}</td><td>{}</td></tr>"#,
            op.id,
            op.process,
            escape(&op.node),
            op.transport.as_str(),
            escape(&op.key),
            escape(op.value.as_deref().unwrap_or("—")),
            op.invoke_us as f64 / 1e3,
            escape(op.error.as_deref().unwrap_or("")),
        );
    }
    out.push_str("</table></div></details>\n");

    let _ = write!(
        out,
        "<footer>erlmcp-chaos · request deadline {} ms · the whole run is in report.json</footer>\n</main></body></html>\n",
        h.deadline_us as f64 / 1e3,
    );
    out
}
