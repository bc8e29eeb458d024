//! `erlmcp certs`: the certificates of a cluster (mutual TLS between nodes, TLS for MCP clients
//! over QUIC).
//!
//! `erlmcp certs init --out DIR` writes a cluster CA (`ca.pem`, `ca.key`) and a certificate and
//! key per node (`NAME.pem`, `NAME.key`; keys are readable by their owner only). Each node needs
//! `ca.pem` plus its own pair and runs with `--name NAME --certs DIR`; `ca.key` is only needed to
//! issue more node certificates (run `certs init` again with new `--names`: an existing CA in DIR
//! is kept). The layout and the certificates are described in
//! `erlmcp_net::pki`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use erlmcp_net::pki;

/// `erlmcp certs` flags.
#[derive(clap::Args, Debug)]
pub struct CertsArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: CertsCommand,
}

/// `erlmcp certs` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum CertsCommand {
    /// Create a cluster CA and node certificates in a directory.
    Init(InitArgs),
}

/// `erlmcp certs init` flags.
#[derive(clap::Args, Debug)]
pub struct InitArgs {
    /// Directory to write (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Number of node certificates, named node0, node1, ...
    #[arg(long, value_name = "N", default_value_t = 3, conflicts_with = "names")]
    pub nodes: usize,
    /// Node names (each must be the node's --name), comma-separated or repeated; instead of
    /// --nodes.
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub names: Option<Vec<String>>,
    /// Extra subject alternative names for every node certificate (DNS names or IP addresses
    /// clients dial), comma-separated or repeated. Always present: erlmcp.cluster, the node's
    /// name when it is a DNS name, localhost, 127.0.0.1 and ::1.
    #[arg(long = "san", value_name = "HOSTS", value_delimiter = ',')]
    pub sans: Vec<String>,
    /// Replace existing files (a new CA: certificates of the old one are no longer trusted).
    #[arg(long)]
    pub force: bool,
}

/// Runs `erlmcp certs`.
pub fn run(args: CertsArgs) -> anyhow::Result<()> {
    match args.command {
        CertsCommand::Init(a) => init(&a),
    }
}

/// The node names `init` issues certificates for.
fn names(a: &InitArgs) -> anyhow::Result<Vec<String>> {
    let names: Vec<String> = match &a.names {
        Some(n) => n
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        None => (0..a.nodes).map(|i| format!("node{i}")).collect(),
    };
    if names.is_empty() {
        anyhow::bail!("no node names: pass --nodes N (at least 1) or --names a,b,...");
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = names.iter().find(|n| !seen.insert(n.as_str())) {
        anyhow::bail!("node name {dup:?} is given twice");
    }
    Ok(names)
}

fn init(a: &InitArgs) -> anyhow::Result<()> {
    let names = names(a)?;
    let sans: Vec<String> = a
        .sans
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let written = pki::write_cluster_dir(&a.out, &names, &sans, a.force).with_context(|| {
        format!(
            "cannot create the cluster certificates in {}",
            a.out.display()
        )
    })?;
    print!("{}", report(&a.out, &names, &written));
    Ok(())
}

/// What `init` tells the operator: the files, then how to use them.
fn report(dir: &Path, names: &[String], written: &[PathBuf]) -> String {
    let ca = dir.join(pki::CA_CERT_FILE);
    let ca_key = dir.join(pki::CA_KEY_FILE);
    let mut out = String::new();
    if written.contains(&ca) {
        out += &format!(
            "wrote the cluster CA: {} and {} (keep the key secret; nodes do not need it)\n",
            ca.display(),
            ca_key.display()
        );
    } else {
        out += &format!("kept the existing cluster CA: {}\n", ca.display());
    }
    for n in names {
        out += &format!(
            "wrote node {n}: {} and {}\n",
            dir.join(format!("{n}.pem")).display(),
            dir.join(format!("{n}.key")).display()
        );
    }
    let first = names.first().map(String::as_str).unwrap_or("node0");
    let d = dir.display();
    out += &format!(
        "\nGive each node {} and its own NAME.pem and NAME.key, then start it with its name:\n  \
         erlmcp node --name {first} --certs {d} --cookie SECRET --cluster HOST:7403 --join PEER:7403\n\
         MCP clients over QUIC trust the same CA:\n  \
         erlmcp connect quic://HOST:7402 --ca {}\n",
        ca.display(),
        ca.display(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(nodes: usize, names: Option<&[&str]>) -> InitArgs {
        InitArgs {
            out: PathBuf::from("x"),
            nodes,
            names: names.map(|n| n.iter().map(|s| s.to_string()).collect()),
            sans: Vec::new(),
            force: false,
        }
    }

    #[test]
    fn names_default_to_node_n_and_must_be_distinct() {
        assert_eq!(names(&args(2, None)).unwrap(), ["node0", "node1"]);
        assert_eq!(
            names(&args(3, Some(&["a", " b ", ""]))).unwrap(),
            ["a", "b"]
        );
        let e = names(&args(0, None)).unwrap_err().to_string();
        assert!(e.contains("--nodes"), "{e}");
        let e = names(&args(3, Some(&["a", "a"]))).unwrap_err().to_string();
        assert!(e.contains("\"a\" is given twice"), "{e}");
    }
}
