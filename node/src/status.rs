//! `erlmcp status` (in progress).

/// `erlmcp status` flags.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {}

/// Runs `erlmcp status`.
pub async fn run(_args: StatusArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
