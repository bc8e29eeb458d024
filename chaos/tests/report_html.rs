//! `report.html` renders in headless Chromium with its plots visible.
//!
//! Builds a synthetic run (3 nodes, 20 s, 3000 operations, node1 killed for 5 s during which
//! its operations fail), writes the report, screenshots it with headless Chromium and checks
//! the pixels: the page is not blank, and the plot colours (fault shading, throughput and
//! latency lines, the verdict badge) are on screen. The screenshot is kept at
//! `target/chaos-report-screenshot.png` and its path printed, so a person can look at it.
//!
//! Chromium is required (Debian package `chromium`): without it the test fails and says how to
//! install it, because a skipped test would hide a report that no longer renders.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use erlmcp_chaos::check::{CheckResult, Verdict};
use erlmcp_chaos::history::{FaultWindow, FinalRead, History, Op, OpKind, Outcome, Transport};
use erlmcp_chaos::report::{Report, palette, rfc3339_utc};
use serde_json::json;

/// Viewport of the screenshot; tall enough for the header, summary and all three plots.
const WIDTH: u32 = 1280;
const HEIGHT: u32 = 2000;

/// A small deterministic generator (SplitMix64), so the synthetic run is the same every time.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

/// 3 nodes, 20 s, 3000 operations; node1 is killed from 7 s to 12 s (its operations are refused
/// or time out, the others slow down) and node2 gets 200 ms of delay from 15 s to 17 s.
fn synthetic_report() -> Report {
    const KILL: (u64, u64) = (7_000_000, 12_000_000);
    const DELAY: (u64, u64) = (15_000_000, 17_000_000);
    const DEADLINE_US: u64 = 1_000_000;
    let mut rng = Rng(7);
    let mut ops = Vec::new();
    for id in 0..3000u64 {
        let invoke_us = id * 20_000_000 / 3000 + rng.range(0, 5_000);
        let node_i = rng.range(0, 3);
        let node = format!("node{node_i}");
        let in_kill = (KILL.0..KILL.1).contains(&invoke_us);
        let in_delay = (DELAY.0..DELAY.1).contains(&invoke_us);
        let write = id % 3 != 0;
        let (outcome, latency, error) = if in_kill && node_i == 1 {
            if rng.range(0, 10) < 7 {
                (
                    Outcome::Fail,
                    rng.range(100, 900),
                    Some("connection refused"),
                )
            } else {
                (Outcome::Unknown, DEADLINE_US, Some("deadline exceeded"))
            }
        } else if in_kill {
            // The survivors re-elect and slow down; a few requests time out.
            if rng.range(0, 100) < 3 {
                (Outcome::Unknown, DEADLINE_US, Some("deadline exceeded"))
            } else {
                (Outcome::Ok, rng.range(8_000, 60_000), None)
            }
        } else if in_delay && node_i == 2 {
            (Outcome::Ok, rng.range(200_000, 260_000), None)
        } else if rng.range(0, 1000) < 4 {
            (
                Outcome::Fail,
                rng.range(500, 2_000),
                Some("session not found"),
            )
        } else {
            (Outcome::Ok, rng.range(1_500, 9_000), None)
        };
        let key = format!("session{}/k{}", id % 16, id % 4);
        ops.push(Op {
            id,
            process: u32::try_from(id % 24).expect("small"),
            node,
            transport: [Transport::Tcp, Transport::Http, Transport::Quic][(id % 3) as usize],
            key,
            kind: if write { OpKind::Write } else { OpKind::Read },
            value: (write || outcome == Outcome::Ok).then(|| format!("v{id}")),
            invoke_us,
            complete_us: Some(invoke_us + latency),
            outcome,
            error: error.map(str::to_string),
        });
    }
    let final_reads = (0..16)
        .flat_map(|s| (0..4).map(move |k| format!("session{s}/k{k}")))
        .map(|key| FinalRead {
            key,
            value: None,
            ok: true,
            error: None,
        })
        .collect();
    let faults = vec![
        FaultWindow {
            name: "kill -9 node1".into(),
            kind: "kill".into(),
            targets: vec!["node1".into()],
            start_us: KILL.0,
            end_us: KILL.1,
        },
        FaultWindow {
            name: "delay 200ms <node2>".into(),
            kind: "latency".into(),
            targets: vec!["node2".into()],
            start_us: DELAY.0,
            end_us: DELAY.1,
        },
    ];
    let checks = vec![
        CheckResult {
            name: "lost-writes".into(),
            verdict: Verdict::Pass,
            summary: "0 of 1912 acknowledged writes lost".into(),
            details: json!({"lost": 0, "acknowledged": 1912}),
        },
        CheckResult {
            name: "linearizable".into(),
            verdict: Verdict::Unknown,
            summary: "62 registers linearizable, 2 undecided (search capped at 100000 steps)"
                .into(),
            details: json!({"undecided": ["session3/k1", "session9/k2"]}),
        },
        CheckResult {
            name: "deadlines".into(),
            verdict: Verdict::Pass,
            summary: "every request answered within 1000 ms".into(),
            details: json!({}),
        },
        CheckResult {
            name: "availability".into(),
            verdict: Verdict::Fail,
            summary: "kill -9 node1: 71.2% < 90% required".into(),
            details: json!({}),
        },
    ];
    Report {
        scenario: "node-kill".into(),
        seed: 7,
        nodes: 3,
        started_at: rfc3339_utc(SystemTime::now()),
        history: History {
            ops,
            final_reads,
            faults,
            deadline_us: DEADLINE_US,
            duration_us: 20_000_000,
        },
        checks,
        faults_applied: vec![
            "7.000 s  kill -9 node1 (pid 4242)".into(),
            "12.000 s restart node1".into(),
            "15.000 s delay 200ms on links to node2".into(),
            "17.000 s heal node2".into(),
        ],
    }
}

/// The Chromium binary on PATH, or a failure that says how to install it.
fn chromium() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser"] {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "chromium is not installed: this test renders report.html in headless Chromium. \
         Install it with `apt-get install -y chromium` (Debian package) and run again."
    );
}

/// Runs headless Chromium on `url` with `args`, bounded by a timeout (a wedged browser must
/// fail the test, not hang CI); returns its stdout.
fn run_chromium(chromium: &Path, profile: &Path, args: &[String], url: &str) -> String {
    let out = Command::new("timeout")
        .arg("120")
        .arg(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--force-device-scale-factor=1",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .expect("run chromium (through timeout)");
    assert!(
        out.status.success(),
        "chromium failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `#rrggbb` to bytes.
fn rgb(hex: &str) -> [u8; 3] {
    let v = u32::from_str_radix(hex.trim_start_matches('#'), 16).expect("hex colour");
    [(v >> 16) as u8, (v >> 8) as u8, v as u8]
}

/// `color` at `opacity` over white, as the browser composites the fault shading.
fn over_white(color: [u8; 3], opacity: f64) -> [u8; 3] {
    color.map(|c| (255.0 - opacity * (255.0 - f64::from(c))).round() as u8)
}

/// A decoded screenshot, RGB.
struct Image {
    width: u32,
    height: u32,
    pixels: Vec<[u8; 3]>,
}

impl Image {
    fn load(path: &Path) -> Image {
        let mut decoder = png::Decoder::new(BufReader::new(File::open(path).expect("open png")));
        decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
        let mut reader = decoder.read_info().expect("png header");
        let mut buf = vec![0; reader.output_buffer_size().expect("png size")];
        let info = reader.next_frame(&mut buf).expect("png frame");
        let channels = info.color_type.samples();
        assert!(
            channels >= 3,
            "unexpected PNG colour type {:?}",
            info.color_type
        );
        let pixels = buf[..info.buffer_size()]
            .chunks_exact(channels)
            .map(|p| [p[0], p[1], p[2]])
            .collect();
        Image {
            width: info.width,
            height: info.height,
            pixels,
        }
    }

    /// Pixels within `tol` of `color` on every channel.
    fn count_near(&self, color: [u8; 3], tol: u8) -> usize {
        self.pixels
            .iter()
            .filter(|p| p.iter().zip(color).all(|(a, b)| a.abs_diff(b) <= tol))
            .count()
    }

    /// Rows (y) holding at least one pixel within `tol` of `color`.
    fn rows_with(&self, color: [u8; 3], tol: u8) -> Vec<u32> {
        let w = self.width as usize;
        (0..self.height)
            .filter(|y| {
                let row = &self.pixels[*y as usize * w..(*y as usize + 1) * w];
                row.iter()
                    .any(|p| p.iter().zip(color).all(|(a, b)| a.abs_diff(b) <= tol))
            })
            .collect()
    }
}

#[test]
fn report_html_renders_in_headless_chromium_with_its_plots_visible() {
    let chromium = chromium();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!(
        "erlmcp-chaos-report-html-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let report = synthetic_report();
    assert!(!report.passed(), "the availability check failed");
    let html_path = dir.join("report.html");
    report.write_html(&html_path).expect("write report.html");
    report
        .write_json(dir.join("report.json"))
        .expect("write report.json");
    let url = format!("file://{}", html_path.display());

    // The DOM as Chromium parsed it: the three plots are there, as SVG.
    let dom = run_chromium(
        &chromium,
        &dir.join("profile-dom"),
        &["--dump-dom".to_string()],
        &url,
    );
    assert_eq!(dom.matches("<svg").count(), 3, "three SVG plots in the DOM");
    for id in ["plot-throughput", "plot-latency", "plot-availability"] {
        assert!(
            dom.contains(&format!("<svg id=\"{id}\"")),
            "plot {id} in the DOM"
        );
    }
    assert!(dom.contains("Throughput (ops/s) over time"));
    assert!(
        dom.contains("delay 200ms &lt;node2&gt;"),
        "fault names escaped"
    );

    // The screenshot.
    let shot = dir.join("report.png");
    run_chromium(
        &chromium,
        &dir.join("profile-shot"),
        &[
            format!("--window-size={WIDTH},{HEIGHT}"),
            format!("--screenshot={}", shot.display()),
        ],
        &url,
    );
    assert!(
        shot.is_file(),
        "chromium wrote no screenshot at {}",
        shot.display()
    );
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    std::fs::create_dir_all(&target).expect("target dir");
    let kept = target.join("chaos-report-screenshot.png");
    std::fs::copy(&shot, &kept).expect("keep the screenshot");
    let kept = kept.canonicalize().unwrap_or(kept);
    println!("report.html: {}", html_path.display());
    println!("screenshot: {}", shot.display());
    println!("screenshot kept at: {}", kept.display());

    let img = Image::load(&shot);
    assert_eq!((img.width, img.height), (WIDTH, HEIGHT));
    let total = img.pixels.len();
    let non_white = img
        .pixels
        .iter()
        .filter(|p| p.iter().any(|c| *c < 245))
        .count();
    let share = non_white as f64 / total as f64;
    println!("non-white pixels: {:.1}%", share * 100.0);
    assert!(
        share > 0.04,
        "page looks blank: {:.1}% non-white",
        share * 100.0
    );

    // The plot colours are on screen in quantity: lines are long, shading covers whole bands.
    let shade = over_white(rgb(palette::SHADE), palette::SHADE_OPACITY);
    for (what, color, min) in [
        ("fault shading", shade, 20_000),
        ("ok throughput line", rgb(palette::OK), 800),
        ("fail throughput line", rgb(palette::FAIL), 150),
        ("p50 latency line", rgb(palette::P50), 800),
        ("p99 latency line", rgb(palette::P99), 800),
        ("availability bars", rgb(palette::BAR_ALL), 5_000),
        (
            "availability bars during faults",
            rgb(palette::BAR_FAULT),
            5_000,
        ),
        ("FAIL verdict badge", rgb(palette::FAIL_BADGE), 2_000),
    ] {
        let n = img.count_near(color, 3);
        println!("{what}: {n} pixels");
        assert!(
            n >= min,
            "{what}: {n} pixels of {color:?}, expected at least {min}"
        );
    }
    // Both time plots are shaded: the shading spans two separate bands of rows.
    let rows = img.rows_with(shade, 3);
    let bands = rows.windows(2).filter(|w| w[1] > w[0] + 1).count() + 1;
    assert!(
        bands >= 2,
        "fault shading in both time plots, found {bands} band(s)"
    );
    // And everything is above the bottom of the viewport: the availability bars are visible.
    let bar_rows = img.rows_with(rgb(palette::BAR_ALL), 3);
    assert!(bar_rows.last().is_some_and(|y| *y < HEIGHT - 10));

    // The browser profiles are large and of no further use; the page and its screenshot stay
    // (their paths are printed above) for a person to open.
    for profile in ["profile-dom", "profile-shot"] {
        std::fs::remove_dir_all(dir.join(profile)).ok();
    }
}
