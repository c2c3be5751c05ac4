//! The UML DRBD lab (docs/lab.md) from Rust: [`Lab`] wraps the scripts in
//! `hwtest/lab/` (which stay usable on their own).
//!
//! Every [`Lab`] is its own instance: network namespace and lab dir are both
//! named `hapair-lab-<pid>-<n>` (dir `/tmp/hapair-lab-<pid>-<n>`), so labs of
//! two test processes never share taps, disks or a power switch. Dropping a
//! [`Lab`] tears it down (guests, power switch, namespace, dir), also when a
//! test panics; then the tail of each guest console and the power switch log
//! are printed first. `HWTEST_KEEP=1` keeps the lab dir (disks, logs) for a
//! post-mortem; guests and namespace still go.
//!
//! Host commands run with a clean environment, in their own process group,
//! with stdin from `/dev/null`, output captured into files and a timeout
//! after which the group gets SIGTERM and then SIGKILL (the `ra` runner's
//! discipline, synchronously). The guests themselves are in their own
//! sessions (`setsid` in `lab-up.sh`) and outlive a timed-out script; the
//! teardown finds them by pid file and by command line.
//!
//! Guest commands go through `lab-run.sh`: one `bash` per command inside the
//! guest. Process creation in UML costs 40-110 ms, so put polling loops
//! inside one command ([`Lab::wait_for`]) rather than around many.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod fence_lab;
pub mod hapair_drbd;
pub mod nfs;
pub mod pair;
pub mod pcmk;
pub mod pgclient;
pub mod record;
pub mod versus;

use std::fmt;
use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// Default timeout of a guest command ([`Lab::run`]).
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);
/// Timeout of `lab-up.sh` (it may install packages first).
pub const UP_TIMEOUT: Duration = Duration::from_secs(600);
/// Timeout of the short host scripts (kill, net, power, down).
pub const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);
/// Free space `probe` wants under `/tmp` (disk images are sparse, but a
/// resync writes them).
pub const MIN_FREE_DISK: u64 = 2 << 30;
/// Available memory `probe` wants (two guests of 256 MiB plus slack).
pub const MIN_FREE_MEM: u64 = 1 << 30;
/// SIGTERM-to-SIGKILL grace for a timed-out host command.
const KILL_GRACE: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(10);
/// The guest kernel.
pub const UML: &str = "/usr/bin/linux.uml";

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A lab guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Node {
    /// `nodeA`, DRBD peer, 10.88.0.1 / 10.88.1.1.
    A,
    /// `nodeB`, DRBD peer, 10.88.0.2 / 10.88.1.2.
    B,
    /// `nodeC`, client without DRBD, 10.88.0.3 / 10.88.1.3.
    C,
}

impl Node {
    /// The lab's name of the node (`nodeA`, ...), also its host name and the
    /// fence agent's plug.
    pub fn name(self) -> &'static str {
        match self {
            Node::A => "nodeA",
            Node::B => "nodeB",
            Node::C => "nodeC",
        }
    }

    /// The node's address on the lan link (`vec0`).
    pub fn lan_ip(self) -> &'static str {
        match self {
            Node::A => "10.88.0.1",
            Node::B => "10.88.0.2",
            Node::C => "10.88.0.3",
        }
    }

    /// The node's address on the repl link (`vec1`, DRBD's link).
    pub fn repl_ip(self) -> &'static str {
        match self {
            Node::A => "10.88.1.1",
            Node::B => "10.88.1.2",
            Node::C => "10.88.1.3",
        }
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A link of a node (see `lab-net.sh`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Link 0, `vec0`, bridge `br-lab0`.
    Lan,
    /// Link 1, `vec1`, bridge `br-lab1`; DRBD replicates over it.
    Repl,
    /// Both links.
    All,
}

impl Link {
    fn arg(self) -> &'static str {
        match self {
            Link::Lan => "lan",
            Link::Repl => "repl",
            Link::All => "all",
        }
    }
}

/// A network fault operation (see `lab-net.sh`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetOp {
    /// Detach the node's tap from the link's bridge: a full partition.
    Cut,
    /// Re-attach it (and clear any netem).
    Heal,
    /// `tc netem` arguments on the guest's egress, e.g. `"delay 100ms loss 5%"`.
    Netem(String),
    /// Remove netem.
    Clear,
}

/// An action of the virtual power switch (`lab-power.sh`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    /// Power cut (same as [`Lab::kill`]).
    Off,
    /// Boot with DRBD down, as a real power-on.
    On,
    /// Off, then on.
    Reboot,
    /// rc 0 on, 2 off.
    Status,
}

impl PowerAction {
    /// The switch's (and fence agent's) word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            PowerAction::Off => "off",
            PowerAction::On => "on",
            PowerAction::Reboot => "reboot",
            PowerAction::Status => "status",
        }
    }
}

/// The result of a command that ran to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Exit code (128 + signal number if killed by a signal).
    pub rc: i32,
    /// Standard output (for a guest command: its stdout and stderr merged).
    pub stdout: String,
    /// Standard error (for a guest command: only `lab-run.sh`'s own messages).
    pub stderr: String,
}

impl Output {
    /// Whether `rc` is 0.
    pub fn success(&self) -> bool {
        self.rc == 0
    }
}

/// Why a lab operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The machine cannot host the lab ([`Lab::probe`]).
    #[error("this machine cannot host the UML lab: {0}")]
    CannotHost(String),
    /// A host command could not be started.
    #[error("cannot run {cmd}: {source}")]
    Spawn {
        /// The command.
        cmd: String,
        /// The error.
        source: io::Error,
    },
    /// I/O on the lab dir.
    #[error("{what}: {source}")]
    Io {
        /// What was done.
        what: String,
        /// The error.
        source: io::Error,
    },
    /// A host command or guest command ran past its timeout.
    #[error("{cmd}: timed out after {after:?}; output so far:\n{output}")]
    Timeout {
        /// The command.
        cmd: String,
        /// The timeout.
        after: Duration,
        /// Output up to then.
        output: String,
    },
    /// The node is not running (or went down while the command ran).
    #[error("{node} is down ({cmd}): {output}")]
    NodeDown {
        /// The node.
        node: Node,
        /// The command.
        cmd: String,
        /// Output up to then.
        output: String,
    },
    /// A command ended with a non-zero exit code where success was required.
    #[error("{cmd}: exit code {}\nstdout:\n{}\nstderr:\n{}", .output.rc, .output.stdout, .output.stderr)]
    Failed {
        /// The command.
        cmd: String,
        /// Its result.
        output: Output,
    },
}

/// Runs a host command the `ra` way: clean env, own process group, stdin
/// `/dev/null`, output into files, timeout with SIGTERM then SIGKILL to the
/// group.
fn host_cmd(argv: &[&str], env: &[(&str, String)], timeout: Duration) -> Result<Output, LabError> {
    let name = argv.join(" ");
    let files = tempfile::tempdir().map_err(|source| LabError::Io {
        what: "temp dir for command output".into(),
        source,
    })?;
    let out_path = files.path().join("out");
    let err_path = files.path().join("err");
    let open = |p: &Path| {
        fs::File::create(p).map_err(|source| LabError::Io {
            what: format!("create {}", p.display()),
            source,
        })
    };
    let mut cmd = Command::new(argv[0]);
    cmd.args(&argv[1..])
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("LANG", "C")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(open(&out_path)?)
        .stderr(open(&err_path)?)
        .process_group(0);
    let mut child = cmd.spawn().map_err(|source| LabError::Spawn {
        cmd: name.clone(),
        source,
    })?;
    let pgid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    let start = Instant::now();
    let read = |p: &Path| String::from_utf8_lossy(&fs::read(p).unwrap_or_default()).into_owned();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                use std::os::unix::process::ExitStatusExt;
                let rc = status
                    .code()
                    .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
                return Ok(Output {
                    rc,
                    stdout: read(&out_path),
                    stderr: read(&err_path),
                });
            }
            Ok(None) => {}
            Err(source) => {
                return Err(LabError::Spawn { cmd: name, source });
            }
        }
        if start.elapsed() >= timeout {
            let _ = killpg(pgid, Signal::SIGTERM);
            let grace = Instant::now();
            while grace.elapsed() < KILL_GRACE {
                if matches!(child.try_wait(), Ok(Some(_)))
                    && killpg(pgid, None) == Err(Errno::ESRCH)
                {
                    break;
                }
                thread::sleep(POLL);
            }
            let _ = killpg(pgid, Signal::SIGKILL);
            let _ = child.wait();
            return Err(LabError::Timeout {
                cmd: name,
                after: timeout,
                output: format!("{}{}", read(&out_path), read(&err_path)),
            });
        }
        thread::sleep(POLL);
    }
}

fn must(cmd: &str, out: Output) -> Result<Output, LabError> {
    if out.success() {
        Ok(out)
    } else {
        Err(LabError::Failed {
            cmd: cmd.to_owned(),
            output: out,
        })
    }
}

/// Options of [`Lab::up_with`].
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// The guests to boot.
    pub nodes: Vec<Node>,
    /// Guest memory (`LAB_MEM`), e.g. `256M`.
    pub mem: String,
    /// Bring DRBD `r0` up and wait for UpToDate/UpToDate (`LAB_DRBD`).
    pub drbd: bool,
    /// Timeout of guest commands run with [`Lab::run`].
    pub run_timeout: Duration,
    /// The fence agent installed as `$LAB_DIR/bin/fence_lab`: a program
    /// that runs [`fence_lab::main_args`] when called by that name (this
    /// crate's `fence_lab`, or `hapair`). `None`: [`default_fence_agent`].
    pub fence_agent: Option<PathBuf>,
}

impl Default for LabOptions {
    fn default() -> Self {
        LabOptions {
            nodes: vec![Node::A, Node::B],
            mem: "256M".into(),
            drbd: true,
            run_timeout: RUN_TIMEOUT,
            fence_agent: None,
        }
    }
}

/// A running lab instance. Dropping it tears it down.
#[derive(Debug)]
pub struct Lab {
    name: String,
    dir: PathBuf,
    scripts: PathBuf,
    opts: LabOptions,
    /// The fence agent program copied into the lab (`LAB_FENCE_AGENT`).
    fence_src: PathBuf,
    up_time: Duration,
    down: bool,
}

/// The scripts' directory (`hwtest/lab` in the source tree).
pub fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("lab")
}

/// This crate's `fence_lab` binary: in `HAPAIR_BIN_DIR`, else next to the
/// running program or one level up (a test in `target/debug/deps` finds
/// `target/debug/fence_lab`). Fails with the build command.
pub fn default_fence_agent() -> Result<PathBuf, String> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("HAPAIR_BIN_DIR") {
        dirs.push(PathBuf::from(d));
    }
    if let Some(d) = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
    {
        let up = d.parent().map(Path::to_path_buf);
        dirs.push(d);
        dirs.extend(up);
    }
    dirs.iter()
        .map(|d| d.join("fence_lab"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            format!(
                "the lab's fence agent `fence_lab` is not in {}: build it first with \
                 `cargo build -p hwtest --bins` (same CARGO_TARGET_DIR), or set HAPAIR_BIN_DIR",
                dirs.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

impl Lab {
    /// Checks that this machine can host a lab and says exactly why not:
    /// root, the UML kernel (present, or installable by `lab-up.sh`),
    /// `/dev/net/tun`, a network namespace with a bridge and a tap in it,
    /// free disk under `/tmp` and available memory. Creates and removes one
    /// namespace `hapair-lab-probe-<pid>`.
    pub fn probe() -> Result<(), String> {
        let mut why = Vec::new();
        let euid = nix::unistd::geteuid();
        if !euid.is_root() {
            why.push(format!(
                "not root (euid {euid}): the lab needs root for network namespaces, taps and UML guests"
            ));
        }
        if !Path::new(UML).exists() {
            match host_cmd(
                &["apt-cache", "policy", "user-mode-linux"],
                &[],
                Duration::from_secs(30),
            ) {
                Ok(o)
                    if o.success()
                        && o.stdout.contains("Candidate:")
                        && !o.stdout.contains("Candidate: (none)") => {}
                Ok(o) => why.push(format!(
                    "{UML} is missing and apt has no installable user-mode-linux package: {}{}",
                    o.stdout.trim(),
                    o.stderr.trim()
                )),
                Err(e) => why.push(format!("{UML} is missing and apt-cache failed: {e}")),
            }
        }
        if !Path::new("/dev/net/tun").exists() {
            why.push("/dev/net/tun is missing: the guests' NICs are taps".into());
        }
        for tool in ["/usr/bin/ip", "/usr/bin/bash", "/usr/bin/setsid"] {
            if !Path::new(tool).exists() && !Path::new(&tool.replace("/usr", "")).exists() {
                why.push(format!("{tool} is missing"));
            }
        }
        if euid.is_root() {
            if let Err(e) = probe_netns() {
                why.push(e);
            }
        }
        match nix::sys::statvfs::statvfs("/tmp") {
            Ok(st) => {
                let free = st.blocks_available().saturating_mul(st.fragment_size());
                if free < MIN_FREE_DISK {
                    why.push(format!(
                        "only {} MiB free under /tmp, the lab wants {} MiB",
                        free >> 20,
                        MIN_FREE_DISK >> 20
                    ));
                }
            }
            Err(e) => why.push(format!("statvfs /tmp: {e}")),
        }
        match mem_available() {
            Some(m) if m < MIN_FREE_MEM => why.push(format!(
                "only {} MiB memory available, the lab wants {} MiB",
                m >> 20,
                MIN_FREE_MEM >> 20
            )),
            Some(_) => {}
            None => why.push("cannot read MemAvailable from /proc/meminfo".into()),
        }
        if why.is_empty() {
            Ok(())
        } else {
            Err(why.join("; "))
        }
    }

    /// Boots a lab with `nodes` (DRBD `r0` Connected UpToDate/UpToDate
    /// between nodeA and nodeB if both are in it). Fails with
    /// [`LabError::CannotHost`] and the reason when [`Lab::probe`] fails.
    pub fn up(nodes: &[Node]) -> Result<Lab, LabError> {
        Lab::up_with(LabOptions {
            nodes: nodes.to_vec(),
            ..LabOptions::default()
        })
    }

    /// [`Lab::up`] with options.
    pub fn up_with(opts: LabOptions) -> Result<Lab, LabError> {
        Lab::probe().map_err(LabError::CannotHost)?;
        let name = format!(
            "hapair-lab-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let fence_agent = match &opts.fence_agent {
            Some(p) if p.is_file() => p.clone(),
            Some(p) => {
                return Err(LabError::CannotHost(format!(
                    "the fence agent {} does not exist",
                    p.display()
                )));
            }
            None => default_fence_agent().map_err(LabError::CannotHost)?,
        };
        let mut lab = Lab {
            fence_src: fence_agent,
            dir: PathBuf::from("/tmp").join(&name),
            name,
            scripts: scripts_dir(),
            opts,
            up_time: Duration::ZERO,
            down: false,
        };
        // a leftover of a crashed earlier process with the same pid
        lab.script("lab-down.sh", &[], SCRIPT_TIMEOUT)?;
        let start = Instant::now();
        let nodes: Vec<&str> = lab.opts.nodes.iter().map(|n| n.name()).collect();
        let out = lab.script("lab-up.sh", &nodes, UP_TIMEOUT)?;
        if !out.success() {
            let consoles = lab.console_tails(30);
            return Err(LabError::Failed {
                cmd: format!("lab-up.sh {}", nodes.join(" ")),
                output: Output {
                    stderr: format!("{}\n{consoles}", out.stderr),
                    ..out
                },
            });
        }
        lab.up_time = start.elapsed();
        Ok(lab)
    }

    /// The instance name: network namespace and last component of the dir.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `LAB_DIR`: seen at the same path by the host and every guest.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How long `lab-up.sh` took in [`Lab::up`].
    pub fn up_time(&self) -> Duration {
        self.up_time
    }

    /// The fence agent's path, valid in the guests and on the host.
    pub fn fence_agent(&self) -> PathBuf {
        self.dir.join("bin/fence_lab")
    }

    /// The power switch log (`<seen> <done> <action> <node> rc=<rc>` lines).
    pub fn power_log(&self) -> String {
        fs::read_to_string(self.dir.join("power/log")).unwrap_or_default()
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("LAB_NETNS", self.name.clone()),
            ("LAB_DIR", self.dir.display().to_string()),
            ("LAB_MEM", self.opts.mem.clone()),
            ("LAB_DRBD", if self.opts.drbd { "1" } else { "0" }.into()),
            ("LAB_FENCE_AGENT", self.fence_src.display().to_string()),
        ]
    }

    fn script_env(
        &self,
        script: &str,
        args: &[&str],
        extra: &[(&'static str, String)],
        timeout: Duration,
    ) -> Result<Output, LabError> {
        let path = self.scripts.join(script);
        let path = path.to_string_lossy();
        let mut argv = vec![path.as_ref()];
        argv.extend_from_slice(args);
        let mut env = self.env();
        env.extend_from_slice(extra);
        host_cmd(&argv, &env, timeout)
    }

    fn script(&self, script: &str, args: &[&str], timeout: Duration) -> Result<Output, LabError> {
        self.script_env(script, args, &[], timeout)
    }

    /// Runs `cmd` with bash as root in `node`, with the lab's default
    /// timeout ([`LabOptions::run_timeout`]). A non-zero rc is a result,
    /// not an error.
    pub fn run(&self, node: Node, cmd: &str) -> Result<Output, LabError> {
        self.run_timeout(node, cmd, self.opts.run_timeout)
    }

    /// [`Lab::run`] with a timeout (whole seconds, at least 1). On expiry
    /// the guest command keeps running (lab-run.sh cannot reach it).
    pub fn run_timeout(
        &self,
        node: Node,
        cmd: &str,
        timeout: Duration,
    ) -> Result<Output, LabError> {
        let secs = timeout.as_secs().max(1);
        let out = self.script_env(
            "lab-run.sh",
            &[node.name(), cmd],
            &[("LAB_TIMEOUT", secs.to_string())],
            Duration::from_secs(secs + 10),
        )?;
        let what = || format!("{node}# {cmd}");
        if out.rc == 124 && out.stderr.contains("lab-run: timeout") {
            return Err(LabError::Timeout {
                cmd: what(),
                after: timeout,
                output: out.stdout,
            });
        }
        if out.rc == 125
            && (out.stderr.contains("not running/ready") || out.stderr.contains("went down"))
        {
            return Err(LabError::NodeDown {
                node,
                cmd: what(),
                output: format!("{}{}", out.stdout, out.stderr),
            });
        }
        Ok(out)
    }

    /// [`Lab::run`], requiring rc 0; returns stdout.
    pub fn run_ok(&self, node: Node, cmd: &str) -> Result<String, LabError> {
        let out = self.run(node, cmd)?;
        must(&format!("{node}# {cmd}"), out).map(|o| o.stdout)
    }

    /// Starts a long-running `cmd` in `node` and returns at once with the
    /// host path of the file its output goes to (`lab-run.sh -d`). It runs
    /// until it ends, is killed, or the node dies.
    pub fn spawn(&self, node: Node, cmd: &str) -> Result<PathBuf, LabError> {
        let out = self.script("lab-run.sh", &["-d", node.name(), cmd], SCRIPT_TIMEOUT)?;
        let out = must(&format!("lab-run.sh -d {node} {cmd}"), out)?;
        Ok(PathBuf::from(out.stdout.trim()))
    }

    /// Runs a polling loop inside one guest command: `cond` (a shell
    /// condition) every 0.1 s until it holds (Ok) or `timeout` passes
    /// (Err with the last output of `show`, a shell command).
    pub fn wait_for(
        &self,
        node: Node,
        cond: &str,
        show: &str,
        timeout: Duration,
    ) -> Result<(), LabError> {
        let tries = (timeout.as_millis() / 100).max(1);
        let script = format!(
            "for i in $(seq {tries}); do {cond} && exit 0; sleep 0.1; done; {show}; exit 1"
        );
        let out = self.run_timeout(node, &script, timeout + Duration::from_secs(30))?;
        must(&format!("{node}: wait for {cond}"), out).map(|_| ())
    }

    /// Power cut: SIGKILL to the node's whole UML process group
    /// (`lab-kill.sh`). Returns when no live process of it is left.
    pub fn kill(&self, node: Node) -> Result<(), LabError> {
        let out = self.script("lab-kill.sh", &[node.name()], SCRIPT_TIMEOUT)?;
        must(&format!("lab-kill.sh {node}"), out).map(|_| ())
    }

    /// Boots a killed node again (`lab-up.sh <node>`): with DRBD brought up
    /// and waited for (UpToDate/UpToDate) if the lab has DRBD.
    pub fn boot(&self, node: Node) -> Result<(), LabError> {
        let out = self.script("lab-up.sh", &[node.name()], UP_TIMEOUT)?;
        must(&format!("lab-up.sh {node}"), out).map(|_| ())
    }

    /// Network fault injection on `node`'s `link` (`lab-net.sh`).
    pub fn net(&self, node: Node, link: Link, op: NetOp) -> Result<(), LabError> {
        let mut args = vec![node.name(), link.arg()];
        let netem;
        match &op {
            NetOp::Cut => args.push("cut"),
            NetOp::Heal => args.push("heal"),
            NetOp::Clear => args.push("clear"),
            NetOp::Netem(a) => {
                netem = a.split_whitespace().collect::<Vec<_>>();
                args.push("netem");
                args.extend(netem.iter().copied());
            }
        }
        let out = self.script("lab-net.sh", &args, SCRIPT_TIMEOUT)?;
        must(&format!("lab-net.sh {}", args.join(" ")), out).map(|_| ())
    }

    /// The power switch, host side (`lab-power.sh ACTION NODE`): the rc is 0
    /// for done (status: on), 2 for status off, 1 for an error.
    pub fn power(&self, action: PowerAction, node: Node) -> Result<i32, LabError> {
        Ok(self
            .script("lab-power.sh", &[action.as_str(), node.name()], UP_TIMEOUT)?
            .rc)
    }

    /// The node's UML process group id from its pid file, if it has one.
    pub fn pgid(&self, node: Node) -> Option<i32> {
        fs::read_to_string(self.dir.join(node.name()).join("pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Whether the node's guest is running and its command agent is ready.
    pub fn is_up(&self, node: Node) -> bool {
        self.dir.join(node.name()).join("ready").exists()
            && self
                .pgid(node)
                .is_some_and(|g| !live_in_group(g).is_empty())
    }

    /// The guest's `/proc/self/mountinfo`.
    pub fn mountinfo(&self, node: Node) -> Result<String, LabError> {
        self.run_ok(node, "cat /proc/self/mountinfo")
    }

    fn drbdadm(&self, node: Node, what: &str) -> Result<String, LabError> {
        self.run_ok(node, &format!("drbdadm {what} r0"))
            .map(|s| s.trim().to_owned())
    }

    /// `drbdadm role r0`, e.g. `Primary/Secondary`.
    pub fn drbd_role(&self, node: Node) -> Result<String, LabError> {
        self.drbdadm(node, "role")
    }

    /// `drbdadm dstate r0`, e.g. `UpToDate/UpToDate`.
    pub fn drbd_dstate(&self, node: Node) -> Result<String, LabError> {
        self.drbdadm(node, "dstate")
    }

    /// `drbdadm cstate r0`, e.g. `Connected`.
    pub fn drbd_cstate(&self, node: Node) -> Result<String, LabError> {
        self.drbdadm(node, "cstate")
    }

    /// Starts `drbdsetup events2 --timestamps --statistics all` in `node`.
    pub fn events2(&self, node: Node) -> Result<Events2, LabError> {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let pidfile = self.dir.join(node.name()).join(format!("events2-{n}.pid"));
        let cmd = format!(
            "echo $$ > {}; exec drbdsetup events2 --timestamps --statistics all",
            pidfile.display()
        );
        let out = self.spawn(node, &cmd)?;
        Ok(Events2 {
            node,
            boot: self.pgid(node),
            out,
            pidfile,
        })
    }

    /// The last `lines` lines of each guest's console log.
    pub fn console_tails(&self, lines: usize) -> String {
        let mut s = String::new();
        for node in [Node::A, Node::B, Node::C] {
            let p = self.dir.join(node.name()).join("console.log");
            if let Ok(text) = fs::read_to_string(&p) {
                let all: Vec<&str> = text.lines().collect();
                let from = all.len().saturating_sub(lines);
                s += &format!("--- {} (last {lines} lines)\n", p.display());
                for l in &all[from..] {
                    s += l;
                    s.push('\n');
                }
            }
        }
        s
    }

    /// A handle that tears this lab down from another thread (a Ctrl-C
    /// handler), while the [`Lab`] itself is busy elsewhere.
    pub fn down_handle(&self) -> DownHandle {
        DownHandle {
            script: self.scripts.join("lab-down.sh"),
            env: self.env(),
        }
    }

    /// Tears the lab down (`lab-down.sh`) and reports whether that worked.
    pub fn down(mut self) -> Result<(), LabError> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<(), LabError> {
        if self.down {
            return Ok(());
        }
        self.down = true;
        let keep = std::env::var("HWTEST_KEEP").is_ok_and(|v| v == "1");
        let out = self.script_env(
            "lab-down.sh",
            &[],
            &[("LAB_KEEP", if keep { "1" } else { "0" }.into())],
            SCRIPT_TIMEOUT,
        )?;
        must("lab-down.sh", out).map(|_| ())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.down {
            return;
        }
        if thread::panicking() {
            eprintln!(
                "hwtest: lab {} failed; consoles and power log:\n{}--- power log\n{}",
                self.name,
                self.console_tails(20),
                self.power_log()
            );
        }
        if let Err(e) = self.teardown() {
            eprintln!("hwtest: teardown of lab {} failed: {e}", self.name);
        }
    }
}

/// Tears a lab down from another thread ([`Lab::down_handle`]).
#[derive(Debug, Clone)]
pub struct DownHandle {
    script: PathBuf,
    env: Vec<(&'static str, String)>,
}

impl DownHandle {
    /// Runs `lab-down.sh` for the lab (idempotent).
    pub fn down(&self) -> Result<(), LabError> {
        let path = self.script.to_string_lossy();
        let out = host_cmd(&[path.as_ref()], &self.env, SCRIPT_TIMEOUT)?;
        must("lab-down.sh", out).map(|_| ())
    }
}

/// A running `drbdsetup events2` stream in a guest ([`Lab::events2`]).
///
/// `lab-up.sh` empties a node's `out/` dir when it boots the node, so read a
/// killed node's stream ([`Events2::stop`] or [`Events2::lines`]) before
/// booting it again.
#[derive(Debug)]
pub struct Events2 {
    node: Node,
    /// The node's UML process group when the stream started: a rebooted
    /// node runs a different guest, where the recorded pid means nothing.
    boot: Option<i32>,
    out: PathBuf,
    pidfile: PathBuf,
}

impl Events2 {
    /// The host path of the stream's output file.
    pub fn path(&self) -> &Path {
        &self.out
    }

    /// Every complete line so far.
    pub fn lines(&self) -> Vec<String> {
        let text = fs::read_to_string(&self.out).unwrap_or_default();
        let complete = text.rfind('\n').map_or("", |i| &text[..i]);
        complete.lines().map(str::to_owned).collect()
    }

    /// Waits until a line satisfies `pred`, returning it.
    pub fn wait_line(&self, pred: impl Fn(&str) -> bool, timeout: Duration) -> Option<String> {
        let start = Instant::now();
        let mut pos = 0u64;
        let mut partial = String::new();
        loop {
            if let Ok(mut f) = fs::File::open(&self.out) {
                let mut buf = String::new();
                if f.seek(SeekFrom::Start(pos)).is_ok() && f.read_to_string(&mut buf).is_ok() {
                    pos += buf.len() as u64;
                    partial.push_str(&buf);
                    while let Some(i) = partial.find('\n') {
                        let line: String = partial.drain(..=i).collect();
                        if pred(line.trim_end()) {
                            return Some(line.trim_end().to_owned());
                        }
                    }
                }
            }
            if start.elapsed() >= timeout {
                return None;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the stream (SIGTERM to the drbdsetup process in the guest) and
    /// returns every complete line. A dead node's stream has stopped anyway
    /// (also if the node has been rebooted since).
    pub fn stop(self, lab: &Lab) -> Vec<String> {
        if lab.is_up(self.node) && lab.pgid(self.node) == self.boot {
            let _ = lab.run(
                self.node,
                &format!("kill $(cat {}) 2>/dev/null; true", self.pidfile.display()),
            );
        }
        self.lines()
    }
}

/// Live (non-zombie) processes of process group `pgid`, from `/proc`.
pub fn live_in_group(pgid: i32) -> Vec<i32> {
    let mut pids = Vec::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return pids;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp ...; comm may hold spaces and parens
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() > 2 && f[0] != "Z" && f[2].parse() == Ok(pgid) {
            pids.push(pid);
        }
    }
    pids
}

fn mem_available() -> Option<u64> {
    let info = fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn probe_netns() -> Result<(), String> {
    let ns = format!("hapair-lab-probe-{}", std::process::id());
    let t = Duration::from_secs(30);
    let run = |argv: &[&str]| -> Result<(), String> {
        match host_cmd(argv, &[], t) {
            Ok(o) if o.success() => Ok(()),
            Ok(o) => Err(format!(
                "`{}` failed (rc {}): {}",
                argv.join(" "),
                o.rc,
                o.stderr.trim()
            )),
            Err(e) => Err(format!("`{}`: {e}", argv.join(" "))),
        }
    };
    let _ = host_cmd(&["ip", "netns", "del", &ns], &[], t);
    let res = run(&["ip", "netns", "add", &ns])
        .and_then(|()| {
            run(&[
                "ip", "netns", "exec", &ns, "ip", "link", "add", "br-probe", "type", "bridge",
            ])
        })
        .and_then(|()| {
            run(&[
                "ip",
                "netns",
                "exec",
                &ns,
                "ip",
                "tuntap",
                "add",
                "tap-probe",
                "mode",
                "tap",
            ])
        })
        .and_then(|()| {
            run(&[
                "ip",
                "netns",
                "exec",
                &ns,
                "ip",
                "link",
                "set",
                "tap-probe",
                "master",
                "br-probe",
            ])
        });
    let del = run(&["ip", "netns", "del", &ns]);
    res.map_err(|e| format!("cannot set up a lab network namespace: {e}"))?;
    del.map_err(|e| format!("cannot remove the probe network namespace {ns}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_cmd_timeout_kills_the_whole_group() {
        let start = Instant::now();
        let err = host_cmd(
            &["bash", "-c", "echo started; sleep 100 & sleep 100"],
            &[],
            Duration::from_millis(300),
        )
        .unwrap_err();
        let LabError::Timeout { output, .. } = &err else {
            panic!("{err}");
        };
        assert_eq!(output, "started\n");
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn host_cmd_clean_env_and_output() {
        let out = host_cmd(
            &[
                "bash",
                "-c",
                "echo \"$LAB_X:${HOME:-nohome}\"; echo err >&2; exit 3",
            ],
            &[("LAB_X", "x".into())],
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(
            out,
            Output {
                rc: 3,
                stdout: "x:nohome\n".into(),
                stderr: "err\n".into()
            }
        );
    }
}
