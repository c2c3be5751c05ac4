//! Driver for `drbdadm` and `drbdsetup`: builds command lines, runs them as
//! children under a timeout, and classifies DRBD's error messages.
//!
//! The pure parts are [`Command::argv`] (what is run) and [`classify`] (what
//! a failure means); [`Admin`] runs them. Every child:
//! - gets a cleared environment plus `PATH=/usr/sbin:/usr/bin:/sbin:/bin`
//!   and `LC_ALL=C` (DRBD's messages are then the English ones matched here),
//!   `/` as working directory and `/dev/null` as stdin;
//! - leads its own process group (`process_group(0)`): on timeout, or when
//!   the caller drops the future, the whole group (drbdadm and the
//!   drbdsetup/drbdmeta it forked) gets SIGKILL;
//! - has stdout and stderr captured in bounded buffers ([`ra::capture`]).
//!
//! `primary` never adds `--force` on its own: only [`Admin::primary_forced`]
//! does, and it wants a [`Force`] token that only an operator's command
//! should create (the daemon never does; drbd.md 2.2).
//!
//! Exit codes (drbd-utils `drbdsetup.c` `check_error`, `shared_main.h`):
//! drbdsetup exits 11 on a refused state change, 17 for `(-2) Need access to
//! UpToDate data`, 5 for `(-16)`, 16 for `(-4)`, 10 for a kernel
//! configuration error (`Failure: (1xx) …`, e.g. `(158) Unknown resource`),
//! 20 for other errors (no netlink family: module not loaded), 121 when the
//! module was unloaded. drbdadm passes a drbdsetup code through and adds
//! `Command '…' terminated with exit code N`; its own codes are 1 (usage,
//! resource not in the config), 2 (syntax), 10 (invalid config), 20 (exec
//! error, and its `did not terminate within N seconds` timeout).

use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use ra::capture::{Capture, CaptureLimits, Captured};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;

use crate::Cluster;
use crate::events::parse_line;

/// How much of an `events2 --now` dump is read (all of it, up to 16 MiB).
const DUMP_LIMITS: CaptureLimits = CaptureLimits {
    head: 16 << 20,
    tail: 0,
};

/// The `PATH` every child gets.
pub const CHILD_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// Where the tools are and how long a command may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// The `drbdadm` binary.
    pub drbdadm: PathBuf,
    /// The `drbdsetup` binary.
    pub drbdsetup: PathBuf,
    /// Timeout of each command (drbd.md 7.5 suggests 90 s for promote and
    /// demote).
    pub timeout: Duration,
}

impl Default for AdminConfig {
    /// `/usr/sbin/drbdadm`, `/usr/sbin/drbdsetup`, 90 s.
    fn default() -> Self {
        AdminConfig {
            drbdadm: PathBuf::from("/usr/sbin/drbdadm"),
            drbdsetup: PathBuf::from("/usr/sbin/drbdsetup"),
            timeout: Duration::from_secs(90),
        }
    }
}

/// Proof that a human asked for `primary --force`. The daemon never builds
/// one; only an operator's explicit command may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Force {
    /// An operator asked for it by hand, knowing it can cause split brain.
    OperatorRequested,
}

/// Which binary a command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// `drbdadm`.
    Drbdadm,
    /// `drbdsetup`.
    Drbdsetup,
}

/// One DRBD administration command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `drbdadm up RES` (not idempotent; prefer `Adjust`).
    Up(String),
    /// `drbdadm down RES`.
    Down(String),
    /// `drbdadm adjust RES`: make the kernel match the config.
    Adjust(String),
    /// `drbdadm primary RES`, with `--force` only given a [`Force`] token.
    Primary {
        /// Resource.
        resource: String,
        /// `Some` only on an operator's explicit request.
        force: Option<Force>,
    },
    /// `drbdadm secondary RES`.
    Secondary(String),
    /// `drbdadm connect RES[:PEER]`.
    Connect {
        /// Resource.
        resource: String,
        /// Peer (connection) name, DRBD 9.
        peer: Option<String>,
    },
    /// `drbdadm disconnect RES[:PEER]`.
    Disconnect {
        /// Resource.
        resource: String,
        /// Peer (connection) name, DRBD 9.
        peer: Option<String>,
    },
    /// `drbdadm outdate RES`.
    Outdate(String),
    /// `drbdadm status [RES]` (human-readable; for display only).
    Status(Option<String>),
    /// `drbdsetup events2 --now {RES|all}`: a one-shot state dump.
    EventsNow(Option<String>),
}

/// A name that cannot be passed to drbdadm safely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid DRBD {what} name {name:?}: use letters, digits and _ - . + only, not starting with -"
)]
pub struct InvalidName {
    /// `resource` or `peer`.
    pub what: &'static str,
    /// The name given.
    pub name: String,
}

fn check_name(what: &'static str, name: &str) -> Result<(), InvalidName> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'+'));
    if ok {
        Ok(())
    } else {
        Err(InvalidName {
            what,
            name: name.to_owned(),
        })
    }
}

fn with_peer(res: &str, peer: Option<&String>) -> Result<String, InvalidName> {
    check_name("resource", res)?;
    match peer {
        Some(p) => {
            check_name("peer", p)?;
            Ok(format!("{res}:{p}"))
        }
        None => Ok(res.to_owned()),
    }
}

impl Command {
    /// The tool and its arguments (without the program name). Pure; checks
    /// names so that nothing given can become an option.
    pub fn argv(&self) -> Result<(Tool, Vec<String>), InvalidName> {
        let adm = |verb: &str, res: &str| -> Result<(Tool, Vec<String>), InvalidName> {
            check_name("resource", res)?;
            Ok((Tool::Drbdadm, vec![verb.to_owned(), res.to_owned()]))
        };
        match self {
            Command::Up(r) => adm("up", r),
            Command::Down(r) => adm("down", r),
            Command::Adjust(r) => adm("adjust", r),
            Command::Secondary(r) => adm("secondary", r),
            Command::Outdate(r) => adm("outdate", r),
            Command::Primary { resource, force } => {
                check_name("resource", resource)?;
                let mut v = vec!["primary".to_owned()];
                if let Some(Force::OperatorRequested) = force {
                    v.push("--force".to_owned());
                }
                v.push(resource.clone());
                Ok((Tool::Drbdadm, v))
            }
            Command::Connect { resource, peer } => Ok((
                Tool::Drbdadm,
                vec!["connect".into(), with_peer(resource, peer.as_ref())?],
            )),
            Command::Disconnect { resource, peer } => Ok((
                Tool::Drbdadm,
                vec!["disconnect".into(), with_peer(resource, peer.as_ref())?],
            )),
            Command::Status(r) => {
                let mut v = vec!["status".to_owned()];
                if let Some(r) = r {
                    check_name("resource", r)?;
                    v.push(r.clone());
                }
                Ok((Tool::Drbdadm, v))
            }
            Command::EventsNow(r) => {
                let target = match r {
                    Some(r) => {
                        check_name("resource", r)?;
                        r.clone()
                    }
                    None => "all".to_owned(),
                };
                Ok((
                    Tool::Drbdsetup,
                    vec!["events2".into(), "--now".into(), target],
                ))
            }
        }
    }
}

/// What a failed command means, from DRBD's message and exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// `(-1) Multiple primaries not allowed by config`: the peer is Primary.
    PeerIsPrimary,
    /// `(-2) Need access to UpToDate data` (exit 17): no UpToDate disk
    /// reachable. Final for a promote.
    NoUpToDateData,
    /// `(-6) Refusing to be Outdated while Connected`.
    OutdateWhileConnected,
    /// `(-7) Refusing to be Primary while peer is not outdated`: fencing did
    /// not confirm.
    PeerNotOutdated,
    /// `(-9) Can not disconnect a StandAlone device`.
    AlreadyStandAlone,
    /// `(-10) State change was refused by peer node`.
    RefusedByPeer,
    /// `(-12) Device is held open by someone` (demote while mounted).
    DeviceHeldOpen,
    /// `(-16) Disk state is lower than outdated` (exit 5).
    LowerThanOutdated,
    /// `(-18) In transient state, retry after next state change`.
    TransientState,
    /// `(-19) Concurrent state changes detected and aborted`.
    ConcurrentStateChange,
    /// `(-23) Timeout in operation`: cluster-wide state change timed out.
    StateChangeTimeout,
    /// `(-25) No quorum`. Final.
    NoQuorum,
    /// Another `State change failed: (N)`; the code is in [`DrbdError::code`].
    StateChange,
    /// The resource is not known: kernel `(158) Unknown resource`,
    /// drbdsetup `No such resource`, drbdadm `not defined in your config`.
    UnknownResource,
    /// drbdadm found no resources at all in its configuration.
    NoResourcesDefined,
    /// Another kernel `Failure: (1xx)`; the code is in [`DrbdError::code`].
    KernelConfig,
    /// `Could not connect to 'drbd' generic netlink family`: the module is
    /// not loaded.
    ModuleNotLoaded,
    /// The module was unloaded while drbdsetup ran (exit 121).
    ModuleUnloaded,
    /// drbdadm's own timeout for drbdsetup (`did not terminate within N
    /// seconds`).
    ToolTimeout,
    /// Usage or syntax error (exit 1 or 2).
    Usage,
    /// The DRBD configuration is invalid (drbdadm exit 10 without a kernel
    /// failure).
    ConfigInvalid,
    /// Anything else.
    Other,
}

impl ErrorKind {
    /// The kind for a DRBD state-change code (`SS_*`, negative).
    pub fn from_state_code(code: i32) -> ErrorKind {
        match code {
            -1 => ErrorKind::PeerIsPrimary,
            -2 => ErrorKind::NoUpToDateData,
            -6 => ErrorKind::OutdateWhileConnected,
            -7 => ErrorKind::PeerNotOutdated,
            -9 => ErrorKind::AlreadyStandAlone,
            -10 => ErrorKind::RefusedByPeer,
            -12 => ErrorKind::DeviceHeldOpen,
            -16 => ErrorKind::LowerThanOutdated,
            -18 => ErrorKind::TransientState,
            -19 => ErrorKind::ConcurrentStateChange,
            -23 => ErrorKind::StateChangeTimeout,
            -25 => ErrorKind::NoQuorum,
            _ => ErrorKind::StateChange,
        }
    }

    /// DRBD says the same command may succeed later without anyone acting:
    /// `-1` (a dying Primary peer), `-18` and `-19` (drbd.md 7.3). The
    /// caller re-evaluates the model before retrying, with backoff.
    pub fn retry_may_help(self) -> bool {
        matches!(
            self,
            ErrorKind::PeerIsPrimary | ErrorKind::TransientState | ErrorKind::ConcurrentStateChange
        )
    }
}

/// A classified failure: kind, DRBD's code and its message line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Classified {
    /// What it means.
    pub kind: ErrorKind,
    /// The state-change (`-N`) or kernel (`1xx`) code, when DRBD printed one.
    pub code: Option<i32>,
    /// DRBD's own message line (e.g. `r0: State change failed: (-2) Need
    /// access to UpToDate data`), or the last meaningful stderr line.
    pub message: String,
}

/// `(N) text` after a prefix: the code and the text.
fn paren_code(rest: &str) -> Option<(i32, &str)> {
    let rest = rest.trim_start().strip_prefix('(')?;
    let (n, text) = rest.split_once(')')?;
    Some((n.trim().parse().ok()?, text.trim()))
}

/// Classifies a failed command from its exit code and stderr. Pure.
///
/// DRBD's message wins over the exit code: the first `State change failed:
/// (N)`, `Failure: (N)` or other known line decides; the exit code decides
/// only when no known line is there (17 → no UpToDate data, 5 → lower than
/// outdated, 121 → module unloaded, 1/2 → usage, 10 → config).
pub fn classify(exit_code: Option<i32>, stderr: &str) -> Classified {
    let mut fallback: Option<&str> = None;
    for line in stderr.lines() {
        let l = line.trim();
        if l.is_empty() {
            continue;
        }
        if let Some(i) = l.find("State change failed:") {
            let rest = &l[i + "State change failed:".len()..];
            let code = paren_code(rest).map(|(c, _)| c);
            let kind = match code {
                Some(c) => ErrorKind::from_state_code(c),
                None => ErrorKind::StateChange,
            };
            return Classified {
                kind,
                code,
                message: l.to_owned(),
            };
        }
        if let Some(i) = l.find("Failure:") {
            if let Some((c, text)) = paren_code(&l[i + "Failure:".len()..]) {
                let kind = if c == 158 || text.starts_with("Unknown resource") {
                    ErrorKind::UnknownResource
                } else {
                    ErrorKind::KernelConfig
                };
                return Classified {
                    kind,
                    code: Some(c),
                    message: l.to_owned(),
                };
            }
        }
        let known = if l.ends_with(": No such resource") || l.contains("not defined in your config")
        {
            Some(ErrorKind::UnknownResource)
        } else if l.contains("no resources defined") {
            Some(ErrorKind::NoResourcesDefined)
        } else if l.contains("Could not connect to 'drbd' generic netlink family") {
            Some(ErrorKind::ModuleNotLoaded)
        } else if l.contains("' did not terminate within ") {
            Some(ErrorKind::ToolTimeout)
        } else {
            None
        };
        if let Some(kind) = known {
            return Classified {
                kind,
                code: None,
                message: l.to_owned(),
            };
        }
        // drbdadm's trailer and the kernel-info header say nothing new.
        let trailer = (l.starts_with("Command '") && l.contains("' terminated with exit code"))
            || l.ends_with("info from kernel:");
        if !trailer {
            fallback = Some(l);
        }
    }
    let kind = match exit_code {
        Some(17) => ErrorKind::NoUpToDateData,
        Some(5) => ErrorKind::LowerThanOutdated,
        Some(121) => ErrorKind::ModuleUnloaded,
        Some(1 | 2) => ErrorKind::Usage,
        Some(10) => ErrorKind::ConfigInvalid,
        _ => ErrorKind::Other,
    };
    Classified {
        kind,
        code: None,
        message: fallback.unwrap_or("").to_owned(),
    }
}

/// A command that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// A resource or peer name was refused before running anything.
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
    /// The binary does not exist or is not executable.
    #[error("{path} not installed or not executable: {source}")]
    NotInstalled {
        /// The binary.
        path: PathBuf,
        /// The spawn error.
        source: io::Error,
    },
    /// The child could not be started or waited for.
    #[error("running {command}: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// The error.
        source: io::Error,
    },
    /// The command ran over the timeout; its process group was killed.
    #[error(
        "{command} did not finish within {timeout:?} (killed){}",
        stderr_suffix(stderr)
    )]
    Timeout {
        /// The command line.
        command: String,
        /// The timeout.
        timeout: Duration,
        /// What it printed on stderr before being killed.
        stderr: String,
    },
    /// DRBD refused or failed: exit code, classification and its message.
    #[error("{command}: {message} (exit {})", exit_code.map_or_else(|| "by signal".to_owned(), |c| c.to_string()))]
    Drbd {
        /// The command line.
        command: String,
        /// The exit code (`None`: killed by a signal).
        exit_code: Option<i32>,
        /// What it means.
        kind: ErrorKind,
        /// DRBD's code, when it printed one.
        code: Option<i32>,
        /// DRBD's message line.
        message: String,
        /// The whole captured stderr.
        stderr: String,
    },
}

fn stderr_suffix(s: &str) -> String {
    match s.trim().lines().last() {
        Some(l) => format!(": {l}"),
        None => String::new(),
    }
}

impl AdminError {
    /// The classification of a DRBD failure (`None` for the others).
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            AdminError::Drbd { kind, .. } => Some(*kind),
            _ => None,
        }
    }
}

/// What a successful command printed.
#[derive(Debug, Clone)]
pub struct Output {
    /// The command line run.
    pub command: String,
    /// Captured stdout.
    pub stdout: Captured,
    /// Captured stderr (warnings).
    pub stderr: Captured,
    /// How long it took.
    pub elapsed: Duration,
}

/// Runs DRBD commands. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Admin {
    cfg: AdminConfig,
    limits: CaptureLimits,
}

/// Kills the child's process group when dropped while armed.
pub(crate) struct GroupGuard {
    pub(crate) pgid: Option<Pid>,
    pub(crate) armed: bool,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.armed {
            kill_group(self.pgid);
        }
    }
}

pub(crate) fn kill_group(pgid: Option<Pid>) {
    if let Some(p) = pgid {
        // ESRCH: nothing left in the group.
        let _ = killpg(p, Signal::SIGKILL);
    }
}

pub(crate) fn pgid_of(pid: Option<u32>) -> Option<Pid> {
    pid.and_then(|p| i32::try_from(p).ok()).map(Pid::from_raw)
}

async fn drain<R: AsyncRead + Unpin>(r: Option<R>, cap: &mut Capture) {
    let Some(mut r) = r else { return };
    let mut buf = vec![0u8; 8192];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => cap.push(&buf[..n]),
        }
    }
}

/// A `tokio::process::Command` with the clean environment, `/`, null stdin,
/// piped output and its own process group.
pub(crate) fn child_command(program: &Path, args: &[String]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env_clear()
        .env("PATH", CHILD_PATH)
        .env("LC_ALL", "C")
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    cmd
}

impl Admin {
    /// A driver with default capture limits (32 KiB head and tail per
    /// stream).
    pub fn new(cfg: AdminConfig) -> Admin {
        Admin {
            cfg,
            limits: CaptureLimits::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &AdminConfig {
        &self.cfg
    }

    /// The same driver with another timeout.
    pub fn with_timeout(&self, timeout: Duration) -> Admin {
        let mut a = self.clone();
        a.cfg.timeout = timeout;
        a
    }

    fn program(&self, tool: Tool) -> &Path {
        match tool {
            Tool::Drbdadm => &self.cfg.drbdadm,
            Tool::Drbdsetup => &self.cfg.drbdsetup,
        }
    }

    /// Runs one command; `Ok` only on exit 0.
    pub async fn run(&self, command: &Command) -> Result<Output, AdminError> {
        self.run_limited(command, self.limits).await
    }

    async fn run_limited(
        &self,
        command: &Command,
        limits: CaptureLimits,
    ) -> Result<Output, AdminError> {
        let (tool, args) = command.argv()?;
        let program = self.program(tool).to_path_buf();
        let shown = std::iter::once(program.display().to_string())
            .chain(args.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ");
        let t0 = Instant::now();
        let mut child = match child_command(&program, &args).spawn() {
            Ok(c) => c,
            Err(e) => {
                return Err(match e.raw_os_error() {
                    Some(libc::ENOENT | libc::EACCES | libc::ENOEXEC | libc::ENOTDIR) => {
                        AdminError::NotInstalled {
                            path: program,
                            source: e,
                        }
                    }
                    _ => AdminError::Spawn {
                        command: shown,
                        source: e,
                    },
                });
            }
        };
        let pgid = pgid_of(child.id());
        let mut guard = GroupGuard { pgid, armed: true };
        let out = child.stdout.take();
        let err = child.stderr.take();
        let mut cap_out = Capture::new(limits);
        let mut cap_err = Capture::new(self.limits);
        let waited = tokio::time::timeout(self.cfg.timeout, async {
            let (_, _, st) = tokio::join!(
                drain(out, &mut cap_out),
                drain(err, &mut cap_err),
                child.wait()
            );
            st
        })
        .await;
        let status = match waited {
            Ok(Ok(st)) => st,
            Ok(Err(e)) => {
                return Err(AdminError::Spawn {
                    command: shown,
                    source: e,
                });
            }
            Err(_) => {
                kill_group(pgid);
                guard.armed = false;
                // Reap it (bounded: a process in D state may not die).
                let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
                tracing::warn!(command = %shown, timeout = ?self.cfg.timeout, "DRBD command timed out; process group killed");
                return Err(AdminError::Timeout {
                    command: shown,
                    timeout: self.cfg.timeout,
                    stderr: cap_err.finish().text(),
                });
            }
        };
        guard.armed = false;
        let elapsed = t0.elapsed();
        let stdout = cap_out.finish();
        let stderr = cap_err.finish();
        if status.success() {
            tracing::debug!(command = %shown, ?elapsed, "DRBD command done");
            return Ok(Output {
                command: shown,
                stdout,
                stderr,
                elapsed,
            });
        }
        let text = stderr.text();
        let c = classify(status.code(), &text);
        tracing::warn!(command = %shown, exit = ?status.code(), kind = ?c.kind, message = %c.message, "DRBD command failed");
        Err(AdminError::Drbd {
            command: shown,
            exit_code: status.code(),
            kind: c.kind,
            code: c.code,
            message: c.message,
            stderr: text,
        })
    }

    /// `drbdadm up RES`.
    pub async fn up(&self, resource: &str) -> Result<Output, AdminError> {
        self.run(&Command::Up(resource.to_owned())).await
    }

    /// `drbdadm down RES`.
    pub async fn down(&self, resource: &str) -> Result<Output, AdminError> {
        self.run(&Command::Down(resource.to_owned())).await
    }

    /// `drbdadm adjust RES`.
    pub async fn adjust(&self, resource: &str) -> Result<Output, AdminError> {
        self.run(&Command::Adjust(resource.to_owned())).await
    }

    /// `drbdadm primary RES`, never with `--force`.
    pub async fn primary(&self, resource: &str) -> Result<Output, AdminError> {
        self.run(&Command::Primary {
            resource: resource.to_owned(),
            force: None,
        })
        .await
    }

    /// `drbdadm primary --force RES`: declares local data UpToDate. Only for
    /// an operator's explicit request (the [`Force`] token).
    pub async fn primary_forced(&self, resource: &str, force: Force) -> Result<Output, AdminError> {
        tracing::warn!(
            resource,
            ?force,
            "forced promotion requested by the operator"
        );
        self.run(&Command::Primary {
            resource: resource.to_owned(),
            force: Some(force),
        })
        .await
    }

    /// `drbdadm secondary RES`.
    pub async fn secondary(&self, resource: &str) -> Result<Output, AdminError> {
        self.run(&Command::Secondary(resource.to_owned())).await
    }

    /// `drbdadm connect RES[:PEER]`.
    pub async fn connect(&self, resource: &str, peer: Option<&str>) -> Result<Output, AdminError> {
        self.run(&Command::Connect {
            resource: resource.to_owned(),
            peer: peer.map(str::to_owned),
        })
        .await
    }

    /// `drbdadm disconnect RES[:PEER]`.
    pub async fn disconnect(
        &self,
        resource: &str,
        peer: Option<&str>,
    ) -> Result<Output, AdminError> {
        self.run(&Command::Disconnect {
            resource: resource.to_owned(),
            peer: peer.map(str::to_owned),
        })
        .await
    }

    /// `drbdadm outdate RES`.
    pub async fn outdate(&self, resource: &str) -> Result<Output, AdminError> {
        self.run(&Command::Outdate(resource.to_owned())).await
    }

    /// `drbdadm status [RES]`: the human-readable text, for display.
    pub async fn status(&self, resource: Option<&str>) -> Result<String, AdminError> {
        let out = self
            .run(&Command::Status(resource.map(str::to_owned)))
            .await?;
        Ok(out.stdout.text())
    }

    /// `drbdsetup events2 --now {RES|all}` applied to a fresh model.
    pub async fn events_now(&self, resource: Option<&str>) -> Result<Snapshot, AdminError> {
        let out = self
            .run_limited(
                &Command::EventsNow(resource.map(str::to_owned)),
                DUMP_LIMITS,
            )
            .await?;
        Ok(snapshot_from_dump(&out.stdout.text()))
    }
}

/// The model built from an `events2 --now` dump.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The model; `cluster.ready()` is true only if the dump ended with
    /// `exists -` (and the output was not truncated).
    pub cluster: Cluster,
    /// Lines that did not parse or apply.
    pub bad_lines: Vec<String>,
}

/// Builds a model from `events2 --now` output. Pure.
pub fn snapshot_from_dump(text: &str) -> Snapshot {
    let mut cluster = Cluster::new();
    let mut bad_lines = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() || line.starts_with("[... ") {
            if line.starts_with("[... ") {
                // Captured output was truncated: the model is incomplete.
                return Snapshot {
                    cluster: Cluster::new(),
                    bad_lines: vec![line.to_owned()],
                };
            }
            continue;
        }
        match parse_line(line) {
            Ok(ev) => {
                if let Err(e) = cluster.apply(&ev) {
                    bad_lines.push(format!("{line} ({e})"));
                }
            }
            Err(e) => bad_lines.push(format!("{line} ({e})")),
        }
    }
    Snapshot { cluster, bad_lines }
}
