//! placeholder: client commands.
#[derive(Debug, clap::Args)]
pub struct TraceArgs {}
#[derive(Debug, clap::Args)]
pub struct TracesArgs {}
#[derive(Debug, clap::Args)]
pub struct LogsArgs {}
pub fn trace(_args: TraceArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
pub fn traces(_args: TracesArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
pub fn logs(_args: LogsArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
