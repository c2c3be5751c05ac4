//! The runner: spawns an agent action with hard limits and returns a typed
//! result. The only part of the crate that does I/O.
//!
//! Every child, whatever the class:
//! - gets a cleared environment plus exactly what [`crate::env::build`]
//!   computes (never `NOTIFY_SOCKET`), `/` as working directory and
//!   `/dev/null` as stdin;
//! - is the leader of its own process group (`process_group(0)`), so that
//!   a timeout reaches everything it forked: SIGTERM to the group, then,
//!   if anything in the group is still alive after the grace period,
//!   SIGKILL to the group. If the caller drops the future of a run, the
//!   group gets SIGKILL too;
//! - has stdout and stderr captured through bounded buffers
//!   ([`crate::capture`]), so an agent printing gigabytes costs a constant
//!   amount of memory. Once the agent itself has exited, its pipes are read
//!   for at most `linger` more: a daemon it started that kept the pipes open
//!   does not hold the result back.
//!
//! Leftovers of an agent that exits normally (the daemon a `start`
//! launched) stay in the agent's process group and are *not* killed: that
//! is the service. Only a timed-out action has its group killed.
//!
//! Missing and non-executable agents, spawn failures, signals and timeouts
//! are results ([`ExecStatus`]), not errors, with the OCF code Pacemaker's
//! executor reports for them; [`Error`] is for requests that cannot be run
//! at all (bad names, unsupported action for the class, systemd not running).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::{AccessFlags, Pid, access};
use serde::{Serialize, Serializer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::agent::{Action, Agent};
use crate::capture::{Capture, CaptureLimits, Captured, ReasonScanner};
use crate::env::{self, Env};
use crate::exit::{
    Classification, ExecStatus, OcfExit, classify, lsb_action_to_ocf, lsb_status_to_ocf,
};
use crate::metadata::MetaData;
use crate::request::{OpKey, Request};
use crate::{Error, systemd};

/// How often a timed-out group is checked for survivors during the grace
/// period.
const GROUP_POLL: Duration = Duration::from_millis(20);
/// Read buffer per stream.
const READ_CHUNK: usize = 16 << 10;
/// Capture limits for `meta-data` output, which must be read whole.
const META_DATA_LIMITS: CaptureLimits = CaptureLimits {
    head: 4 << 20,
    tail: 0,
};

/// The runner's fixed settings.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// `OCF_ROOT`: agents are `OCF_ROOT/resource.d/PROVIDER/TYPE`.
    pub ocf_root: PathBuf,
    /// Where LSB init scripts are.
    pub lsb_dir: PathBuf,
    /// The `systemctl` binary.
    pub systemctl: PathBuf,
    /// systemd's runtime unit directory; systemd is taken to be running
    /// (PID 1) when it exists, as `sd_booted()` does.
    pub systemd_runtime_dir: PathBuf,
    /// The `ip` binary, for agents run in a network namespace (looked up in
    /// the base `PATH` when not absolute).
    pub ip: PathBuf,
    /// The environment every child starts from (after clearing): by
    /// default `PATH` and `LC_ALL=C`. `NOTIFY_SOCKET` and `OCF_*` are refused.
    pub base_env: Env,
    /// This node's name (`OCF_RESKEY_CRM_meta_on_node`).
    pub node_name: String,
    /// How much of stdout and of stderr to keep.
    pub capture: CaptureLimits,
    /// Between SIGTERM and SIGKILL to a timed-out group.
    pub kill_grace: Duration,
    /// How long pipes are still read after the agent exited.
    pub linger: Duration,
    /// How long to wait for the group to be reaped after SIGKILL before
    /// giving up (a process stuck in uninterruptible sleep).
    pub reap_limit: Duration,
    /// Timeout of the `meta-data` action (Pacemaker: 30 s).
    pub meta_data_timeout: Duration,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        let base_env = [
            (
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            ),
            ("LC_ALL", "C"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let node_name = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".into());
        RunnerConfig {
            ocf_root: PathBuf::from("/usr/lib/ocf"),
            lsb_dir: PathBuf::from("/etc/init.d"),
            systemctl: PathBuf::from("systemctl"),
            systemd_runtime_dir: PathBuf::from("/run/systemd/system"),
            ip: PathBuf::from("ip"),
            base_env,
            node_name,
            capture: CaptureLimits::default(),
            kill_grace: Duration::from_secs(5),
            linger: Duration::from_millis(100),
            reap_limit: Duration::from_secs(10),
            meta_data_timeout: Duration::from_secs(30),
        }
    }
}

/// When and how long, measured by the runner (monotonic clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    /// Wall-clock start, for display.
    pub started_at: SystemTime,
    /// The timeout the action ran under.
    pub timeout: Duration,
    /// Everything else the runner did: building the environment, checking
    /// the agent file (for systemd units, also the follow-up `systemctl`
    /// calls).
    pub prepare: Duration,
    /// The spawn call (fork/exec as the parent sees it).
    pub spawn: Duration,
    /// From spawn to the exit seen by the runner.
    pub run: Duration,
    /// From the exit to the end of output capture.
    pub drain: Duration,
    /// The whole call, as the caller sees it.
    pub elapsed: Duration,
}

impl Timing {
    /// The runner's own share: everything but the agent's run.
    pub fn overhead(&self) -> Duration {
        self.elapsed.saturating_sub(self.run)
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Serialize for Timing {
    /// Durations in microseconds, the start in milliseconds since the epoch.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Timing", 7)?;
        let epoch_ms = self
            .started_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, crate::request::millis);
        st.serialize_field("started_at_ms", &epoch_ms)?;
        st.serialize_field("timeout_us", &micros(self.timeout))?;
        st.serialize_field("prepare_us", &micros(self.prepare))?;
        st.serialize_field("spawn_us", &micros(self.spawn))?;
        st.serialize_field("run_us", &micros(self.run))?;
        st.serialize_field("drain_us", &micros(self.drain))?;
        st.serialize_field("elapsed_us", &micros(self.elapsed))?;
        st.end()
    }
}

/// The outcome of one action: the engine's `AgentDone{res, op, rc, elapsed}`
/// with everything an operator needs to see.
#[derive(Debug, Clone, Serialize)]
pub struct AgentResult {
    /// Resource, action, interval.
    pub key: OpKey,
    /// The agent.
    pub agent: Agent,
    /// The command line run.
    pub argv: Vec<String>,
    /// The agent's PID, which is also its process group ID.
    pub pid: Option<u32>,
    /// How the process ended.
    pub exec: ExecStatus,
    /// The OCF code: the exit code (LSB/systemd mapped), or the code
    /// Pacemaker reports for a timeout, signal, missing agent.
    pub rc: OcfExit,
    /// Success, ignored failure or failure with recovery class; observed
    /// state; degraded.
    pub classification: Classification,
    /// The agent's `ocf-exit-reason:` (OCF), or the runner's own reason
    /// (missing agent, systemd unit state).
    pub exit_reason: Option<String>,
    /// Timing.
    pub timing: Timing,
    /// Captured stdout.
    pub stdout: Captured,
    /// Captured stderr.
    pub stderr: Captured,
}

/// The part of a result the engine needs (`AgentDone{res, op, rc,
/// elapsed}`): small, no captured output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentDone {
    /// Resource, action, interval.
    pub key: OpKey,
    /// The OCF code.
    pub rc: OcfExit,
    /// Pacemaker's reading of it.
    pub classification: Classification,
    /// The exit reason, if any.
    pub exit_reason: Option<String>,
    /// How long the call took.
    pub elapsed: Duration,
}

impl AgentResult {
    /// What the engine is told.
    pub fn done(&self) -> AgentDone {
        AgentDone {
            key: self.key.clone(),
            rc: self.rc,
            classification: self.classification,
            exit_reason: self.exit_reason.clone(),
            elapsed: self.timing.elapsed,
        }
    }

    /// The verdict is success.
    pub fn is_success(&self) -> bool {
        self.classification.is_success()
    }

    /// The whole call's duration.
    pub fn elapsed(&self) -> Duration {
        self.timing.elapsed
    }
}

/// What `Runner::list` finds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AgentList {
    /// OCF agents, by provider and type.
    pub ocf: Vec<Agent>,
    /// LSB init scripts.
    pub lsb: Vec<Agent>,
    /// systemd service units.
    pub systemd: Vec<Agent>,
    /// Why systemd units could not be listed, if so.
    pub systemd_unavailable: Option<String>,
}

/// What [`Runner::run_command`] hands back: how an arbitrary program run
/// under the runner's limits ended, and what it printed.
#[derive(Debug, Clone, Serialize)]
pub struct CommandResult {
    /// The command line run.
    pub argv: Vec<String>,
    /// Its PID, which is also its process group ID (`None` when it was
    /// never started).
    pub pid: Option<u32>,
    /// How it ended (or why it never started).
    pub exec: ExecStatus,
    /// The runner's reason when it was not started (missing or
    /// non-executable program), naming the program.
    pub reason: Option<String>,
    /// The whole call, as the caller sees it.
    #[serde(rename = "elapsed_us", serialize_with = "ser_micros")]
    pub elapsed: Duration,
    /// Captured stdout.
    pub stdout: Captured,
    /// Captured stderr.
    pub stderr: Captured,
}

fn ser_micros<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(micros(*d))
}

/// What `execute` hands back.
struct Exec {
    status: ExecStatus,
    pid: Option<u32>,
    stdout: Captured,
    stderr: Captured,
    reason: Option<String>,
    spawn: Duration,
    run: Duration,
    drain: Duration,
}

impl Exec {
    /// A result for a process that was never started.
    fn not_started(status: ExecStatus) -> Exec {
        Exec {
            status,
            pid: None,
            stdout: Captured::default(),
            stderr: Captured::default(),
            reason: None,
            spawn: Duration::ZERO,
            run: Duration::ZERO,
            drain: Duration::ZERO,
        }
    }
}

/// Sends SIGKILL to the process group when dropped while armed: a run
/// whose future is dropped halfway leaves nothing behind.
struct GroupGuard {
    pgid: Option<Pid>,
    armed: bool,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.armed {
            signal_group(self.pgid, Signal::SIGKILL);
        }
    }
}

fn signal_group(pgid: Option<Pid>, sig: Signal) {
    if let Some(p) = pgid {
        // ESRCH: nothing left in the group.
        let _ = killpg(p, sig);
    }
}

/// Whether process group `pgid` has a live (non-zombie) member. Zombies do
/// not count: they are dead, and where PID 1 does not reap orphans they
/// would stay forever.
pub fn process_group_alive(pgid: u32) -> bool {
    let Ok(p) = i32::try_from(pgid) else {
        return false;
    };
    if killpg(Pid::from_raw(p), None) == Err(Errno::ESRCH) {
        return false;
    }
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return true;
    };
    let pgrp_field = p.to_string();
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{name}/stat")) else {
            continue;
        };
        // "pid (comm) S ppid pgrp ...": comm may contain anything, so
        // split after the last ')'.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let (Some(state), Some(_ppid), Some(pgrp)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if pgrp == pgrp_field && state != "Z" && state != "X" {
            return true;
        }
    }
    false
}

/// Reads the next chunk, or `None` at EOF or error; pends forever on a
/// closed (`None`) stream so `select!` can keep polling it.
async fn read_some<R: AsyncRead + Unpin>(r: &mut Option<R>, buf: &mut [u8]) -> Option<usize> {
    match r {
        Some(r) => match r.read(buf).await {
            Ok(0) | Err(_) => None,
            Ok(n) => Some(n),
        },
        None => std::future::pending().await,
    }
}

fn spawn_error(e: &io::Error) -> ExecStatus {
    match e.raw_os_error() {
        Some(libc::ENOENT | libc::ENOTDIR | libc::EISDIR | libc::ENOEXEC | libc::ELOOP) => {
            ExecStatus::NotInstalled
        }
        Some(libc::EACCES | libc::EPERM) => ExecStatus::NotExecutable,
        _ => ExecStatus::SpawnFailed {
            error: e.to_string(),
        },
    }
}

/// Checks that `path` is an executable regular file, as Pacemaker does
/// before running an agent.
fn check_agent_file(path: &Path) -> Result<(), (ExecStatus, String)> {
    let shown = path.display();
    match std::fs::metadata(path) {
        Err(e) => {
            let st = spawn_error(&e);
            Err((st, format!("{shown}: {e}")))
        }
        Ok(m) if !m.is_file() => Err((ExecStatus::NotInstalled, format!("{shown} is not a file"))),
        Ok(_) => match access(path, AccessFlags::X_OK) {
            Ok(()) => Ok(()),
            Err(e) => Err((
                ExecStatus::NotExecutable,
                format!("{shown} is not executable: {}", e.desc()),
            )),
        },
    }
}

/// Runs agent actions. Cheap to clone; one runner serves any number of
/// concurrent actions.
#[derive(Debug, Clone)]
pub struct Runner {
    cfg: RunnerConfig,
}

impl Runner {
    /// A runner with these settings (the base environment is checked).
    pub fn new(cfg: RunnerConfig) -> Result<Runner, Error> {
        env::check_base(&cfg.base_env)?;
        Ok(Runner { cfg })
    }

    /// The settings.
    pub fn config(&self) -> &RunnerConfig {
        &self.cfg
    }

    /// Where an OCF agent or LSB script lives (`None` for systemd units).
    pub fn agent_path(&self, agent: &Agent) -> Option<PathBuf> {
        match agent {
            Agent::Ocf { provider, kind } => Some(
                self.cfg
                    .ocf_root
                    .join("resource.d")
                    .join(provider)
                    .join(kind),
            ),
            Agent::Lsb { name } => Some(self.cfg.lsb_dir.join(name)),
            Agent::Systemd { .. } => None,
        }
    }

    /// Whether systemd units can be managed here.
    pub fn systemd_available(&self) -> Result<(), Error> {
        if systemd::booted(&self.cfg.systemd_runtime_dir) {
            Ok(())
        } else {
            Err(Error::SystemdUnavailable(format!(
                "systemd is not running as the init system (PID 1) on this machine ({} does not exist), so systemd units cannot be managed here",
                self.cfg.systemd_runtime_dir.display()
            )))
        }
    }

    /// Runs one action as the daemon does, and classifies the result.
    pub async fn run(&self, req: &Request) -> Result<AgentResult, Error> {
        let t0 = Instant::now();
        let started_at = SystemTime::now();
        let env = env::build(
            req,
            &self.cfg.base_env,
            &self.cfg.ocf_root,
            &self.cfg.node_name,
        )?;
        let (exec, argv, rc, reason) = match &req.agent {
            Agent::Ocf { .. } => {
                let path = self.agent_path(&req.agent).unwrap_or_default();
                let argv = self.argv(req, &path, req.action.as_str());
                let exec = self.run_file(&path, &argv, &env, req.timeout, true).await;
                let rc = match &exec.status {
                    ExecStatus::Exited { code } => OcfExit::from_code(*code),
                    other => other.synthetic_rc().unwrap_or(OcfExit::ErrGeneric),
                };
                (exec, argv, rc, None)
            }
            Agent::Lsb { name } => self.run_lsb(req, name, &env).await?,
            Agent::Systemd { unit } => self.run_systemd(req, unit, &env).await?,
        };
        let reason = reason.or_else(|| exec.reason.clone());
        let classification = classify(req.op_kind(), &exec.status, rc);
        let elapsed = t0.elapsed();
        let prepare = elapsed.saturating_sub(exec.spawn + exec.run + exec.drain);
        let result = AgentResult {
            key: req.key(),
            agent: req.agent.clone(),
            argv: argv
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
            pid: exec.pid,
            rc,
            classification,
            exit_reason: reason,
            timing: Timing {
                started_at,
                timeout: req.timeout,
                prepare,
                spawn: exec.spawn,
                run: exec.run,
                drain: exec.drain,
                elapsed,
            },
            stdout: exec.stdout,
            stderr: exec.stderr,
            exec: exec.status,
        };
        match result.classification.verdict {
            crate::Verdict::Failed(recovery) => tracing::warn!(
                res = %result.key.resource,
                op = %result.key,
                agent = %result.agent,
                rc = result.rc.code(),
                exec = %result.exec,
                ?recovery,
                reason = result.exit_reason.as_deref().unwrap_or(""),
                "agent action failed"
            ),
            _ => tracing::debug!(
                res = %result.key.resource,
                op = %result.key,
                rc = result.rc.code(),
                elapsed_us = micros(result.timing.elapsed),
                "agent action done"
            ),
        }
        Ok(result)
    }

    /// The command line: `AGENT ACTION`, behind `ip netns exec NS` when the
    /// request names a namespace.
    fn argv(&self, req: &Request, agent: &Path, action: &str) -> Vec<OsString> {
        let mut argv: Vec<OsString> = Vec::new();
        if let Some(ns) = &req.netns {
            argv.extend([
                self.cfg.ip.clone().into_os_string(),
                "netns".into(),
                "exec".into(),
                ns.into(),
            ]);
        }
        argv.push(agent.as_os_str().to_os_string());
        argv.push(action.into());
        argv
    }

    /// Checks the agent file, then runs `argv` (the file, maybe behind a
    /// namespace wrapper); a missing or non-executable file is a result.
    async fn run_file(
        &self,
        path: &Path,
        argv: &[OsString],
        env: &Env,
        timeout: Duration,
        scan_reason: bool,
    ) -> Exec {
        match check_agent_file(path) {
            Err((status, why)) => {
                let mut e = Exec::not_started(status);
                e.reason = Some(why);
                e
            }
            Ok(()) => {
                self.execute(argv, env, timeout, self.cfg.capture, scan_reason)
                    .await
            }
        }
    }

    fn unsupported(req: &Request, class: &'static str) -> Error {
        Error::Unsupported {
            agent: req.agent.to_string(),
            class,
            action: req.action.to_string(),
        }
    }

    async fn run_lsb(
        &self,
        req: &Request,
        name: &str,
        env: &Env,
    ) -> Result<(Exec, Vec<OsString>, OcfExit, Option<String>), Error> {
        let (arg, is_status) = match &req.action {
            Action::Monitor => ("status", true),
            Action::Start => ("start", false),
            Action::Stop => ("stop", false),
            Action::Reload => ("reload", false),
            Action::Other(s) if matches!(s.as_str(), "status" | "restart" | "force-reload") => {
                (s.as_str(), s == "status")
            }
            _ => return Err(Self::unsupported(req, "lsb")),
        };
        let path = self.cfg.lsb_dir.join(name);
        let argv = self.argv(req, &path, arg);
        let exec = self.run_file(&path, &argv, env, req.timeout, false).await;
        let rc = match &exec.status {
            ExecStatus::Exited { code } if is_status => lsb_status_to_ocf(*code),
            ExecStatus::Exited { code } => lsb_action_to_ocf(*code),
            other => other.synthetic_rc().unwrap_or(OcfExit::ErrGeneric),
        };
        Ok((exec, argv, rc, None))
    }

    async fn systemctl(
        &self,
        args: &[&str],
        env: &Env,
        timeout: Duration,
    ) -> (Exec, Vec<OsString>) {
        let mut argv: Vec<OsString> = vec![self.cfg.systemctl.clone().into_os_string()];
        argv.extend(args.iter().map(OsString::from));
        let exec = self
            .execute(&argv, env, timeout, self.cfg.capture, false)
            .await;
        (exec, argv)
    }

    /// `systemctl show` summary for an exit reason (best effort).
    async fn unit_summary(&self, unit: &str, env: &Env) -> Option<String> {
        let args = [
            "show",
            "--no-pager",
            &format!("--property={}", systemd::SHOW_PROPERTIES),
            unit,
        ];
        let (e, _) = self.systemctl(&args, env, Duration::from_secs(10)).await;
        let s = systemd::summary(&systemd::parse_show(&e.stdout.text()));
        (!s.is_empty()).then_some(s)
    }

    async fn run_systemd(
        &self,
        req: &Request,
        unit: &str,
        env: &Env,
    ) -> Result<(Exec, Vec<OsString>, OcfExit, Option<String>), Error> {
        let verb = match &req.action {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Monitor => "is-active",
            Action::Other(s) if s == "status" => "is-active",
            _ => return Err(Self::unsupported(req, "systemd")),
        };
        if req.netns.is_some() {
            return Err(Error::InvalidParam {
                name: "netns".into(),
                reason: "a systemd unit runs where systemd puts it, not in a network namespace"
                    .into(),
            });
        }
        self.systemd_available()?;
        let deadline = Instant::now() + req.timeout;
        let (exec, argv) = self
            .systemctl(&[verb, "--no-pager", unit], env, req.timeout)
            .await;
        let code = match &exec.status {
            ExecStatus::Exited { code } => *code,
            other => {
                let rc = other.synthetic_rc().unwrap_or(OcfExit::ErrGeneric);
                return Ok((exec, argv, rc, None));
            }
        };
        let (rc, reason) = match verb {
            "is-active" => {
                let state = exec.stdout.text();
                systemd::active_state_to_ocf(state.lines().next().unwrap_or(""))
            }
            // Stopping a unit that is not loaded: it is stopped.
            "stop" if code == 0 || code == 5 => (OcfExit::Success, None),
            // The job finished; confirm the unit really is active.
            "start" if code == 0 => {
                let left = deadline.saturating_duration_since(Instant::now());
                let (check, _) = self
                    .systemctl(
                        &["is-active", "--no-pager", unit],
                        env,
                        left.max(Duration::from_secs(1)),
                    )
                    .await;
                let (rc, why) =
                    systemd::active_state_to_ocf(check.stdout.text().lines().next().unwrap_or(""));
                let why = if rc == OcfExit::Success {
                    None
                } else {
                    self.unit_summary(unit, env).await.or(why)
                };
                (
                    if rc == OcfExit::Success {
                        rc
                    } else {
                        OcfExit::ErrGeneric
                    },
                    why,
                )
            }
            // systemctl's LSB-style code 5: the unit does not exist.
            "start" if code == 5 => (
                OcfExit::ErrInstalled,
                Some(format!("unit {unit} not found")),
            ),
            _ => (OcfExit::ErrGeneric, self.unit_summary(unit, env).await),
        };
        Ok((exec, argv, rc, reason))
    }

    /// Spawns `argv` and waits for it under `timeout`, capturing output.
    async fn execute(
        &self,
        argv: &[OsString],
        env: &Env,
        timeout: Duration,
        limits: CaptureLimits,
        scan_reason: bool,
    ) -> Exec {
        self.execute_with_input(argv, env, timeout, limits, scan_reason, None)
            .await
    }

    /// [`Runner::execute`], with `input` written to the child's stdin (then
    /// closed) instead of `/dev/null`.
    async fn execute_with_input(
        &self,
        argv: &[OsString],
        env: &Env,
        timeout: Duration,
        limits: CaptureLimits,
        scan_reason: bool,
        input: Option<Vec<u8>>,
    ) -> Exec {
        let t0 = Instant::now();
        let mut cmd = tokio::process::Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .env_clear()
            .envs(env)
            .current_dir("/")
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        // ETXTBSY: the program file is still open for writing somewhere,
        // typically by a child another thread forked in the moment before
        // its exec closed the descriptor (an agent just installed or
        // updated). It passes within milliseconds: try again a few times.
        let mut spawned = cmd.spawn();
        for wait_ms in [5, 20, 50, 100] {
            match &spawned {
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                    tokio::time::sleep(Duration::from_millis(wait_ms)).await;
                    spawned = cmd.spawn();
                }
                _ => break,
            }
        }
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                let mut ex = Exec::not_started(spawn_error(&e));
                ex.reason = Some(format!("cannot execute {}: {e}", argv[0].to_string_lossy()));
                ex.spawn = t0.elapsed();
                return ex;
            }
        };
        let spawned = Instant::now();
        let pid = child.id();
        let pgid = pid.and_then(|p| i32::try_from(p).ok()).map(Pid::from_raw);
        let mut guard = GroupGuard { pgid, armed: true };
        let mut out = child.stdout.take();
        let mut err = child.stderr.take();
        // The input is written while the output is read (a child may print
        // before it has read everything); a child that never reads it and
        // exits, or is killed, ends the write with EPIPE. The pipe closes
        // when the write is done.
        let stdin = child.stdin.take();
        let mut writing = stdin.is_some();
        let write = async move {
            if let (Some(mut w), Some(data)) = (stdin, input) {
                let _ = w.write_all(&data).await;
            }
        };
        tokio::pin!(write);
        let mut cap_out = Capture::new(limits);
        let mut cap_err = Capture::new(limits);
        let mut reason = ReasonScanner::new();
        let mut obuf = vec![0u8; READ_CHUNK];
        let mut ebuf = vec![0u8; READ_CHUNK];

        enum Phase {
            Running,
            Terminating { until: Instant },
            Killed { until: Instant },
        }
        let timeout_at = spawned + timeout;
        let mut phase = Phase::Running;
        let mut status: Option<io::Result<std::process::ExitStatus>> = None;
        let mut exited_at: Option<Instant> = None;
        let (mut timed_out, mut killed, mut unreaped) = (false, false, false);
        let sleep = tokio::time::sleep_until(timeout_at);
        tokio::pin!(sleep);
        let mut wake = timeout_at;

        loop {
            let pipes_open = out.is_some() || err.is_some();
            if status.is_some() && !pipes_open {
                // After SIGTERM, wait (up to the grace period) for the whole
                // group, not only the agent.
                let waiting_for_group = matches!(phase, Phase::Terminating { .. })
                    && pid.is_some_and(process_group_alive);
                if !waiting_for_group {
                    break;
                }
            }
            let mut next = match phase {
                Phase::Running => timeout_at,
                Phase::Terminating { until } => until.min(Instant::now() + GROUP_POLL),
                Phase::Killed { until } => until,
            };
            if let (Some(ex), true) = (exited_at, pipes_open) {
                next = next.min(ex + self.cfg.linger);
            }
            if next != wake {
                sleep.as_mut().reset(next);
                wake = next;
            }
            tokio::select! {
                r = read_some(&mut out, &mut obuf) => match r {
                    Some(n) => cap_out.push(&obuf[..n]),
                    None => out = None,
                },
                r = read_some(&mut err, &mut ebuf) => match r {
                    Some(n) => {
                        cap_err.push(&ebuf[..n]);
                        if scan_reason {
                            reason.push(&ebuf[..n]);
                        }
                    }
                    None => err = None,
                },
                () = &mut write, if writing => writing = false,
                st = child.wait(), if status.is_none() => {
                    status = Some(st);
                    exited_at = Some(Instant::now());
                }
                () = &mut sleep => {
                    let now = Instant::now();
                    if exited_at.is_some_and(|ex| now >= ex + self.cfg.linger) {
                        // The agent is gone; whoever still holds its pipes
                        // is not waited for.
                        out = None;
                        err = None;
                    }
                    match phase {
                        Phase::Running if status.is_none() && now >= timeout_at => {
                            timed_out = true;
                            signal_group(pgid, Signal::SIGTERM);
                            phase = Phase::Terminating { until: now + self.cfg.kill_grace };
                        }
                        Phase::Terminating { until } if now >= until => {
                            killed = true;
                            signal_group(pgid, Signal::SIGKILL);
                            phase = Phase::Killed { until: now + self.cfg.reap_limit };
                        }
                        Phase::Killed { until } if now >= until => {
                            unreaped = status.is_none() || pid.is_some_and(process_group_alive);
                            break;
                        }
                        _ => {}
                    }
                }
            }
        }
        guard.armed = false;
        let end = Instant::now();
        let exit_seen = exited_at.unwrap_or(end);
        let status = if timed_out {
            ExecStatus::TimedOut { killed, unreaped }
        } else {
            match status {
                Some(Ok(st)) => ExecStatus::from_exit(st),
                Some(Err(e)) => ExecStatus::SpawnFailed {
                    error: format!("waiting for the agent: {e}"),
                },
                None => ExecStatus::SpawnFailed {
                    error: "the agent was not reaped".into(),
                },
            }
        };
        Exec {
            status,
            pid,
            stdout: cap_out.finish(),
            stderr: cap_err.finish(),
            reason: if scan_reason { reason.finish() } else { None },
            spawn: spawned - t0,
            run: exit_seen - spawned,
            drain: end - exit_seen,
        }
    }

    /// Runs `argv` (`argv[0]` a path to the program, not looked up in
    /// `PATH`) under the same hard limits as an agent: the base
    /// environment only, `/` as working directory, its own process group
    /// killed on timeout (SIGTERM, then SIGKILL after the grace period),
    /// output captured within the configured limits. `input` is written to
    /// its stdin, which is then closed: the way to hand a program secrets
    /// that must not show in `ps`. A missing or non-executable program is
    /// a result ([`ExecStatus::NotInstalled`], [`ExecStatus::NotExecutable`])
    /// whose `reason` names it.
    pub async fn run_command(
        &self,
        argv: &[OsString],
        input: &[u8],
        timeout: Duration,
    ) -> CommandResult {
        let t0 = Instant::now();
        let shown = argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let exec = match argv.first().map(|p| check_agent_file(Path::new(p))) {
            None => {
                let mut e = Exec::not_started(ExecStatus::NotInstalled);
                e.reason = Some("empty command line".into());
                e
            }
            Some(Err((status, why))) => {
                let mut e = Exec::not_started(status);
                e.reason = Some(why);
                e
            }
            Some(Ok(())) => {
                self.execute_with_input(
                    argv,
                    &self.cfg.base_env,
                    timeout,
                    self.cfg.capture,
                    false,
                    Some(input.to_vec()),
                )
                .await
            }
        };
        CommandResult {
            argv: shown,
            pid: exec.pid,
            exec: exec.status,
            reason: exec.reason,
            elapsed: t0.elapsed(),
            stdout: exec.stdout,
            stderr: exec.stderr,
        }
    }

    /// The agent's meta-data: OCF agents run `meta-data` (under
    /// `meta_data_timeout`), LSB scripts are read for their header, systemd
    /// units get Pacemaker's defaults.
    pub async fn meta_data(&self, agent: &Agent) -> Result<MetaData, Error> {
        match agent {
            Agent::Ocf { kind, .. } => {
                let path = self.agent_path(agent).unwrap_or_default();
                if let Err((_, why)) = check_agent_file(&path) {
                    return Err(match std::fs::metadata(&path) {
                        Err(e) if e.kind() == io::ErrorKind::NotFound => Error::NotInstalled {
                            agent: agent.to_string(),
                            path,
                        },
                        _ => Error::MetaDataAction {
                            agent: agent.to_string(),
                            detail: why,
                        },
                    });
                }
                let req = Request::new(
                    kind,
                    agent.clone(),
                    Action::MetaData,
                    self.cfg.meta_data_timeout,
                );
                let env = env::build(
                    &req,
                    &self.cfg.base_env,
                    &self.cfg.ocf_root,
                    &self.cfg.node_name,
                )?;
                let argv = vec![path.into_os_string(), "meta-data".into()];
                let exec = self
                    .execute(&argv, &env, req.timeout, META_DATA_LIMITS, true)
                    .await;
                if exec.status != (ExecStatus::Exited { code: 0 }) {
                    let tail = exec.stderr.text();
                    let tail = tail.trim();
                    let detail = match (&exec.reason, tail.is_empty()) {
                        (Some(r), _) => format!("{}: {r}", exec.status),
                        (None, false) => format!("{}: {}", exec.status, last_lines(tail, 5)),
                        (None, true) => exec.status.to_string(),
                    };
                    return Err(Error::MetaDataAction {
                        agent: agent.to_string(),
                        detail,
                    });
                }
                if !exec.stdout.is_complete() {
                    return Err(Error::MetaDataAction {
                        agent: agent.to_string(),
                        detail: format!("printed more than {} bytes", META_DATA_LIMITS.head),
                    });
                }
                MetaData::parse(&exec.stdout.text()).map_err(|source| Error::MetaData {
                    agent: agent.to_string(),
                    source,
                })
            }
            Agent::Lsb { name } => {
                let path = self.cfg.lsb_dir.join(name);
                let bytes = std::fs::read(&path).map_err(|e| {
                    if e.kind() == io::ErrorKind::NotFound {
                        Error::NotInstalled {
                            agent: agent.to_string(),
                            path: path.clone(),
                        }
                    } else {
                        Error::Io {
                            context: format!("reading {}", path.display()),
                            source: e,
                        }
                    }
                })?;
                Ok(MetaData::for_lsb(name, &String::from_utf8_lossy(&bytes)))
            }
            Agent::Systemd { unit } => {
                self.systemd_available()?;
                Ok(MetaData::for_systemd(unit))
            }
        }
    }

    /// Lists the agents installed here: OCF agents under the OCF root
    /// (hidden names, starting with `.`, left out), executable LSB scripts,
    /// and, where systemd runs, service units.
    pub async fn list(&self) -> Result<AgentList, Error> {
        let mut list = AgentList::default();
        let rd = self.cfg.ocf_root.join("resource.d");
        for provider in sorted_entries(&rd)? {
            let dir = rd.join(&provider);
            if provider.starts_with('.') || !dir.is_dir() {
                continue;
            }
            for kind in sorted_entries(&dir)? {
                if kind.starts_with('.') || check_agent_file(&dir.join(&kind)).is_err() {
                    continue;
                }
                if let Ok(a) = Agent::ocf(&provider, &kind) {
                    list.ocf.push(a);
                }
            }
        }
        if self.cfg.lsb_dir.is_dir() {
            for name in sorted_entries(&self.cfg.lsb_dir)? {
                let skip = name.starts_with('.')
                    || matches!(
                        name.as_str(),
                        "README" | "skeleton" | "rc" | "rcS" | "functions"
                    )
                    || name.contains(".dpkg-");
                if skip || check_agent_file(&self.cfg.lsb_dir.join(&name)).is_err() {
                    continue;
                }
                if let Ok(a) = format!("lsb:{name}").parse() {
                    list.lsb.push(a);
                }
            }
        }
        match self.systemd_available() {
            Err(e) => list.systemd_unavailable = Some(e.to_string()),
            Ok(()) => {
                let args = [
                    "list-unit-files",
                    "--type=service",
                    "--no-legend",
                    "--no-pager",
                    "--plain",
                ];
                let (e, _) = self
                    .systemctl(&args, &self.cfg.base_env, Duration::from_secs(30))
                    .await;
                if e.status != (ExecStatus::Exited { code: 0 }) {
                    list.systemd_unavailable =
                        Some(format!("systemctl list-unit-files {}", e.status));
                }
                for line in e.stdout.text().lines() {
                    let Some(unit) = line.split_whitespace().next() else {
                        continue;
                    };
                    // Templates (foo@.service) cannot run as they are.
                    if unit.ends_with("@.service") {
                        continue;
                    }
                    if let Ok(a) = format!("systemd:{unit}").parse() {
                        list.systemd.push(a);
                    }
                }
            }
        }
        Ok(list)
    }
}

fn last_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

fn sorted_entries(dir: &Path) -> Result<Vec<String>, Error> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::Io {
                context: format!("listing {}", dir.display()),
                source: e,
            });
        }
    };
    let mut names: Vec<String> = rd
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names)
}

/// Parameters with the agent's defaults filled in for those not given: what
/// the agent will effectively see (agents apply the same defaults).
pub fn with_defaults(md: &MetaData, params: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut all = md.defaults();
    all.extend(params.iter().map(|(k, v)| (k.clone(), v.clone())));
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawn_errors_map_like_pacemaker() {
        let e = |n| io::Error::from_raw_os_error(n);
        assert_eq!(spawn_error(&e(libc::ENOENT)), ExecStatus::NotInstalled);
        assert_eq!(spawn_error(&e(libc::ENOEXEC)), ExecStatus::NotInstalled);
        assert_eq!(spawn_error(&e(libc::EACCES)), ExecStatus::NotExecutable);
        assert!(matches!(
            spawn_error(&e(libc::ENOMEM)),
            ExecStatus::SpawnFailed { .. }
        ));
    }

    #[test]
    fn own_group_is_alive_and_a_free_id_is_not() {
        let me = nix::unistd::getpgrp().as_raw();
        assert!(process_group_alive(u32::try_from(me).unwrap()));
        // PIDs are below 2^22 on Linux.
        assert!(!process_group_alive(4_000_000_000));
    }

    #[test]
    fn base_env_is_checked() {
        let mut cfg = RunnerConfig::default();
        cfg.base_env.insert("NOTIFY_SOCKET".into(), "/run/x".into());
        assert!(matches!(Runner::new(cfg), Err(Error::InvalidParam { .. })));
        let r = Runner::new(RunnerConfig::default()).unwrap();
        assert_eq!(
            r.agent_path(&"ocf:heartbeat:Dummy".parse().unwrap()),
            Some(PathBuf::from("/usr/lib/ocf/resource.d/heartbeat/Dummy"))
        );
    }
}
