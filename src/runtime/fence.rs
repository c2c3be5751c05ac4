//! Fencing the peer through fence agents (`fence_ipmilan`, `fence_virsh`,
//! `fence_xvm`, `fence_aws`, ...), in levels.
//!
//! The fence-agents protocol, as the agents' shared library implements it:
//! the agent reads `name=value` lines on stdin (blank lines and `#` lines
//! skipped, `-` and `_` alike in names, an unknown name ignored with a
//! warning, `nodename` ignored silently by agents that do not use it;
//! `port` and `plug` are the same parameter) and exits 0 on success and
//! non-zero on any failure. `status` is the exception: 0 means the plug is
//! ON, 2 that it is OFF, anything else an error. `monitor` checks the
//! device, `list` prints its plugs, `metadata` prints XML; `reboot` is off
//! then on.
//!
//! A [`Fencer`] holds the target node and its levels. A level succeeds when
//! every device in it (two power supplies, say) ran `off` successfully and
//! then a `status` on every device reports OFF: an agent that says
//! "Success" while the node still runs fails its level. Devices of a level
//! run one after the other, and the first failed `off` ends the level (as
//! in Pacemaker's fencing topology); escalation to the next level is the
//! caller's, or [`Fencer::fence_through`]'s.
//!
//! Each agent runs through [`ra::Runner::run_command`]: own process group,
//! killed at the device's timeout (SIGTERM, then SIGKILL after
//! [`KILL_GRACE`]) or when the future is dropped; the base environment only
//! (`PATH`, `LC_ALL=C`); `/` as working directory; stdout and stderr
//! captured within fixed bounds. Parameters, passwords included, go on
//! stdin and never on the command line, so `ps` does not show them.
//!
//! When every level fails, an operator who has made sure the peer is down
//! confirms it by hand (`hapair fence confirm NODE`): the daemon then
//! records [`Fencer::manual_confirmation`], and
//! [`Fencer::fence_through_or_confirmed`] lets such a confirmation end an
//! escalation that is still running.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ra::{CaptureLimits, ExecStatus, Runner, RunnerConfig};
use serde::Serializer;
use tracing::{info, warn};

/// Where a bare agent name is looked up, in this order.
pub const AGENT_DIRS: [&str; 3] = ["/usr/sbin", "/sbin", "/usr/bin"];

/// Between SIGTERM and SIGKILL to a timed-out agent's process group.
pub const KILL_GRACE: Duration = Duration::from_secs(2);

/// The level number that stands for a manual confirmation in results.
pub const MANUAL_LEVEL: u8 = 0;

/// Parameters the fencer sets itself; the same names in a device's
/// parameters are left out.
const RESERVED: [&str; 3] = ["action", "option", "nodename"];

/// Parameter names whose values are kept out of `Debug` output.
const SECRET_HINTS: [&str; 6] = ["pass", "secret", "token", "key", "community", "credential"];

/// Resolves an agent name: a name with a `/` is a path and is kept; a bare
/// name is looked up in [`AGENT_DIRS`]. A bare name found nowhere resolves
/// to `/usr/sbin/NAME`, so that running it fails with an error naming the
/// path looked for.
pub fn resolve_agent(name: &str) -> PathBuf {
    if name.contains('/') {
        return PathBuf::from(name);
    }
    AGENT_DIRS
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| Path::new(AGENT_DIRS[0]).join(name))
}

/// One fence device: an agent and its parameters.
#[derive(Clone)]
pub struct FenceDevice {
    /// The agent's path (see [`resolve_agent`] for bare names).
    pub agent: PathBuf,
    /// Parameters written to the agent's stdin (`ip`, `username`,
    /// `password`, `plug`, ...). `action`, `option` and `nodename` are the
    /// fencer's own and left out. Without `plug` or `port`, the target's
    /// node name is passed as `plug`.
    pub params: BTreeMap<String, String>,
    /// Timeout of each action (`off`, then `status`, each get the whole
    /// timeout).
    pub timeout: Duration,
}

impl FenceDevice {
    /// A device running `agent` (a path, or a bare name looked up in
    /// [`AGENT_DIRS`]).
    pub fn new(agent: &str, params: BTreeMap<String, String>, timeout: Duration) -> FenceDevice {
        FenceDevice {
            agent: resolve_agent(agent),
            params,
            timeout,
        }
    }

    /// The agent's file name, for messages.
    pub fn agent_name(&self) -> String {
        self.agent.file_name().map_or_else(
            || self.agent.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    }

    /// The stdin lines for `action` against `target`.
    fn input(&self, action: &str, target: &str) -> Result<Vec<u8>, String> {
        let mut lines = vec![format!("action={action}"), format!("nodename={target}")];
        if !self.params.contains_key("plug") && !self.params.contains_key("port") {
            lines.push(format!("plug={target}"));
        }
        for (k, v) in &self.params {
            if RESERVED.contains(&k.as_str()) {
                continue;
            }
            if k.is_empty() || k.contains(['=', '\n', '\r']) || k.starts_with('#') {
                return Err(format!("bad parameter name {k:?}"));
            }
            if v.contains(['\n', '\r']) {
                return Err(format!("parameter {k} contains a line break"));
            }
            lines.push(format!("{k}={v}"));
        }
        let mut input = lines.join("\n").into_bytes();
        input.push(b'\n');
        Ok(input)
    }
}

impl fmt::Debug for FenceDevice {
    /// Values of password-like parameters are shown as `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let params: BTreeMap<&str, &str> = self
            .params
            .iter()
            .map(|(k, v)| {
                let lk = k.to_ascii_lowercase();
                let secret = SECRET_HINTS.iter().any(|h| lk.contains(h));
                (k.as_str(), if secret { "***" } else { v.as_str() })
            })
            .collect();
        f.debug_struct("FenceDevice")
            .field("agent", &self.agent)
            .field("params", &params)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A fencing level: all its devices must succeed (Pacemaker topology
/// semantics).
#[derive(Debug, Clone)]
pub struct FenceLevel {
    /// The devices, run in this order.
    pub devices: Vec<FenceDevice>,
}

fn ser_millis<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// One agent run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FenceAttempt {
    /// The level (1-based; [`MANUAL_LEVEL`] for a manual confirmation).
    pub level: u8,
    /// The device: its agent's file name, with `#N` (its 1-based position)
    /// when the level has more than one device.
    pub device: String,
    /// `off`, `status`, `monitor`, or `confirm` for a manual confirmation.
    pub action: String,
    /// The action did what was asked: `off` exited 0, `status` reported
    /// OFF (exit 2), `monitor` exited 0.
    pub ok: bool,
    /// The agent's exit code, if it exited.
    pub rc: Option<i32>,
    /// How long the run took.
    #[serde(rename = "elapsed_ms", serialize_with = "ser_millis")]
    pub elapsed: Duration,
    /// What the agent said: after a success its last stdout line ("Success:
    /// Powered OFF"), after a failure its last stderr line (either falls
    /// back on the other stream); or what happened to it ("timed out after
    /// 20s", "cannot run ...", "status still ON after off: ...").
    pub message: String,
}

/// What a level did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LevelOutcome {
    /// The level (1-based; [`MANUAL_LEVEL`] for a manual confirmation).
    pub level: u8,
    /// Every device's `off` succeeded and every `status` said OFF.
    pub confirmed_off: bool,
    /// Every agent run, in order.
    pub attempts: Vec<FenceAttempt>,
}

/// Fences one node through its levels.
#[derive(Debug, Clone)]
pub struct Fencer {
    target: String,
    levels: Vec<FenceLevel>,
    runner: Runner,
}

impl Fencer {
    /// A fencer for `target` (passed to agents as `nodename=`, and as
    /// `plug=` to devices whose parameters name no plug or port), with
    /// levels 1.. in order.
    pub fn new(target: &str, levels: Vec<FenceLevel>) -> Fencer {
        let cfg = RunnerConfig {
            kill_grace: KILL_GRACE,
            // Agents print little; keep enough of a chatty one to show
            // where it went wrong.
            capture: CaptureLimits {
                head: 16 << 10,
                tail: 16 << 10,
            },
            ..RunnerConfig::default()
        };
        // The default base environment always passes the check.
        let runner = Runner::new(cfg).expect("the default base environment is valid");
        Fencer {
            target: target.to_string(),
            levels,
            runner,
        }
    }

    /// The node this fencer fences.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// How many levels there are.
    pub fn levels(&self) -> usize {
        self.levels.len()
    }

    /// Runs level `level` (1-based) against the target: `off` on each
    /// device in order (the first failure ends the level), then `status`
    /// on each. `confirmed_off` only when every `off` exited 0 and every
    /// `status` exited 2 (OFF). Dropping the future kills the running
    /// agent's process group.
    pub async fn fence(&self, level: u8) -> LevelOutcome {
        let mut out = LevelOutcome {
            level,
            confirmed_off: false,
            attempts: Vec::new(),
        };
        let Some(lv) = usize::from(level)
            .checked_sub(1)
            .and_then(|i| self.levels.get(i))
        else {
            out.attempts.push(self.not_run(
                level,
                "-",
                "off",
                format!(
                    "no fence level {level} for {} ({} configured)",
                    self.target,
                    self.levels.len()
                ),
            ));
            return out;
        };
        if lv.devices.is_empty() {
            out.attempts.push(self.not_run(
                level,
                "-",
                "off",
                format!("fence level {level} has no devices"),
            ));
            return out;
        }
        info!(target_node = %self.target, level, devices = lv.devices.len(), "fencing");
        for (i, dev) in lv.devices.iter().enumerate() {
            let a = self.run(level, &label(lv, i), dev, "off").await;
            let ok = a.ok;
            out.attempts.push(a);
            if !ok {
                return out;
            }
        }
        let mut all_off = true;
        for (i, dev) in lv.devices.iter().enumerate() {
            let a = self.run(level, &label(lv, i), dev, "status").await;
            all_off &= a.ok;
            out.attempts.push(a);
        }
        out.confirmed_off = all_off;
        if all_off {
            info!(target_node = %self.target, level, "fencing confirmed: the node is off");
        } else {
            warn!(target_node = %self.target, level, "fencing level did not confirm the node off");
        }
        out
    }

    /// Runs the levels in order until one confirms the target off: that
    /// level's number (or `None` when every level failed), and every
    /// level's outcome.
    pub async fn fence_through(&self) -> (Option<u8>, Vec<LevelOutcome>) {
        self.fence_through_or_confirmed(std::future::pending::<String>())
            .await
    }

    /// [`Fencer::fence_through`], ended at once when `confirmed` resolves
    /// first (an operator's manual confirmation, resolving to who
    /// confirmed): the running agent's process group is killed, the level
    /// it belonged to is left out, and the result is
    /// `(Some(MANUAL_LEVEL), levels done + the manual confirmation)`.
    pub async fn fence_through_or_confirmed<F>(
        &self,
        confirmed: F,
    ) -> (Option<u8>, Vec<LevelOutcome>)
    where
        F: Future<Output = String>,
    {
        tokio::pin!(confirmed);
        let mut outcomes = Vec::new();
        let count = u8::try_from(self.levels.len()).unwrap_or(u8::MAX);
        for level in 1..=count {
            tokio::select! {
                biased;
                by = &mut confirmed => {
                    outcomes.push(self.manual_confirmation(&by));
                    return (Some(MANUAL_LEVEL), outcomes);
                }
                o = self.fence(level) => {
                    let done = o.confirmed_off;
                    outcomes.push(o);
                    if done {
                        return (Some(level), outcomes);
                    }
                }
            }
        }
        warn!(target_node = %self.target, levels = count, "every fencing level failed: manual confirmation needed");
        (None, outcomes)
    }

    /// The record of an operator's confirmation that the target is down
    /// (`hapair fence confirm NODE`), `by` naming who confirmed: level
    /// [`MANUAL_LEVEL`], confirmed off.
    pub fn manual_confirmation(&self, by: &str) -> LevelOutcome {
        warn!(target_node = %self.target, by, "fencing confirmed manually");
        LevelOutcome {
            level: MANUAL_LEVEL,
            confirmed_off: true,
            attempts: vec![FenceAttempt {
                level: MANUAL_LEVEL,
                device: "manual".into(),
                action: "confirm".into(),
                ok: true,
                rc: None,
                elapsed: Duration::ZERO,
                message: format!("{} confirmed down by {by}", self.target),
            }],
        }
    }

    /// Runs `monitor` on every device of every level (for `hapair
    /// preflight`): `ok` when it exits 0.
    pub async fn check(&self) -> Vec<FenceAttempt> {
        let mut out = Vec::new();
        for (n, lv) in self.levels.iter().enumerate() {
            let level = u8::try_from(n + 1).unwrap_or(u8::MAX);
            for (i, dev) in lv.devices.iter().enumerate() {
                out.push(self.run(level, &label(lv, i), dev, "monitor").await);
            }
        }
        out
    }

    fn not_run(&self, level: u8, device: &str, action: &str, message: String) -> FenceAttempt {
        warn!(target_node = %self.target, level, device, action, "{message}");
        FenceAttempt {
            level,
            device: device.into(),
            action: action.into(),
            ok: false,
            rc: None,
            elapsed: Duration::ZERO,
            message,
        }
    }

    /// Runs one action of one device.
    async fn run(&self, level: u8, device: &str, dev: &FenceDevice, action: &str) -> FenceAttempt {
        let input = match dev.input(action, &self.target) {
            Ok(i) => i,
            Err(e) => return self.not_run(level, device, action, e),
        };
        let t0 = Instant::now();
        let argv = [OsString::from(dev.agent.as_os_str())];
        let r = self.runner.run_command(&argv, &input, dev.timeout).await;
        let elapsed = t0.elapsed();
        let rc = match r.exec {
            ExecStatus::Exited { code } => Some(code),
            _ => None,
        };
        let ok = match (action, rc) {
            ("status", Some(2)) => true,
            ("status", _) => false,
            (_, Some(0)) => true,
            _ => false,
        };
        // A success is best told by the agent's report on stdout ("Success:
        // Powered OFF", "Status: OFF"), and so is a status of ON; a failure
        // by its last complaint.
        let still_on = action == "status" && rc == Some(0);
        let (out, err) = (last_line(&r.stdout.text()), last_line(&r.stderr.text()));
        let said = if ok || still_on {
            out.or(err)
        } else {
            err.or(out)
        };
        let message = match (&r.exec, rc) {
            (ExecStatus::TimedOut { .. }, _) => format!(
                "timed out after {}",
                humantime::format_duration(dev.timeout)
            ),
            (ExecStatus::NotInstalled | ExecStatus::NotExecutable, _) => format!(
                "cannot run {}: {}",
                dev.agent.display(),
                r.reason.as_deref().unwrap_or("not installed")
            ),
            (ExecStatus::SpawnFailed { error }, _) => {
                format!("cannot run {}: {error}", dev.agent.display())
            }
            _ if still_on => format!(
                "status still ON after off{}",
                said.map(|s| format!(": {s}")).unwrap_or_default()
            ),
            (_, Some(_)) => said.unwrap_or_else(|| r.exec.to_string()),
            (exec, None) => exec.to_string(),
        };
        let attempt = FenceAttempt {
            level,
            device: device.to_string(),
            action: action.to_string(),
            ok,
            rc,
            elapsed,
            message,
        };
        if attempt.ok {
            info!(target_node = %self.target, level, device, action, rc, elapsed_ms = millis(elapsed), msg = %attempt.message, "fence agent done");
        } else {
            warn!(target_node = %self.target, level, device, action, rc, elapsed_ms = millis(elapsed), msg = %attempt.message, "fence agent failed");
        }
        attempt
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A device's name in results: the agent's file name, `#N` added when the
/// level has several devices.
fn label(level: &FenceLevel, i: usize) -> String {
    let name = level.devices[i].agent_name();
    if level.devices.len() > 1 {
        format!("{name}#{}", i + 1)
    } else {
        name
    }
}

fn last_line(s: &str) -> Option<String> {
    s.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
#[path = "../tests/fence.rs"]
mod tests;
