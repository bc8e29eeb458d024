//! `erlmcp dev-cluster` (in progress).

/// `erlmcp dev-cluster` flags.
#[derive(clap::Args, Debug)]
pub struct DevClusterArgs {}

/// Runs `erlmcp dev-cluster`.
pub async fn run(_args: DevClusterArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
