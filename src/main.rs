//! `hapair`: the two-node storage HA manager. This first cut carries the
//! operator entry point and the `demo` job; the daemon, engine and the other
//! subcommands arrive with their issues.
#![forbid(unsafe_code)]

mod agent;
mod demo;
mod drbd_cli;
mod heartbeat_cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// hapair: storage high availability for two-node pairs.
#[derive(Debug, Parser)]
#[command(name = "hapair", version)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run, list and describe resource agents (ocf:PROVIDER:TYPE, lsb:NAME,
    /// systemd:UNIT) exactly as the daemon runs them.
    #[command(subcommand)]
    Agent(agent::AgentCmd),
    /// Run one heartbeat node in the foreground (debugging, lab
    /// measurements): prints membership events as JSON lines until
    /// SIGINT/SIGTERM, then the final counters.
    Heartbeat(heartbeat_cli::HeartbeatArgs),
    /// Generate the heartbeat key file, or rotate its keys (--add,
    /// --activate, --retire).
    Keygen(heartbeat_cli::KeygenArgs),
    /// DRBD tools: replay a saved `drbdsetup events2` stream through the
    /// parser and state model.
    #[command(subcommand)]
    Drbd(drbd_cli::DrbdCmd),
    /// Show the sfex lease working end to end on a scratch loop device:
    /// init, status, lock, a second node refused, release, crash and stale
    /// takeover, unlock, dump; then clean up. Needs root and loop devices.
    Demo {
        /// Logical sector size of the scratch loop device (512 or 4096).
        #[arg(long, default_value_t = 512, value_parser = parse_sector)]
        sector_size: u32,
        /// lock_timeout in seconds for the demo locks (the stale takeover waits this long).
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(2..=60))]
        lock_timeout: u32,
    },
}

fn parse_sector(s: &str) -> Result<u32, String> {
    match s {
        "512" => Ok(512),
        "4096" => Ok(4096),
        _ => Err(format!(
            "{s}: the loop device's sector size must be 512 or 4096"
        )),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Demo {
            sector_size,
            lock_timeout,
        } => demo::run(sector_size, lock_timeout),
        Cmd::Agent(cmd) => return agent::main(cmd),
        Cmd::Heartbeat(args) => heartbeat_cli::heartbeat(args),
        Cmd::Keygen(args) => heartbeat_cli::keygen(args),
        Cmd::Drbd(cmd) => return drbd_cli::main(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hapair: {e:#}");
            ExitCode::FAILURE
        }
    }
}
