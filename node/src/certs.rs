//! `erlmcp certs`: cluster certificates (in progress).

/// `erlmcp certs` flags.
#[derive(clap::Args, Debug)]
pub struct CertsArgs {}

/// Runs `erlmcp certs`.
pub fn run(_args: CertsArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
