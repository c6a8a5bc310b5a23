//! The arguments of `mend listen`, and the gateway settings they build.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;

use super::parse::{duration_arg, redis_url_arg, ArgError};
use mend::listen::{Endpoint, ListenConfig, RetryPolicy};

/// `mend listen`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("link").required(true).args(["tcp", "serial"])))]
pub struct ListenArgs {
    /// Connect to the node's UART served over TCP (e.g. QEMU's
    /// `-serial tcp:127.0.0.1:PORT,server=on,wait=off`), reconnecting when it drops.
    #[arg(long, value_name = "HOST:PORT", value_parser = tcp_arg)]
    pub tcp: Option<String>,
    /// Read the node's UART from a serial port.
    #[arg(long, value_name = "PATH")]
    pub serial: Option<PathBuf>,
    /// The serial port's baud rate.
    #[arg(long, default_value_t = 115_200, requires = "serial")]
    pub baud: u32,
    /// The capture to append to (created when missing, never truncated).
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
    /// Stop after this long without a byte from the node (e.g. 30s).
    #[arg(long, value_parser = duration_arg)]
    pub idle: Option<u64>,
    /// Stop after this long (e.g. 10m).
    #[arg(long, value_parser = duration_arg)]
    pub duration: Option<u64>,
    /// Requests for a missing range before it is given up as unrecoverable.
    #[arg(long, default_value_t = 5)]
    pub retries: u32,
    /// The wait after the first request for a missing range; it doubles after each request,
    /// up to 16 times this.
    #[arg(long, value_parser = duration_arg, default_value = "1s")]
    pub retry_after: u64,
    /// The longest time received frames wait for their fsync (and acknowledgement) while the
    /// node streams.
    #[arg(long, value_parser = duration_arg, default_value = "50ms")]
    pub sync_every: u64,
    /// Capture only: send no acknowledgements and no resend requests, for a node that does
    /// not read its link (missing readings are reported as still missing).
    #[arg(long)]
    pub no_downlink: bool,
    /// Also publish the frames into the fleet's raw streams in this Redis (e.g.
    /// redis://127.0.0.1:6379), once they are on disk, as `mend publish` would; while Redis
    /// is down, capturing goes on and publishing catches up from the capture later.
    #[arg(long, value_name = "URL", value_parser = redis_url_arg)]
    pub redis: Option<String>,
    /// No status line and no summary.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

impl ListenArgs {
    /// Checks the arguments and builds the settings.
    pub fn plan(&self) -> anyhow::Result<ListenConfig> {
        let endpoint = match (&self.tcp, &self.serial) {
            (Some(addr), None) => Endpoint::Tcp(addr.clone()),
            (None, Some(path)) => Endpoint::Serial {
                path: path.clone(),
                baud: self.baud,
            },
            _ => bail!("give exactly one of --tcp and --serial"),
        };
        if self.retry_after == 0 {
            bail!("--retry-after must be longer than 0");
        }
        Ok(ListenConfig {
            endpoint,
            capture: self.output.clone(),
            idle_ms: self.idle,
            duration_ms: self.duration,
            retry: RetryPolicy {
                tries: self.retries,
                first_ms: self.retry_after,
                max_ms: self.retry_after.saturating_mul(16),
            },
            sync_ms: self.sync_every,
            downlink: !self.no_downlink,
            redis: self.redis.clone(),
        })
    }
}

/// `HOST:PORT` for `--tcp`.
fn tcp_arg(addr: &str) -> Result<String, ArgError> {
    if addr
        .rsplit_once(':')
        .is_none_or(|(_, p)| p.parse::<u16>().is_err())
    {
        return Err(
            anyhow::anyhow!("--tcp {addr:?}: expected HOST:PORT, e.g. 127.0.0.1:5555").into(),
        );
    }
    Ok(addr.to_string())
}
