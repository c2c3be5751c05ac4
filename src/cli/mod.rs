//! The operator CLI: clap definitions of the operator commands (`status`,
//! `standby`, `online`, `move`, `unmove`, `cleanup`, `maintenance`,
//! `fence confirm`), the control-socket protocol they speak, a blocking
//! client, and the human and `--json` renderers of the status.
//!
//! `main.rs` flattens [`OperatorCmd`] into its subcommands and calls [`run`];
//! it adds `completions SHELL` and `man DIR` with [`completions`] and
//! [`man_pages`]. Nothing here decides anything: the daemon does, and these
//! commands print what it answered.
//!
//! Exit codes: 0 done, 1 the daemon refused or failed, 2 usage (clap's own
//! errors too), 3 the daemon is not reachable.

pub mod client;
pub mod proto;
pub mod render;

#[cfg(test)]
pub(crate) mod tests;

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};

use client::{Client, ClientError};
use proto::{ControlRequest, ControlResponse, DEFAULT_SOCKET};

/// Exit code: the daemon refused the request, or it failed.
pub const EXIT_REFUSED: u8 = 1;
/// Exit code: bad usage.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the daemon is not reachable.
pub const EXIT_UNREACHABLE: u8 = 3;

/// Options every operator command takes.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// The daemon's control socket.
    #[arg(long, value_name = "PATH", env = "HAPAIR_SOCKET", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Print the daemon's answer as JSON (one object per line).
    #[arg(long)]
    pub json: bool,
}

/// on / off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    /// Turn it on.
    On,
    /// Turn it off.
    Off,
}

/// The operator commands; main.rs flattens them into `hapair`'s subcommands:
///
/// ```ignore
/// enum Cmd {
///     #[command(flatten)]
///     Operator(hapair::cli::OperatorCmd),
///     /* run, validate, completions, man, ... */
/// }
/// // match: Cmd::Operator(c) => return hapair::cli::run(c),
/// ```
#[derive(Debug, Clone, Subcommand)]
pub enum OperatorCmd {
    /// Show the pair: nodes, links, lease, DRBD, resources with fail counts,
    /// attributes, moves, fencing, last transitions, and what to fix.
    Status {
        /// Keep showing the status as it changes (until Ctrl-C).
        #[arg(long)]
        watch: bool,
        /// Socket and output options.
        #[command(flatten)]
        common: Common,
    },
    /// Put NODE in standby: it gives up the stack and runs nothing.
    Standby {
        /// The node.
        node: String,
        /// Socket and output options.
        #[command(flatten)]
        common: Common,
    },
    /// Take NODE out of standby.
    Online {
        /// The node.
        node: String,
        /// Socket and output options.
        #[command(flatten)]
        common: Common,
    },
    /// Move the stack to NODE (a preference that never keeps the stack off
    /// the only node that can run it); clear it with `unmove`.
    Move {
        /// The node to run the stack on.
        node: String,
        /// Let the move expire after this long ("10m", "1h").
        #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
        for_: Option<Duration>,
        /// Socket and output options.
        #[command(flatten)]
        common: Common,
    },
    /// Clear a move.
    Unmove {
        /// Socket and output options.
        #[command(flatten)]
        common: Common,
    },
    /// Clear fail counts and failure bans of RESOURCE (all when omitted).
    Cleanup {
        /// The resource.
        resource: Option<String>,
        /// Socket and output options.
        #[command(flatten)]
        common: Common,
    },
    /// Stop (on) or resume (off) managing resources; the lease is still renewed.
    Maintenance {
        /// on or off.
        state: OnOff,
        /// Socket and output options.
        #[command(flatten)]
        common: Common,
    },
    /// Fencing by hand.
    #[command(subcommand)]
    Fence(FenceCmd),
}

/// `hapair fence ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum FenceCmd {
    /// Confirm NODE is powered off when every fence device failed. Confirming
    /// a node that is NOT really off can cause split brain and data loss.
    Confirm {
        /// The node you have checked is off.
        node: String,
        /// Do not ask to type the node name.
        #[arg(long)]
        yes: bool,
        /// Socket and output options.
        #[command(flatten)]
        common: Common,
    },
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{s}: {e} (e.g. \"10m\", \"1h\")"))?;
    if d.is_zero() {
        return Err(format!("{s}: a move must last longer than zero"));
    }
    Ok(d)
}

impl OperatorCmd {
    /// The request this command sends (`fence confirm`'s typed confirmation
    /// happens in [`run`] before it is sent).
    pub fn request(&self) -> ControlRequest {
        match self {
            OperatorCmd::Status { watch: true, .. } => ControlRequest::Watch,
            OperatorCmd::Status { .. } => ControlRequest::Status,
            OperatorCmd::Standby { node, .. } => ControlRequest::Standby { node: node.clone() },
            OperatorCmd::Online { node, .. } => ControlRequest::Online { node: node.clone() },
            OperatorCmd::Move { node, for_, .. } => ControlRequest::Move {
                to: node.clone(),
                for_ms: for_.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            },
            OperatorCmd::Unmove { .. } => ControlRequest::Unmove,
            OperatorCmd::Cleanup { resource, .. } => ControlRequest::Cleanup {
                resource: resource.clone(),
            },
            OperatorCmd::Maintenance { state, .. } => ControlRequest::Maintenance {
                on: *state == OnOff::On,
            },
            OperatorCmd::Fence(FenceCmd::Confirm { node, .. }) => {
                ControlRequest::FenceConfirm { node: node.clone() }
            }
        }
    }

    fn common(&self) -> &Common {
        match self {
            OperatorCmd::Status { common, .. }
            | OperatorCmd::Standby { common, .. }
            | OperatorCmd::Online { common, .. }
            | OperatorCmd::Move { common, .. }
            | OperatorCmd::Unmove { common }
            | OperatorCmd::Cleanup { common, .. }
            | OperatorCmd::Maintenance { common, .. }
            | OperatorCmd::Fence(FenceCmd::Confirm { common, .. }) => common,
        }
    }
}

/// Runs an operator command against the daemon: prints its answer (human or
/// JSON) on stdout, errors on stderr, and returns the exit code.
pub fn run(cmd: OperatorCmd) -> ExitCode {
    let stdin = io::stdin();
    let mut input = stdin.lock();
    let interactive = io::stdin().is_terminal();
    run_with(
        cmd,
        &mut input,
        interactive,
        &mut io::stdout().lock(),
        &mut io::stderr().lock(),
    )
}

/// [`run`] with its streams given (tests).
pub fn run_with(
    cmd: OperatorCmd,
    input: &mut dyn BufRead,
    interactive: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> ExitCode {
    match run_inner(&cmd, input, interactive, out, err) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let _ = writeln!(err, "hapair: {e}");
            ExitCode::from(match e {
                ClientError::Unreachable { .. } => EXIT_UNREACHABLE,
                _ => EXIT_REFUSED,
            })
        }
    }
}

fn run_inner(
    cmd: &OperatorCmd,
    input: &mut dyn BufRead,
    interactive: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, ClientError> {
    let common = cmd.common();
    if let OperatorCmd::Fence(FenceCmd::Confirm {
        node, yes: false, ..
    }) = cmd
    {
        let _ = writeln!(
            err,
            "WARNING: confirming that {node} is off when it is not can cause split brain:\n\
             both nodes would run the stack and write the same data. Check that {node} is\n\
             powered off (its console, its power switch), then type the node name to confirm:"
        );
        if interactive {
            let _ = write!(err, "> ");
        }
        let _ = err.flush();
        let mut answer = String::new();
        if input.read_line(&mut answer).is_err() || answer.is_empty() {
            let _ = writeln!(
                err,
                "hapair: no confirmation read; nothing done (use --yes in scripts)"
            );
            return Ok(EXIT_USAGE);
        }
        if answer.trim() != node {
            let _ = writeln!(
                err,
                "hapair: {:?} is not {node:?}; nothing done",
                answer.trim()
            );
            return Ok(EXIT_REFUSED);
        }
    }

    let mut client = Client::connect(&common.socket)?;
    let req = cmd.request();
    if req == ControlRequest::Watch {
        let answer = client.watch(|s| {
            let written = if common.json {
                match serde_json::to_string(s) {
                    Ok(j) => writeln!(out, "{j}"),
                    Err(_) => return false,
                }
            } else {
                write!(out, "\x1b[H\x1b[2J{}", render::status(s))
            };
            // A closed stdout (`| head`) ends the watch.
            written.and_then(|()| out.flush()).is_ok()
        })?;
        return Ok(match answer {
            Some(resp) => print_answer(&resp, common.json, out, err),
            None => 0,
        });
    }
    let resp = client.request(&req)?;
    Ok(print_answer(&resp, common.json, out, err))
}

/// Prints one answer, returns the exit code.
fn print_answer(
    resp: &ControlResponse,
    json: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    if json {
        let line = match &resp.status {
            Some(s) if resp.ok => serde_json::to_string(s),
            _ => serde_json::to_string(resp),
        };
        let _ = writeln!(out, "{}", line.unwrap_or_default());
    } else if !resp.ok {
        let _ = writeln!(
            err,
            "hapair: the daemon refused: {}",
            resp.error.as_deref().unwrap_or("(no reason given)")
        );
    } else if let Some(s) = &resp.status {
        let _ = write!(out, "{}", render::status(s));
    } else {
        let _ = writeln!(out, "{}", resp.message.as_deref().unwrap_or("done"));
    }
    if resp.ok { 0 } else { EXIT_REFUSED }
}

/// Writes the completion script for `shell` (the command as main.rs builds it).
pub fn completions(shell: clap_complete::Shell, cmd: &mut clap::Command, out: &mut dyn Write) {
    let name = cmd.get_name().to_owned();
    clap_complete::generate(shell, cmd, name, out);
}

/// Writes man pages into `dir`: one for the command and one per subcommand
/// (`hapair.1`, `hapair-status.1`, `hapair-fence-confirm.1`, ...).
pub fn man_pages(cmd: &clap::Command, dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    // section 8: system administration commands (hapair runs as root)
    fn write(cmd: &clap::Command, name: &str, dir: &Path) -> io::Result<()> {
        let cmd = cmd.clone().bin_name(name.replace('-', " "));
        let mut f = std::fs::File::create(dir.join(format!("{name}.8")))?;
        clap_mangen::Man::new(cmd.clone())
            .title(name.to_uppercase())
            .section("8")
            .render(&mut f)?;
        for sub in cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        {
            write(sub, &format!("{name}-{}", sub.get_name()), dir)?;
        }
        Ok(())
    }
    let mut cmd = cmd.clone();
    cmd.build();
    write(&cmd, cmd.get_name(), dir)
}
