//! `hapair run` on both lab nodes over real DRBD: the pair of issue 5's
//! scenarios. [`HaPair::setup`] boots a lab (DRBD r0 Connected
//! UpToDate/UpToDate), makes an ext4 on r0, formats the shared disk
//! `/dev/ubdb` as the sfex lease, turns DRBD fencing on
//! (`fencing resource-and-stonith` with `hapair fence-peer` as the
//! fence-peer handler, `--unfence` after resync), writes one hapair config
//! for both nodes (links lan and repl, `fence_lab` as each node's fence
//! device, the stack DRBD → ext4 on /mnt/r0 → 10.88.0.100/24 → a Dummy
//! service whose state file lives on the DRBD filesystem) and copies the
//! binaries into the lab dir, where the guests see them.
//!
//! Safety is checked two ways: [`HaPair::check_safety`] at step boundaries
//! (DRBD roles, rw mounts of /dev/drbd0, and which daemons believe they
//! hold the lease, on every live node), and a watcher loop in each guest
//! that samples the DRBD role and the mount every 0.2 s without forking;
//! [`HaPair::watch_violations`] merges both nodes' samples and reports any
//! moment both were Primary (or both had /dev/drbd0 mounted rw), bracketed
//! by samples on each side.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::{Lab, LabError, LabOptions, Node, PowerAction, nfs, pgclient};

/// Why a pair step failed.
#[derive(Debug, thiserror::Error)]
pub enum HaError {
    /// A lab command failed.
    #[error("{0}")]
    Lab(#[from] LabError),
    /// Setting the pair up failed.
    #[error("setup: {0}")]
    Setup(String),
    /// Waiting for something timed out.
    #[error("timed out after {after:?} waiting for {what}\n{detail}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// After how long.
        after: Duration,
        /// Logs and state at that moment.
        detail: String,
    },
    /// The safety rule was broken.
    #[error("SAFETY: {0}")]
    Safety(String),
    /// A scenario step did not go as it must.
    #[error("{0}")]
    Check(String),
}

/// One power cut ([`HaPair::power_cut_takeover`]), in Unix ms.
#[derive(Debug, Clone, Copy)]
pub struct PowerCut {
    /// The cut was asked for.
    pub asked_ms: u64,
    /// The victim's processes were gone.
    pub done_ms: u64,
}

/// The binaries the pair runs (`hapair`, `sfex`), built on the host.
#[derive(Debug, Clone)]
pub struct Bins {
    /// `hapair`.
    pub hapair: PathBuf,
    /// `sfex`.
    pub sfex: PathBuf,
}

impl Bins {
    /// `HAPAIR_BIN_DIR`, else the cargo target dir of the running test
    /// (`target/debug/deps/x` → `target/debug`). Fails with the build
    /// command when the binaries are missing (cargo cannot build another
    /// package's binaries for a test).
    pub fn find() -> Result<Bins, HaError> {
        let dir = match std::env::var_os("HAPAIR_BIN_DIR") {
            Some(d) => PathBuf::from(d),
            None => std::env::current_exe()
                .ok()
                .and_then(|p| p.parent()?.parent().map(Path::to_path_buf))
                .ok_or_else(|| HaError::Setup("cannot find the test's target dir".into()))?,
        };
        let bins = Bins {
            hapair: dir.join("hapair"),
            sfex: dir.join("sfex"),
        };
        for b in [&bins.hapair, &bins.sfex] {
            if !b.is_file() {
                return Err(HaError::Setup(format!(
                    "{} is missing: build it first with `cargo build -p hapair -p sfex --bins` \
                     (same CARGO_TARGET_DIR), or set HAPAIR_BIN_DIR",
                    b.display()
                )));
            }
        }
        Ok(bins)
    }
}

/// The service at the top of the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Service {
    /// `ocf:heartbeat:Dummy` with its state file on the DRBD filesystem.
    #[default]
    Dummy,
    /// PostgreSQL 15 through `ocf:heartbeat:pgsql`, its cluster made on
    /// the DRBD filesystem by [`HaPair::setup_with`] (see
    /// [`crate::pgclient::lab`]).
    Pgsql,
    /// A kernel NFSv4 server through `ocf:lab:nfs` exporting
    /// `/mnt/r0/export`, its state on the DRBD filesystem (see
    /// [`crate::nfs`]).
    Nfs,
}

impl Service {
    /// The `svc` resource of the config.
    fn resource_toml(self) -> String {
        match self {
            Service::Dummy => format!(
                r#"[[resource]]
name = "svc"
type = "ocf:heartbeat:Dummy"
params = {{ state = "{MNT}/svc.state" }}
start_timeout = "30s"
stop_timeout = "10s"
monitor_interval = "10s"
monitor_timeout = "20s"
"#
            ),
            Service::Pgsql => pgclient::lab::resource_toml(MNT),
            Service::Nfs => nfs::lab::resource_toml(MNT),
        }
    }

    /// A shell condition that holds where the service runs.
    fn running_check(self) -> String {
        match self {
            Service::Dummy => format!("test -f {MNT}/svc.state"),
            Service::Pgsql => format!("test -f {}/postmaster.pid", pgclient::lab::pgdata(MNT)),
            Service::Nfs => nfs::lab::running_check().to_owned(),
        }
    }
}

/// Options of [`HaPair::setup_with`].
#[derive(Debug, Clone, Copy, Default)]
pub struct HaOptions {
    /// The lease on [`DM_LEASE`] (see [`HaPair::setup_dm_lease`]).
    pub dm_lease: bool,
    /// The service at the top of the stack.
    pub service: Service,
    /// Boot nodeC too (a client guest without DRBD) and copy
    /// `hapair-recordd` (next to `hapair`) into the lab's `bin`.
    pub client_node: bool,
}

/// The service address the stack brings up.
pub const SERVICE_IP: &str = "10.88.0.100";
/// The DRBD mount point.
pub const MNT: &str = "/mnt/r0";

/// The two daemons over one lab.
#[derive(Debug)]
pub struct HaPair {
    /// The lab (dropped last: tears everything down).
    pub lab: Lab,
    /// `hapair` where the guests see it.
    pub bin: PathBuf,
    /// The config, the same file for both nodes.
    pub config: PathBuf,
    /// Each running daemon's output file (nodeA, nodeB), appended per start.
    logs: [Vec<PathBuf>; 2],
    /// The lease goes through a device-mapper device on each node.
    dm_lease: bool,
    /// The service at the top of the stack.
    service: Service,
    /// `hapair-recordd` where the guests see it, if copied.
    pub recordd: Option<PathBuf>,
    /// The `ocf:lab:nfs` agent where the guests see it ([`Service::Nfs`]).
    nfs_agent: Option<PathBuf>,
}

/// The device-mapper device over `/dev/ubdb` that [`HaPair::setup_dm_lease`]
/// gives each node, so that one node's lease I/O can be broken alone.
pub const DM_LEASE: &str = "/dev/mapper/lease";

fn idx(n: Node) -> usize {
    match n {
        Node::A => 0,
        _ => 1,
    }
}

/// The other node of the pair.
pub fn other(n: Node) -> Node {
    if n == Node::A { Node::B } else { Node::A }
}

impl HaPair {
    /// Boots the lab and prepares the pair (see the module doc); starts no
    /// daemon.
    pub fn setup() -> Result<HaPair, HaError> {
        HaPair::setup_with(HaOptions::default())
    }

    /// [`HaPair::setup`] with the lease on [`DM_LEASE`], a `linear` map of
    /// `/dev/ubdb` made on each node before its daemon starts;
    /// [`HaPair::break_lease`] swaps one node's table for `error`.
    pub fn setup_dm_lease() -> Result<HaPair, HaError> {
        HaPair::setup_with(HaOptions {
            dm_lease: true,
            ..HaOptions::default()
        })
    }

    /// [`HaPair::setup`] with options: the lease on [`DM_LEASE`], the
    /// service, nodeC. With [`Service::Pgsql`] the DRBD filesystem gets a
    /// PostgreSQL cluster (made on nodeA, Primary for the moment, then
    /// unmounted and demoted) before any daemon starts; with
    /// [`Service::Nfs`] it gets the export and the server's state
    /// directory, and the agent goes into the lab's `bin`.
    pub fn setup_with(opts: HaOptions) -> Result<HaPair, HaError> {
        let HaOptions {
            dm_lease,
            service,
            client_node,
        } = opts;
        let bins = Bins::find()?;
        let recordd_src = bins.hapair.with_file_name("hapair-recordd");
        if client_node && !recordd_src.is_file() {
            return Err(HaError::Setup(format!(
                "{} is missing: build it first with `cargo build -p hwtest --bins` \
                 (same CARGO_TARGET_DIR), or set HAPAIR_BIN_DIR",
                recordd_src.display()
            )));
        }
        let mut nodes = vec![Node::A, Node::B];
        if client_node {
            nodes.push(Node::C);
        }
        let lab = Lab::up_with(LabOptions {
            nodes,
            ..LabOptions::default()
        })?;
        let dir = lab.dir().to_path_buf();
        let bindir = dir.join("bin");
        fs::create_dir_all(&bindir).map_err(|e| HaError::Setup(format!("mkdir bin: {e}")))?;
        let bin = bindir.join("hapair");
        let sfex = bindir.join("sfex");
        let recordd = client_node.then(|| bindir.join("hapair-recordd"));
        let mut copies = vec![(&bins.hapair, &bin), (&bins.sfex, &sfex)];
        if let Some(r) = &recordd {
            copies.push((&recordd_src, r));
        }
        for (from, to) in copies {
            fs::copy(from, to).map_err(|e| {
                HaError::Setup(format!("copy {} to {}: {e}", from.display(), to.display()))
            })?;
        }
        let nfs_agent = (service == Service::Nfs).then(|| bindir.join(nfs::lab::AGENT_FILE));
        if let Some(a) = &nfs_agent {
            use std::os::unix::fs::PermissionsExt;
            fs::write(a, nfs::lab::AGENT)
                .and_then(|()| fs::set_permissions(a, fs::Permissions::from_mode(0o755)))
                .map_err(|e| HaError::Setup(format!("write {}: {e}", a.display())))?;
        }
        let hadir = dir.join("hapair");
        fs::create_dir_all(&hadir).map_err(|e| HaError::Setup(format!("mkdir: {e}")))?;
        let config = hadir.join("hapair.toml");
        let key = hadir.join("authkey");
        let out = std::process::Command::new(&bin)
            .args(["keygen", "--file"])
            .arg(&key)
            .output()
            .map_err(|e| HaError::Setup(format!("hapair keygen: {e}")))?;
        if !out.status.success() {
            return Err(HaError::Setup(format!(
                "hapair keygen: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let lease_dev = if dm_lease { DM_LEASE } else { "/dev/ubdb" };
        fs::write(
            &config,
            config_text(&key, &lab.fence_agent(), lease_dev, service),
        )
        .map_err(|e| HaError::Setup(format!("write config: {e}")))?;
        let pair = HaPair {
            lab,
            bin,
            config,
            logs: [Vec::new(), Vec::new()],
            dm_lease,
            service,
            recordd,
            nfs_agent,
        };
        let v = std::process::Command::new(&pair.bin)
            .arg("validate")
            .arg(&pair.config)
            .output()
            .map_err(|e| HaError::Setup(format!("hapair validate: {e}")))?;
        if !v.status.success() {
            return Err(HaError::Setup(format!(
                "hapair validate: {}{}",
                String::from_utf8_lossy(&v.stdout),
                String::from_utf8_lossy(&v.stderr)
            )));
        }
        // the filesystem once, the lease, DRBD fencing through hapair
        pair.lab.run_ok(
            Node::A,
            "drbdadm primary r0 && mkfs.ext4 -q /dev/drbd0 && drbdadm secondary r0",
        )?;
        if service == Service::Pgsql {
            pair.prepare_pgsql()?;
        }
        if service == Service::Nfs {
            pair.lab.run_ok(
                Node::A,
                &format!(
                    "drbdadm primary r0 && mkdir -p {MNT} && mount /dev/drbd0 {MNT} && \
                     mkdir -p {} {}/v4recovery && umount {MNT} && drbdadm secondary r0",
                    nfs::lab::export_dir(MNT),
                    nfs::lab::state_dir(MNT)
                ),
            )?;
        }
        pair.lab
            .run_ok(Node::A, &format!("{} init -n 1 /dev/ubdb", sfex.display()))?;
        drbd_fencing_through_hapair(&pair.lab, &pair.bin, &pair.config, "")?;
        Ok(pair)
    }

    /// Makes the PostgreSQL cluster on the DRBD filesystem: nodeA Primary,
    /// mount, [`pgclient::lab::init_script`], umount, Secondary.
    fn prepare_pgsql(&self) -> Result<(), HaError> {
        self.lab.run_ok(
            Node::A,
            &format!("drbdadm primary r0 && mkdir -p {MNT} && mount /dev/drbd0 {MNT}"),
        )?;
        let o = self.lab.run_timeout(
            Node::A,
            &pgclient::lab::init_script(MNT),
            Duration::from_secs(300),
        )?;
        if o.rc != 0 {
            let log = self
                .lab
                .run(
                    Node::A,
                    &format!("cat {}/init.log 2>/dev/null", pgclient::lab::SOCKET_DIR),
                )
                .map(|l| l.stdout)
                .unwrap_or_default();
            return Err(HaError::Setup(format!(
                "PostgreSQL initdb on r0: rc {}\n{}{}\n--- server log\n{log}",
                o.rc, o.stdout, o.stderr
            )));
        }
        self.lab
            .run_ok(Node::A, &format!("umount {MNT} && drbdadm secondary r0"))?;
        Ok(())
    }

    /// Starts `hapair run` on `node` (and its safety watcher).
    pub fn start(&mut self, node: Node) -> Result<(), HaError> {
        let dir = self.lab.dir().display().to_string();
        let name = node.name();
        // the watcher: no fork per sample (UML forks are slow); sleeps by
        // a timed read on a FIFO nobody writes
        let watcher = format!(
            "mkdir -p /run/hw && rm -f /run/hw/w && mkfifo /run/hw/w && exec 3<>/run/hw/w; \
             while :; do r=none; m=no; \
             while read -r l; do case $l in *ro:*) r=${{l#*ro:}}; r=${{r%%/*}};; esac; done < /proc/drbd; \
             while read -r dv mp fs op rest; do [[ $dv == /dev/drbd0 && $op == rw* ]] && m=rw; done < /proc/mounts; \
             echo \"$EPOCHREALTIME $r $m\" >> {dir}/{name}/safety.log; read -t 0.2 -u 3; done"
        );
        self.lab.spawn(node, &watcher)?;
        if self.dm_lease {
            self.lab.run_ok(
                node,
                &format!(
                    "test -b {DM_LEASE} || {{ modprobe dm_mod && dmsetup create lease --table \
                     \"0 $(blockdev --getsz /dev/ubdb) linear /dev/ubdb 0\" && dmsetup mknodes lease && test -b {DM_LEASE}; }}"
                ),
            )?;
        }
        if let Some(a) = &self.nfs_agent {
            self.lab.run_ok(
                node,
                &nfs::lab::install_provider_script(&a.display().to_string()),
            )?;
        }
        self.spawn_daemon(node)
    }

    /// Stops `node`'s daemon with SIGTERM (it stops its stack and releases
    /// the lease first), waits up to 30 s for it to exit, and starts a new
    /// one with a new log ([`HaPair::last_log`]); the safety watcher goes
    /// on.
    pub fn restart(&mut self, node: Node) -> Result<(), HaError> {
        self.lab.run_ok(
            node,
            "pkill -TERM -x hapair; for i in $(seq 300); do pgrep -x hapair >/dev/null || exit 0; sleep 0.1; done; exit 1",
        )?;
        self.spawn_daemon(node)
    }

    fn spawn_daemon(&mut self, node: Node) -> Result<(), HaError> {
        let out = self.lab.spawn(
            node,
            &format!(
                "mkdir -p {MNT} /run/hapair && exec {} run --config {}",
                self.bin.display(),
                self.config.display()
            ),
        )?;
        self.logs[idx(node)].push(out);
        Ok(())
    }

    /// Everything `node`'s daemons logged, every start in order.
    pub fn log(&self, node: Node) -> String {
        self.logs[idx(node)]
            .iter()
            .map(|p| fs::read_to_string(p).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The latest daemon's log of `node`.
    pub fn last_log(&self, node: Node) -> String {
        self.logs[idx(node)]
            .last()
            .map(|p| fs::read_to_string(p).unwrap_or_default())
            .unwrap_or_default()
    }

    /// Waits until `pred` holds on the latest log of `node`.
    pub fn wait_log(
        &self,
        node: Node,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Result<(), HaError> {
        let t0 = Instant::now();
        loop {
            if pred(&self.last_log(node)) {
                return Ok(());
            }
            if t0.elapsed() > timeout {
                return Err(HaError::Timeout {
                    what: format!("{node}: {what}"),
                    after: timeout,
                    detail: self.dump(),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Both logs' tails and the power log, for a failure message.
    pub fn dump(&self) -> String {
        let tail = |s: String| {
            let l: Vec<&str> = s.lines().collect();
            l[l.len().saturating_sub(40)..].join("\n")
        };
        format!(
            "--- nodeA hapair log (tail)\n{}\n--- nodeB hapair log (tail)\n{}\n--- power log\n{}",
            tail(self.log(Node::A)),
            tail(self.log(Node::B)),
            self.lab.power_log()
        )
    }

    /// `hapair status` of `node` as JSON text (through the guest's socket).
    pub fn status(&self, node: Node) -> Result<String, HaError> {
        Ok(self
            .lab
            .run_ok(node, &format!("{} status --json", self.bin.display()))?)
    }

    /// The operator CLI in `node` (`hapair ARGS`): rc and output.
    pub fn cli(&self, node: Node, args: &str) -> Result<(i32, String), HaError> {
        let o = self
            .lab
            .run(node, &format!("{} {args}", self.bin.display()))?;
        Ok((o.rc, format!("{}{}", o.stdout, o.stderr)))
    }

    /// Waits until `node`'s latest daemon has the whole stack running and
    /// the service address answers there.
    pub fn wait_running(&self, node: Node, timeout: Duration) -> Result<(), HaError> {
        self.wait_log(node, "stack running here", timeout, |l| {
            l.contains("stack running here")
        })?;
        self.lab.run_ok(
            node,
            &format!(
                "mountpoint -q {MNT} && {} && ip -4 addr show dev vec0 | grep -q {SERVICE_IP}/",
                self.service.running_check()
            ),
        )?;
        Ok(())
    }

    /// Waits until one node's latest daemon runs the stack; returns it.
    pub fn wait_any_running(&self, timeout: Duration) -> Result<Node, HaError> {
        let t0 = Instant::now();
        loop {
            for n in [Node::A, Node::B] {
                if self.last_log(n).contains("stack running here") {
                    self.wait_running(n, Duration::from_secs(1))?;
                    return Ok(n);
                }
            }
            if t0.elapsed() > timeout {
                return Err(HaError::Timeout {
                    what: "a node to run the stack".into(),
                    after: timeout,
                    detail: self.dump(),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// One snapshot of the safety rule over the live nodes: at most one
    /// DRBD Primary, at most one rw mount of /dev/drbd0, at most one daemon
    /// that believes it holds the lease. Returns which node is Primary.
    pub fn check_safety(&self) -> Result<Option<Node>, HaError> {
        let mut primaries = Vec::new();
        let mut mounts = Vec::new();
        let mut holders = Vec::new();
        for n in [Node::A, Node::B] {
            if !self.lab.is_up(n) {
                continue;
            }
            let o = self.lab.run(
                n,
                &format!(
                    "cat /proc/drbd; echo @@; grep '^/dev/drbd0 ' /proc/mounts; echo @@; \
                     {} status --json 2>/dev/null",
                    self.bin.display()
                ),
            );
            let o = match o {
                Ok(o) => o,
                Err(LabError::NodeDown { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            let parts: Vec<&str> = o.stdout.split("@@").collect();
            if parts.len() < 3 {
                continue;
            }
            if parts[0].contains("ro:Primary/") {
                primaries.push(n);
            }
            if parts[1].lines().any(|l| {
                l.split_whitespace()
                    .nth(3)
                    .is_some_and(|o| o.starts_with("rw"))
            }) {
                mounts.push(n);
            }
            if believes_holder(parts[2], n.name()) {
                holders.push(n);
            }
        }
        let mut bad = Vec::new();
        if primaries.len() > 1 {
            bad.push(format!("two DRBD Primaries: {primaries:?}"));
        }
        if mounts.len() > 1 {
            bad.push(format!("/dev/drbd0 mounted rw on both: {mounts:?}"));
        }
        if holders.len() > 1 {
            bad.push(format!("two lease holders: {holders:?}"));
        }
        if !bad.is_empty() {
            return Err(HaError::Safety(format!(
                "{}\n{}",
                bad.join("; "),
                self.dump()
            )));
        }
        Ok(primaries.first().copied())
    }

    /// Every moment, from the watchers' samples, when both nodes were
    /// Primary or both had /dev/drbd0 mounted rw: a sample of one node
    /// that falls between two samples of the other that both say the same.
    pub fn watch_violations(&self) -> Vec<String> {
        let read = |n: Node| -> Vec<(f64, bool, bool)> {
            fs::read_to_string(self.lab.dir().join(n.name()).join("safety.log"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| {
                    let mut it = l.split_whitespace();
                    let t: f64 = it.next()?.parse().ok()?;
                    let role = it.next()?;
                    let m = it.next()?;
                    Some((t, role == "Primary", m == "rw"))
                })
                .collect()
        };
        let (a, b) = (read(Node::A), read(Node::B));
        let mut out = Vec::new();
        for (x, y, xn) in [(&a, &b, "nodeA"), (&b, &a, "nodeB")] {
            for &(t, xp, xm) in x {
                // y's samples bracketing t
                let before = y.iter().rev().find(|s| s.0 <= t);
                let after = y.iter().find(|s| s.0 >= t);
                if let (Some(p), Some(q)) = (before, after) {
                    if xp && p.1 && q.1 {
                        out.push(format!("{t:.3}: both Primary (sample of {xn})"));
                    }
                    if xm && p.2 && q.2 {
                        out.push(format!("{t:.3}: both mounted rw (sample of {xn})"));
                    }
                }
            }
        }
        out
    }

    /// How many watcher samples each node has (a check that they ran).
    pub fn watch_samples(&self, n: Node) -> usize {
        fs::read_to_string(self.lab.dir().join(n.name()).join("safety.log"))
            .unwrap_or_default()
            .lines()
            .count()
    }

    /// Makes the lease unreadable and unwritable on `node` only: its
    /// [`DM_LEASE`] table becomes `error`.
    pub fn break_lease(&self, node: Node) -> Result<(), HaError> {
        self.lab.run_ok(
            node,
            &format!(
                "dmsetup reload lease --table \"0 $(blockdev --getsz /dev/ubdb) error\" && \
                 dmsetup resume lease && ! dd if={DM_LEASE} of=/dev/null bs=512 count=1 \
                 iflag=direct status=none 2>/dev/null"
            ),
        )?;
        Ok(())
    }

    /// Power cut of the Primary `pri`: the survivor must declare it dead,
    /// fence it through the power switch (level 1) and run the stack;
    /// safety is checked right after the cut and once the stack runs.
    /// Prints the time to the stack running and the survivor's takeover
    /// timeline.
    pub fn power_cut_takeover(&self, pri: Node) -> Result<PowerCut, HaError> {
        let sec = other(pri);
        let cut = Instant::now();
        let asked_ms = crate::record::unix_ms();
        self.lab.kill(pri)?;
        let done_ms = crate::record::unix_ms();
        if let Some(n) = self.check_safety()? {
            return Err(HaError::Check(format!(
                "{n} Primary right after the power cut of {pri}, before any takeover"
            )));
        }
        self.wait_log(
            sec,
            "takeover after the power cut",
            Duration::from_secs(180),
            |l| l.contains("stack running here"),
        )?;
        self.wait_running(sec, Duration::from_secs(5))?;
        eprintln!(
            "power cut of {pri} -> stack running on {sec}: {:.1?}",
            cut.elapsed()
        );
        let fail = |what: String| Err(HaError::Check(format!("{what}\n{}", self.dump())));
        let primary = self.check_safety()?;
        if primary != Some(sec) {
            return fail(format!(
                "after the takeover the Primary is {primary:?}, not {sec}"
            ));
        }
        let log = self.last_log(sec);
        if !log.contains(&format!("{} is dead", pri.name())) {
            return fail(format!("{sec} never declared {pri} dead"));
        }
        if !log.contains("fence level 1: confirmed off") {
            return fail(format!("{sec} has no confirmed fencing of {pri}"));
        }
        if let Some(t) = log.lines().find(|l| l.contains("takeover timeline")) {
            eprintln!("{t}");
        }
        let power = self.lab.power_log();
        if !power.contains(&format!(" off {} rc=0", pri.name())) {
            return fail(format!("the power switch did not power {pri} off: {power}"));
        }
        Ok(PowerCut { asked_ms, done_ms })
    }

    /// After [`HaPair::power_on`] and [`HaPair::start`] of the old Primary
    /// `node`: waits (at most `timeout`) until DRBD has it Secondary and
    /// UpToDate/UpToDate again, checks safety (`other(node)` still the
    /// Primary) and that `node` did not take the stack; returns how long
    /// the wait took.
    pub fn wait_rejoined(&self, node: Node, timeout: Duration) -> Result<Duration, HaError> {
        let on = Instant::now();
        self.lab
            .wait_for(
                node,
                "drbdadm dstate r0 2>/dev/null | grep -qx UpToDate/UpToDate && \
                 drbdadm role r0 | grep -qx Secondary/Primary",
                "drbdadm cstate r0; drbdadm role r0; drbdadm dstate r0",
                timeout,
            )
            .map_err(|e| HaError::Check(format!("{e}\n{}", self.dump())))?;
        let took = on.elapsed();
        eprintln!("power on -> {node} Secondary UpToDate/UpToDate: {took:.1?}");
        let primary = self.check_safety()?;
        if primary != Some(other(node)) {
            return Err(HaError::Check(format!(
                "after {node} rejoined the Primary is {primary:?}, not {}",
                other(node)
            )));
        }
        if self.last_log(node).contains("stack running here") {
            return Err(HaError::Check(format!(
                "{node} took the stack on rejoining\n{}",
                self.dump()
            )));
        }
        Ok(took)
    }

    /// Powers `node` on through the lab's switch (DRBD down, as a real
    /// power-on: hapair's `drbdadm adjust` brings it up).
    pub fn power_on(&self, node: Node) -> Result<(), HaError> {
        let rc = self.lab.power(PowerAction::On, node)?;
        if rc != 0 {
            return Err(HaError::Setup(format!("power on {node}: rc {rc}")));
        }
        Ok(())
    }
}

/// Whether a `hapair status --json` line says its node holds the lease now.
pub fn believes_holder(status_json: &str, me: &str) -> bool {
    // {"ok":true,"status":{..."lease":{"device":..,"holder":"nodeA",..,"remaining_ms":N,...}}}
    let Some(l) = status_json.find("\"lease\":{") else {
        return false;
    };
    let lease = &status_json[l..];
    let lease = &lease[..lease.find('}').unwrap_or(lease.len())];
    let holder = lease.contains(&format!("\"holder\":\"{me}\""));
    let remaining = lease
        .split("\"remaining_ms\":")
        .nth(1)
        .and_then(|r| {
            r.split([',', '}'])
                .next()
                .and_then(|v| v.trim().parse::<i64>().ok())
        })
        .is_some_and(|ms| ms > 0);
    holder && remaining
}

/// Gives `r0` DRBD's fencing through hapair (drbd.md): `fencing
/// resource-and-stonith`, `hapair fence-peer` as the fence-peer handler and
/// its `--unfence` after a resync, and `pings` (e.g. `ping-int 1;
/// ping-timeout 3;`) instead of the lab's `ping-int 2; ping-timeout 5;`
/// when not empty; then `drbdadm adjust r0` on both nodes and a check that
/// the kernel and drbdadm took it. `hapair` and `config` are guest paths.
pub fn drbd_fencing_through_hapair(
    lab: &Lab,
    hapair: &Path,
    config: &Path,
    pings: &str,
) -> Result<(), HaError> {
    let res = lab.dir().join("drbd.d/r0.res");
    let text = fs::read_to_string(&res).map_err(|e| HaError::Setup(format!("r0.res: {e}")))?;
    let b = hapair.display();
    let c = config.display();
    const LAB_PINGS: &str = "ping-int 2; ping-timeout 5;";
    if !pings.is_empty() && !text.contains(LAB_PINGS) {
        return Err(HaError::Setup(format!(
            "{}: no `{LAB_PINGS}` to replace",
            res.display()
        )));
    }
    let text = text
        .replacen("disk {", "disk { fencing resource-and-stonith;", 1)
        .replacen(
            LAB_PINGS,
            if pings.is_empty() { LAB_PINGS } else { pings },
            1,
        )
        .replacen(
            "resource r0 {",
            &format!(
                "resource r0 {{\n  handlers {{ fence-peer \"{b} fence-peer --config {c}\"; \
                 after-resync-target \"{b} fence-peer --unfence --config {c}\"; }}"
            ),
            1,
        );
    fs::write(&res, text).map_err(|e| HaError::Setup(format!("r0.res: {e}")))?;
    // DRBD 8.4 can sit on an adjust while the peer's own adjust changes
    // the connection (seen once: 60 s without an answer); adjust is
    // idempotent, so a stuck one is given up and tried again
    for n in [Node::A, Node::B] {
        let mut tries = 0;
        loop {
            tries += 1;
            match lab.run_timeout(n, "drbdadm adjust r0", Duration::from_secs(30)) {
                Ok(o) if o.rc == 0 => break,
                Ok(o) if tries >= 3 => {
                    return Err(HaError::Setup(format!(
                        "{}: drbdadm adjust r0 failed {tries} times: rc {} {}",
                        n.name(),
                        o.rc,
                        o.stderr.trim()
                    )));
                }
                Err(e) if tries >= 3 => return Err(e.into()),
                _ => std::thread::sleep(Duration::from_secs(2)),
            }
        }
    }
    // the kernel's config has the policy, drbdadm's the handlers
    let shown = lab.run_ok(Node::A, "drbdsetup show r0; drbdadm dump r0")?;
    if !shown.contains("resource-and-stonith") || !shown.contains("hapair fence-peer") {
        return Err(HaError::Setup(format!(
            "DRBD did not take the fencing config:\n{shown}"
        )));
    }
    Ok(())
}

fn config_text(key: &Path, fence_agent: &Path, lease_dev: &str, service: Service) -> String {
    format!(
        r#"# hapair over the lab's DRBD r0 (written by hwtest::hapair_drbd)
[cluster]
name = "lab-drbd"
key_file = "{key}"
state_dir = "/run/hapair/state"
socket = "/run/hapair/hapair.sock"

[[node]]
name = "nodeA"
preferred = true
[[node]]
name = "nodeB"

[heartbeat]
keepalive = "200ms"
warntime = "1s"
deadtime = "2s"
initdead = "10s"

[[link]]
name = "lan"
nodeA = "10.88.0.1:5405"
nodeB = "10.88.0.2:5405"

[[link]]
name = "repl"
nodeA = "10.88.1.1:5405"
nodeB = "10.88.1.2:5405"

[lease]
device = "{lease_dev}"
index = 1
engine = "sync"
monitor_interval = "1s"
max_io = "1s"
margin = "1s"
collision_timeout = "2500ms"
lock_timeout = "40s"

[policy]
migration_threshold = 3
start_delay = "3s"
retry_interval = "1s"

[self_fence]
mode = "reboot"

[fencing]
delay = "3s"

[[fencing.device]]
target = "nodeA"
level = 1
agent = "{agent}"
timeout = "30s"

[[fencing.device]]
target = "nodeB"
level = 1
agent = "{agent}"
timeout = "30s"

[[resource]]
name = "drbd-r0"
type = "drbd"
params = {{ resource = "r0" }}
start_timeout = "30s"
stop_timeout = "10s"
monitor_interval = "5s"

[[resource]]
name = "fs"
type = "filesystem"
params = {{ device = "/dev/drbd0", directory = "{MNT}", fstype = "ext4" }}
start_timeout = "30s"
stop_timeout = "10s"
monitor_interval = "10s"

[[resource]]
name = "ip"
type = "address"
params = {{ ip = "{SERVICE_IP}", cidr_netmask = 24, nic = "vec0" }}
start_timeout = "10s"
stop_timeout = "5s"
monitor_interval = "10s"

{svc}"#,
        key = key.display(),
        agent = fence_agent.display(),
        svc = service.resource_toml(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_from_status_json() {
        let s = r#"{"ok":true,"status":{"node":"nodeA","lease":{"device":"/dev/ubdb","holder":"nodeA","counter":7,"remaining_ms":35000,"age_ms":100},"x":1}}"#;
        assert!(believes_holder(s, "nodeA"));
        assert!(!believes_holder(s, "nodeB"));
        let expired = s.replace("35000", "-20");
        assert!(!believes_holder(&expired, "nodeA"));
        let none = s.replace("\"remaining_ms\":35000,", "");
        assert!(!believes_holder(&none, "nodeA"));
        assert!(!believes_holder("{}", "nodeA"));
    }

    #[test]
    fn config_mentions_both_fence_devices() {
        let c = config_text(
            Path::new("/k"),
            Path::new("/lab/bin/fence_lab"),
            "/dev/ubdb",
            Service::Dummy,
        );
        assert_eq!(c.matches("agent = \"/lab/bin/fence_lab\"").count(), 2);
        assert!(c.contains("type = \"ocf:heartbeat:Dummy\""));
        let p = config_text(
            Path::new("/k"),
            Path::new("/lab/bin/fence_lab"),
            "/dev/ubdb",
            Service::Pgsql,
        );
        assert!(p.contains("type = \"ocf:heartbeat:pgsql\""));
        assert!(p.contains("pgdata = \"/mnt/r0/pgdata\""));
        assert!(!p.contains("Dummy"));
        let n = config_text(
            Path::new("/k"),
            Path::new("/lab/bin/fence_lab"),
            "/dev/ubdb",
            Service::Nfs,
        );
        assert!(n.contains("type = \"ocf:lab:nfs\""));
        assert!(n.contains("state = \"/mnt/r0/nfsstate\""));
    }
}
