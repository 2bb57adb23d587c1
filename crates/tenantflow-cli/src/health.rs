//! `tenantflow health`: asks a running job's admin server whether it is alive (or, with
//! `--ready`, ready), for a container's health check where no HTTP client is installed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::config::run::DEFAULT_ADMIN_LISTEN;
use crate::config::value::Listen;

/// How long the check waits for the answer.
const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// The job's admin address (as given to `run --admin`; 0.0.0.0 means this host).
    #[arg(long, value_name = "ADDR", env = "TENANTFLOW_ADMIN")]
    admin: Option<Listen>,

    /// Ask whether the job is ready (recovered and reading), not only alive.
    #[arg(long)]
    ready: bool,
}

/// Exits 0 when the admin server answers 200, else fails with what it answered.
pub fn run(args: HealthArgs) -> Result<()> {
    let listen = args.admin.unwrap_or(DEFAULT_ADMIN_LISTEN);
    let Some(mut addr) = listen.get() else {
        bail!("the admin server is off (--admin off): nothing to ask");
    };
    if addr.ip().is_unspecified() {
        addr = SocketAddr::new(
            if addr.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            },
            addr.port(),
        );
    }
    let path = if args.ready { "/readyz" } else { "/healthz" };
    let (status, body) =
        get(addr, path).with_context(|| format!("asking the admin server at {addr}{path}"))?;
    if status != 200 {
        bail!("{addr}{path} answered {status}: {}", body.trim());
    }
    Ok(())
}

fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    stream.take(64 << 10).read_to_end(&mut answer)?;
    let answer = String::from_utf8_lossy(&answer);
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("not an HTTP answer"))?;
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok((status, body.to_owned()))
}
