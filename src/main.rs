//! `hapair`: the two-node storage HA manager. This first cut carries the
//! operator entry point and the `demo` job; the daemon, engine and the other
//! subcommands arrive with their issues.
#![forbid(unsafe_code)]

mod agent;
mod cib_cli;
mod demo;
mod drbd_cli;
mod heartbeat_cli;
mod versus;

use std::path::PathBuf;
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
    #[command(flatten)]
    Operator(hapair::cli::OperatorCmd),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write the man pages (hapair.8 and one per subcommand) into DIR.
    Man {
        /// Output directory.
        dir: PathBuf,
    },
    /// Run the daemon (in the foreground; systemd's `hapair.service` runs
    /// this): heartbeats, the lease, fencing and the resource stack.
    Run {
        /// The config file.
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// This node's name in the config [default: the host name].
        #[arg(long)]
        node: Option<String>,
    },
    /// Check a config file: every problem with its key path and line.
    Validate {
        /// The config file.
        #[arg(default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check this node before starting the daemon: config, key file, links,
    /// lease device, data devices, agents, fence agents, self-fence.
    Preflight {
        /// The config file.
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// This node's name in the config [default: the host name].
        #[arg(long)]
        node: Option<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
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
    /// The lab demo pair: two user-mode-Linux nodes on a shared disk, a
    /// record service, a power cut of the primary, the failover timeline and
    /// a check that no acknowledged record is lost (root; installs the lab's
    /// packages). `--sfex-only`: the sfex lease on a scratch loop device.
    Demo(demo::DemoArgs),
    /// Print the hapair.toml equivalent to a Pacemaker CIB's resources
    /// (DRBD clone, sfex, group, fencing); refuses what hapair cannot express.
    ImportCib(cib_cli::ImportCibArgs),
    /// DRBD's fence-peer handler (`handlers { fence-peer "hapair fence-peer"; }`):
    /// asks the local daemon to outdate or fence the peer and exits with
    /// DRBD's code (4 outdated, 5 down, 6 peer Primary, 7 fenced, 1 no verdict).
    FencePeer {
        /// The config file.
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// This node's name in the config [default: the host name].
        #[arg(long)]
        node: Option<String>,
        /// The peer resynced (after-resync-target / unfence-peer): clear the record.
        #[arg(long)]
        unfence: bool,
        /// Inside a Pacemaker cluster, no hapair daemon: place crm-fence-peer's
        /// location constraint and decide from the CIB (no config file needed).
        #[arg(long)]
        pacemaker: bool,
        /// How long to wait for the peer to outdate itself [default: 15s; 90s with --pacemaker].
        #[arg(long, value_parser = humantime::parse_duration)]
        timeout: Option<std::time::Duration>,
        /// The DRBD resource when DRBD_RESOURCE is not set (DRBD passes it as argv too).
        resource: Option<String>,
    },
}

const DEFAULT_CONFIG: &str = "/etc/hapair/hapair.toml";

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn validate(path: &std::path::Path, json: bool) -> ExitCode {
    match hapair::config::load(path) {
        Ok(l) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"file": path, "valid": true, "problems": [], "warnings": l.warnings.iter().map(|w| serde_json::json!({"path": w.path, "line": w.line, "message": w.message})).collect::<Vec<_>>()})
                );
            } else {
                for w in &l.warnings {
                    println!("warning: {w}");
                }
                println!("{}: valid", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(hapair::config::LoadError::Invalid { path: p, problems }) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"file": p, "valid": false, "problems": problems.iter().map(|w| serde_json::json!({"path": w.path, "line": w.line, "message": w.message})).collect::<Vec<_>>()})
                );
            } else {
                eprint!("{}", hapair::config::render_problems(&problems, &p));
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"file": path, "valid": false, "error": e.to_string()})
                );
            } else {
                eprintln!("hapair: {e}");
            }
            ExitCode::FAILURE
        }
    }
}

fn preflight(config: &std::path::Path, node: Option<&str>, json: bool) -> anyhow::Result<ExitCode> {
    let cfg = hapair::config::load(config)?.config;
    let me = hapair::runtime::daemon::local_node(&cfg, node)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let checks = rt.block_on(hapair::preflight::run(&cfg, me));
    if json {
        println!("{}", serde_json::to_string_pretty(&checks)?);
    } else {
        print!("{}", hapair::preflight::render(&checks));
    }
    Ok(if checks.iter().all(|c| c.ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn main() -> ExitCode {
    // the lab demo installs this binary as the lab's fence agent too: one
    // program in the guests, no script forking in them (see hwtest::fence_lab)
    if std::env::args_os()
        .next()
        .is_some_and(|a| std::path::Path::new(&a).file_name() == Some("fence_lab".as_ref()))
    {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let rc = hwtest::fence_lab::main_args(&args);
        return ExitCode::from(u8::try_from(rc).unwrap_or(1));
    }
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Operator(c) => return hapair::cli::run(c),
        Cmd::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            hapair::cli::completions(shell, &mut cmd, &mut std::io::stdout());
            Ok(())
        }
        Cmd::Man { dir } => {
            let cmd = <Cli as clap::CommandFactory>::command();
            hapair::cli::man_pages(&cmd, &dir).map_err(anyhow::Error::from)
        }
        Cmd::FencePeer {
            config,
            node,
            unfence,
            pacemaker,
            timeout,
            resource,
        } => {
            use hapair::fence_peer::pacemaker as pcmk;
            if pacemaker {
                let opts = pcmk::PcmkOptions {
                    node,
                    resource,
                    unfence,
                    timeout: timeout.unwrap_or(pcmk::DEFAULT_TIMEOUT),
                    proc_drbd: "/proc/drbd".into(),
                };
                return match pcmk::run(&opts) {
                    Ok(code) => ExitCode::from(code),
                    Err(e) => {
                        eprintln!("hapair fence-peer --pacemaker: {e}");
                        ExitCode::from(hapair::fence_peer::Code::Refused.exit_code())
                    }
                };
            }
            let timeout = timeout.unwrap_or(hapair::fence_peer::DEFAULT_TIMEOUT);
            let opts = hapair::fence_peer::HandlerOptions {
                config,
                node,
                resource,
                unfence,
                timeout,
            };
            return match hapair::fence_peer::run(&opts) {
                Ok(code) => ExitCode::from(code),
                Err(e) => {
                    eprintln!("hapair fence-peer: {e}");
                    ExitCode::from(hapair::fence_peer::Code::Refused.exit_code())
                }
            };
        }
        Cmd::Run { config, node } => {
            init_tracing();
            hapair::runtime::daemon::main(hapair::runtime::daemon::Options { config, node })
        }
        Cmd::Validate { config, json } => return validate(&config, json),
        Cmd::Preflight { config, node, json } => match preflight(&config, node.as_deref(), json) {
            Ok(c) => return c,
            Err(e) => Err(e),
        },
        Cmd::Demo(args) => demo::main(args),
        Cmd::Agent(cmd) => return agent::main(cmd),
        Cmd::Heartbeat(args) => heartbeat_cli::heartbeat(args),
        Cmd::Keygen(args) => heartbeat_cli::keygen(args),
        Cmd::Drbd(cmd) => return drbd_cli::main(cmd),
        Cmd::ImportCib(args) => return cib_cli::main(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hapair: {e:#}");
            ExitCode::FAILURE
        }
    }
}
