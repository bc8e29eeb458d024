//! `erlmcp certs init` against the real binary: the files it writes, what it says, its refusals.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::bin;
use erlmcp_net::pki::NodeIdentity;

/// A directory path under the system temp dir, unique to this test run, removed on drop (the
/// directory itself is left for `certs init` to create).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "erlmcp-certs-cli-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        Self(p)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn certs(args: &[&str]) -> Output {
    Command::new(bin())
        .arg("certs")
        .args(args)
        .output()
        .expect("run erlmcp certs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn init_writes_a_ca_and_three_nodes_by_default_and_says_how_to_use_them() {
    let dir = TempDir::new();
    let out = certs(&["init", "--out", dir.path()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        files(&dir.0),
        [
            "ca.key",
            "ca.pem",
            "node0.key",
            "node0.pem",
            "node1.key",
            "node1.pem",
            "node2.key",
            "node2.pem"
        ]
    );
    for f in ["ca.pem", "ca.key", "node0.pem", "node2.key"] {
        assert!(
            stdout.contains(&dir.0.join(f).display().to_string()),
            "names {f}: {stdout}"
        );
    }
    assert!(
        stdout.contains(&format!("erlmcp node --name node0 --certs {}", dir.path())),
        "{stdout}"
    );
    assert!(stdout.contains("erlmcp connect quic://"), "{stdout}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for key in ["ca.key", "node0.key", "node1.key", "node2.key"] {
            let mode = std::fs::metadata(dir.0.join(key))
                .expect("key")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{key}");
        }
    }
    for n in ["node0", "node1", "node2"] {
        let id = NodeIdentity::load(&dir.0, n).expect("the node's identity loads");
        assert_eq!((id.ca.len(), id.chain.len()), (1, 1));
    }
}

#[test]
fn init_takes_names_or_a_count_and_extra_sans() {
    let dir = TempDir::new();
    let out = certs(&[
        "init",
        "--out",
        dir.path(),
        "--names",
        "alpha,beta",
        "--san",
        "10.0.0.5,mcp.example",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        files(&dir.0),
        [
            "alpha.key",
            "alpha.pem",
            "beta.key",
            "beta.pem",
            "ca.key",
            "ca.pem"
        ]
    );

    let counted = TempDir::new();
    let out = certs(&["init", "--out", counted.path(), "--nodes", "1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        files(&counted.0),
        ["ca.key", "ca.pem", "node0.key", "node0.pem"]
    );

    let out = certs(&["init", "--out", dir.path(), "--nodes", "2", "--names", "x"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("cannot be used with"),
        "{}",
        text(&out.stderr)
    );

    let bad = TempDir::new();
    let out = certs(&["init", "--out", bad.path(), "--san", "not a host"]);
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("invalid subject alternative name \"not a host\""),
        "{err}"
    );
    assert!(!bad.0.exists(), "a refused run writes nothing");
}

#[test]
fn init_refuses_to_overwrite_without_force_and_adds_nodes_to_an_existing_ca() {
    let dir = TempDir::new();
    assert!(
        certs(&["init", "--out", dir.path(), "--nodes", "2"])
            .status
            .success()
    );
    let ca = std::fs::read(dir.0.join("ca.pem")).expect("ca.pem");
    let node0 = std::fs::read(dir.0.join("node0.pem")).expect("node0.pem");

    let out = certs(&["init", "--out", dir.path(), "--nodes", "2"]);
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("node0.pem already exists"), "{err}");
    assert!(err.contains("--force"), "{err}");
    assert!(out.stdout.is_empty());
    assert_eq!(
        std::fs::read(dir.0.join("node0.pem")).expect("node0"),
        node0
    );

    // A new name: issued by the CA already there.
    let out = certs(&["init", "--out", dir.path(), "--names", "node2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("kept the existing cluster CA"));
    assert_eq!(std::fs::read(dir.0.join("ca.pem")).expect("ca"), ca);
    let a = NodeIdentity::load(&dir.0, "node0").expect("node0");
    let b = NodeIdentity::load(&dir.0, "node2").expect("node2");
    assert_eq!(a.ca, b.ca);

    // --force: everything anew.
    let out = certs(&["init", "--out", dir.path(), "--nodes", "2", "--force"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_ne!(std::fs::read(dir.0.join("ca.pem")).expect("ca"), ca);
    assert_ne!(
        std::fs::read(dir.0.join("node0.pem")).expect("node0"),
        node0
    );
}

#[test]
fn init_fails_clearly_on_an_unwritable_directory() {
    let dir = TempDir::new();
    std::fs::write(&dir.0, "a file, not a directory").expect("write");
    let target = dir.0.join("sub");
    let out = certs(&["init", "--out", target.to_str().expect("utf-8")]);
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("cannot write {}", target.display())),
        "{err}"
    );
    let _ = std::fs::remove_file(&dir.0);
}
