//! The lab pair: `hapair run` on nodeA and nodeB over a shared LUN, a
//! record client on nodeC, and the checks and measurements of the demo and
//! the end-to-end scenarios (issue 8).
//!
//! Layout of the shared disk `/dev/ubdb` (an MBR written on the host into
//! `$LAB_DIR/shared.img`): partition 1 (4 MiB) is the sfex lock area, the
//! lease device; partition 2 (the rest) is the ext4 data area, mounted on
//! `/mnt/data` by the `filesystem` type (or `ocf:heartbeat:Filesystem`).
//! The stack, bottom first: the data filesystem, the address 10.88.0.100/24
//! on the lan interface (`vec0`), and the record service
//! ([`crate::record`]) as `ocf:lab:recordd`, listening on 10.88.0.100:7000.
//!
//! Binaries are copied into `$LAB_DIR/bin` (the guests see the lab dir, but
//! not a checkout or target dir under `/tmp`). Each daemon logs to
//! `$LAB_DIR/<node>/hapair.log`, on the host, so a power-cut node's log
//! survives.

use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use crate::record::{self, Ack};
use crate::{Lab, LabError, LabOptions, Node, PowerAction};

/// The service address.
pub const VIP: &str = "10.88.0.100";
/// The record service's port on [`VIP`].
pub const PORT: u16 = 7000;
/// Where the data area is mounted.
pub const DATA_DIR: &str = "/mnt/data";
/// The lease device in the guests.
pub const LEASE_DEV: &str = "/dev/ubdb1";
/// The data device in the guests.
pub const DATA_DEV: &str = "/dev/ubdb2";
/// The data device with [`PairOptions::drbd`].
pub const DRBD_DEV: &str = "/dev/drbd0";
/// The lease device of a pair made by [`Pair::up_dm_lease`]: a
/// device-mapper `linear` device over [`LEASE_DEV`] in each guest, whose
/// table [`Pair::break_lease`] swaps for `error` on one node only.
pub const DM_LEASE_DEV: &str = "/dev/mapper/lease";
/// Flag file in a guest: the record agent's `stop` fails (exit 1).
pub const STOP_FAIL_FLAG: &str = "/run/recordd.stop-fail";
/// Flag file in a guest: the record agent's `stop` hangs (sleeps an hour).
pub const STOP_HANG_FLAG: &str = "/run/recordd.stop-hang";

/// Why a pair operation or check failed.
#[derive(Debug, thiserror::Error)]
pub enum PairError {
    /// A lab operation.
    #[error(transparent)]
    Lab(#[from] LabError),
    /// Host-side file I/O.
    #[error("{what}: {source}")]
    Io {
        /// What was done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// A safety or progress check failed.
    #[error("{0}")]
    Check(String),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> PairError {
    let what = what.into();
    move |source| PairError::Io { what, source }
}

/// Which implementations run the filesystem and the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// The built-in `filesystem` and `address` types.
    Builtin,
    /// `ocf:heartbeat:Filesystem` and `ocf:heartbeat:IPaddr2`.
    Ocf,
}

/// What [`Pair::up`] needs.
#[derive(Debug, Clone)]
pub struct PairOptions {
    /// The `hapair` binary (host path).
    pub hapair: PathBuf,
    /// The `sfex` binary (host path).
    pub sfex: PathBuf,
    /// The record program and the arguments before `serve`/`client`/`agent`
    /// (e.g. `hapair-recordd`, or `hapair` with `demo --record`).
    pub record: (PathBuf, Vec<String>),
    /// Built-ins or OCF agents.
    pub flavor: Flavor,
    /// Boot nodeC (the client) too.
    pub client_node: bool,
    /// Printed progress (the demo) or quiet (tests print on failure).
    pub verbose: bool,
    /// The data on DRBD `r0` (`/dev/drbd0`, replicated over the repl link,
    /// hapair's `drbd` resource first in the stack, DRBD fencing through
    /// `hapair fence-peer`) instead of the shared disk's data partition.
    pub drbd: bool,
    /// Memory of each guest (`LAB_MEM`, e.g. `512M` for Pacemaker + Corosync);
    /// `None`: the lab's default.
    pub mem: Option<String>,
}

impl PairOptions {
    /// What the lab tests use: `hapair` and `sfex` from `HAPAIR_BIN_DIR` or
    /// the running test's target dir ([`crate::hapair_drbd::Bins::find`]),
    /// the record program `record` (the tests' `hapair-recordd`), the
    /// built-ins, nodeC as the client, quiet unless `HWTEST_VERBOSE` is set.
    pub fn for_tests(record: PathBuf) -> Result<PairOptions, PairError> {
        let bins = crate::hapair_drbd::Bins::find().map_err(|e| PairError::Check(e.to_string()))?;
        Ok(PairOptions {
            hapair: bins.hapair,
            sfex: bins.sfex,
            record: (record, vec![]),
            flavor: Flavor::Builtin,
            client_node: true,
            verbose: std::env::var("HWTEST_VERBOSE").is_ok(),
            drbd: false,
            mem: None,
        })
    }
}

/// The lab pair, torn down when dropped (through its [`Lab`]).
#[derive(Debug)]
pub struct Pair {
    /// The lab.
    pub lab: Lab,
    opts: PairOptions,
    bin: PathBuf,
    config: PathBuf,
    t0: Instant,
    dm_lease: bool,
}

/// How the record agent's `stop` misbehaves on a node
/// ([`Pair::set_stop_fault`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopFault {
    /// `stop` exits 1 (OCF_ERR_GENERIC) without stopping anything.
    Fail,
    /// `stop` never returns (past any stop timeout).
    Hang,
}

/// What [`Pair::check_safety`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Safety {
    /// The lease holder by the lock block (`None`: unlocked).
    pub holder: Option<String>,
    /// The nodes with a read-write mount of the data area.
    pub rw_mounts: Vec<Node>,
}

/// One measured failover.
#[derive(Debug, Clone, Default)]
pub struct Failover {
    /// The node that was cut.
    pub victim: Option<Node>,
    /// Power cut to detection (ms), from the survivor's timeline.
    pub detect_ms: Option<u64>,
    /// Power cut to the power switch's `off` done (fencing confirmed).
    pub fence_ms: Option<u64>,
    /// Each timeline step (name, ms after the power cut).
    pub steps: Vec<(String, u64)>,
    /// The survivor's raw timeline line.
    pub timeline: String,
    /// Power cut to the first ack on a new connection.
    pub served_ms: u64,
}

/// The surviving node of a pair.
pub fn other(n: Node) -> Node {
    if n == Node::A { Node::B } else { Node::A }
}

impl Pair {
    fn say(&self, s: &str) {
        if self.opts.verbose {
            println!("[{:6.2}s] {s}", self.t0.elapsed().as_secs_f64());
        }
    }

    /// Boots the lab (nodeA, nodeB and, if asked, nodeC; no DRBD), lays
    /// out the shared disk, installs the binaries and the record agent,
    /// writes the key file and the config into the lab dir. Daemons are
    /// not started yet ([`Pair::start_daemons`]).
    pub fn up(opts: PairOptions) -> Result<Pair, PairError> {
        Self::up_inner(opts, false)
    }

    /// [`Pair::up`] with the lease on [`DM_LEASE_DEV`], a device-mapper
    /// `linear` device over `/dev/ubdb1` made in each guest per boot, so
    /// that [`Pair::break_lease`] can make it fail on one node only.
    pub fn up_dm_lease(opts: PairOptions) -> Result<Pair, PairError> {
        Self::up_inner(opts, true)
    }

    fn up_inner(opts: PairOptions, dm_lease: bool) -> Result<Pair, PairError> {
        let t0 = Instant::now();
        for (what, p) in [
            ("hapair", &opts.hapair),
            ("sfex", &opts.sfex),
            ("record service", &opts.record.0),
        ] {
            if !p.is_file() {
                return Err(PairError::Check(format!(
                    "the {what} binary {} is missing: build it first \
                     (cargo build -p hapair -p sfex -p hwtest --bins)",
                    p.display()
                )));
            }
        }
        let mut nodes = vec![Node::A, Node::B];
        if opts.client_node {
            nodes.push(Node::C);
        }
        if opts.verbose {
            println!(
                "[  0.00s] booting the lab: {nodes:?} (user-mode Linux; installs packages on first use)"
            );
        }
        let lab = Lab::up_with(LabOptions {
            nodes,
            drbd: opts.drbd,
            mem: opts
                .mem
                .clone()
                .unwrap_or_else(|| LabOptions::default().mem),
            // hwtest's fence_lab where it was built (the tests), else hapair,
            // which acts as fence_lab when called by that name (the demo
            // after `cargo build --release`)
            fence_agent: Some(crate::default_fence_agent().unwrap_or_else(|_| opts.hapair.clone())),
            ..LabOptions::default()
        })?;
        let bin = lab.dir().join("bin");
        let config = lab.dir().join("hapair.toml");
        let pair = Pair {
            lab,
            opts,
            bin,
            config,
            t0,
            dm_lease,
        };
        pair.say(&format!(
            "lab {} up in {:.1?}",
            pair.lab.name(),
            pair.lab.up_time()
        ));
        pair.install()?;
        pair.layout()?;
        pair.write_config()?;
        if pair.opts.drbd {
            // DRBD's own peer-loss detection within about a second, so a
            // promotion after a power cut does not wait for it
            crate::hapair_drbd::drbd_fencing_through_hapair(
                &pair.lab,
                &pair.hapair(),
                &pair.config,
                "ping-int 1; ping-timeout 3;",
            )
            .map_err(|e| PairError::Check(e.to_string()))?;
            pair.say("DRBD r0: fencing resource-and-stonith through `hapair fence-peer`");
        }
        for n in [Node::A, Node::B] {
            pair.prepare(n)?;
        }
        Ok(pair)
    }

    fn bin_path(&self, p: &Path) -> PathBuf {
        self.bin.join(p.file_name().unwrap_or_default())
    }

    /// The hapair binary as the guests see it.
    pub fn hapair(&self) -> PathBuf {
        self.bin_path(&self.opts.hapair)
    }

    /// The lease device in the daemons' config.
    pub fn lease_dev(&self) -> &'static str {
        if self.dm_lease {
            DM_LEASE_DEV
        } else {
            LEASE_DEV
        }
    }

    /// The data device: `/dev/drbd0` with DRBD, else [`DATA_DEV`].
    pub fn data_dev(&self) -> &'static str {
        if self.opts.drbd { DRBD_DEV } else { DATA_DEV }
    }

    fn sfex(&self) -> PathBuf {
        self.bin_path(&self.opts.sfex)
    }

    /// The record command line prefix in the guests.
    pub fn record_cmd(&self) -> String {
        let mut s = self.bin_path(&self.opts.record.0).display().to_string();
        for a in &self.opts.record.1 {
            s.push(' ');
            s += a;
        }
        s
    }

    fn install(&self) -> Result<(), PairError> {
        fs::create_dir_all(&self.bin).map_err(io_err("create the lab bin dir"))?;
        for p in [&self.opts.hapair, &self.opts.sfex, &self.opts.record.0] {
            let to = self.bin_path(p);
            fs::copy(p, &to).map_err(io_err(format!("copy {} into the lab", p.display())))?;
        }
        let agent = self.bin.join("recordd-agent");
        // the flag files make `stop` fail or hang on one node (tests)
        fs::write(
            &agent,
            format!(
                "#!/bin/sh\n\
                 if [ \"$1\" = stop ] && [ -e {STOP_FAIL_FLAG} ]; then echo 'recordd: stop fails ({STOP_FAIL_FLAG})' >&2; exit 1; fi\n\
                 if [ \"$1\" = stop ] && [ -e {STOP_HANG_FLAG} ]; then exec sleep 3600; fi\n\
                 exec {} agent \"$@\"\n",
                self.record_cmd()
            ),
        )
        .map_err(io_err("write the record agent"))?;
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&agent, fs::Permissions::from_mode(0o755))
            .map_err(io_err("chmod the record agent"))?;
        let key = self.lab.dir().join("authkey");
        let out = std::process::Command::new(&self.opts.hapair)
            .args(["keygen", "--file"])
            .arg(&key)
            .output()
            .map_err(io_err("run hapair keygen"))?;
        if !out.status.success() {
            return Err(PairError::Check(format!(
                "hapair keygen: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(())
    }

    /// Writes an MBR with the two partitions into the shared image, then
    /// makes the guests re-read it, initialises the sfex lock area and the
    /// ext4 data area (from nodeA).
    fn layout(&self) -> Result<(), PairError> {
        let img = self.lab.dir().join("shared.img");
        let size = fs::metadata(&img).map_err(io_err("stat shared.img"))?.len();
        let sectors = u32::try_from(size / 512).unwrap_or(u32::MAX);
        let mbr = mbr(&[(2048, 8192), (10240, sectors - 10240)]);
        {
            use std::os::unix::fs::FileExt;
            let f = fs::OpenOptions::new()
                .write(true)
                .open(&img)
                .map_err(io_err("open shared.img"))?;
            f.write_all_at(&mbr, 0)
                .map_err(io_err("write the partition table"))?;
            f.sync_all().map_err(io_err("sync shared.img"))?;
        }
        for n in [Node::A, Node::B] {
            self.lab.run_ok(
                n,
                "blockdev --rereadpt /dev/ubdb && for i in $(seq 50); do [ -b /dev/ubdb2 ] && exit 0; sleep 0.1; done; exit 1",
            )?;
        }
        let sfex = self.sfex();
        let mkfs = if self.opts.drbd {
            format!("drbdadm primary r0 && mkfs.ext4 -q -F {DRBD_DEV} && drbdadm secondary r0")
        } else {
            format!("mkfs.ext4 -q -F {DATA_DEV}")
        };
        self.lab.run_ok(
            Node::A,
            &format!("{} init --force {LEASE_DEV} && {mkfs}", sfex.display()),
        )?;
        self.say(if self.opts.drbd {
            "shared disk: /dev/ubdb1 sfex lock area (4 MiB); ext4 on DRBD r0 (/dev/drbd0)"
        } else {
            "shared disk: /dev/ubdb1 sfex lock area (4 MiB), /dev/ubdb2 ext4 data area"
        });
        Ok(())
    }

    /// The config file text.
    pub fn config_text(&self) -> String {
        let d = self.lab.dir().display();
        let fence = self.bin.join("fence_lab");
        let fence = fence.display();
        let (fs_type, fs_extra, addr_type, fs_start) = match self.opts.flavor {
            Flavor::Builtin => ("filesystem", "", "address", "20s"),
            Flavor::Ocf => (
                "ocf:heartbeat:Filesystem",
                "",
                "ocf:heartbeat:IPaddr2",
                "60s",
            ),
        };
        let record = self.record_cmd();
        let lease_dev = self.lease_dev();
        let data_dev = self.data_dev();
        // with DRBD: its resource first (promoted where the stack runs),
        // and room in the stop budget for its demote
        let (drbd_res, stop_budget) = if self.opts.drbd {
            (
                "[[resource]]
name = \"drbd-r0\"
type = \"drbd\"
params = { resource = \"r0\" }
start_timeout = \"20s\"
stop_timeout = \"4s\"
monitor_interval = \"5s\"

",
                "12s",
            )
        } else {
            ("", "8s")
        };
        format!(
            r#"# written by hwtest::pair (the hapair lab demo)
[cluster]
name = "lab-pair"
key_file = "{d}/authkey"
state_dir = "/run/hapair/state"
socket = "/run/hapair/hapair.sock"

[[node]]
name = "nodeA"
preferred = true
[[node]]
name = "nodeB"

[heartbeat]
keepalive = "100ms"
warntime = "250ms"
deadtime = "400ms"
initdead = "5s"

[[link]]
name = "lan"
nodeA = "10.88.0.1:5405"
nodeB = "10.88.0.2:5405"
interface = "vec0"

[[link]]
name = "repl"
nodeA = "10.88.1.1:5405"
nodeB = "10.88.1.2:5405"
interface = "vec1"

[lease]
device = "{lease_dev}"
index = 1
engine = "sync"
monitor_interval = "300ms"
max_io = "150ms"
margin = "500ms"
collision_timeout = "450ms"
# explicit: the default (~10 s) leaves only ~2 s between a missed renewal and
# the emergency stop (stop_budget 8 s); a guest starved of CPU while its peer
# boots hit that once. A power-cut takeover never waits for lock_timeout.
lock_timeout = "20s"

[policy]
migration_threshold = 3
start_delay = "1s"
retry_interval = "500ms"
stop_budget = "{stop_budget}"

# softdog (soft_margin=3 when loaded): /dev/watchdog1 in the guests, since
# UML's own harddog holds /dev/watchdog and needs a host helper
[self_fence]
mode = "watchdog"
watchdog_device = "/dev/watchdog1"
watchdog_timeout = "3s"

[fencing]
# > monitor_interval + max_io: the holder's counter stood still for longer
# than a renewal can take
delay = "500ms"

[[fencing.device]]
target = "nodeA"
level = 1
agent = "{fence}"
timeout = "15s"
params = {{ plug = "nodeA" }}

[[fencing.device]]
target = "nodeB"
level = 1
agent = "{fence}"
timeout = "15s"
params = {{ plug = "nodeB" }}

{drbd_res}[[resource]]
name = "data"
type = "{fs_type}"
params = {{ device = "{data_dev}", directory = "{DATA_DIR}", fstype = "ext4"{fs_extra} }}
start_timeout = "{fs_start}"
stop_timeout = "4s"
monitor_interval = "5s"

[[resource]]
name = "vip"
type = "{addr_type}"
params = {{ ip = "{VIP}", cidr_netmask = 24, nic = "vec0" }}
start_timeout = "{fs_start}"
stop_timeout = "2s"
monitor_interval = "5s"

[[resource]]
name = "records"
type = "ocf:lab:recordd"
params = {{ listen = "{VIP}:{PORT}", directory = "{DATA_DIR}", serve_cmd = "{record}" }}
start_timeout = "15s"
stop_timeout = "2s"
monitor_interval = "5s"
"#
        )
    }

    fn write_config(&self) -> Result<(), PairError> {
        fs::write(&self.config, self.config_text()).map_err(io_err("write hapair.toml"))?;
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&self.config, fs::Permissions::from_mode(0o640))
            .map_err(io_err("chmod hapair.toml"))?;
        let out = std::process::Command::new(&self.opts.hapair)
            .arg("validate")
            .arg(&self.config)
            .output()
            .map_err(io_err("run hapair validate"))?;
        if !out.status.success() {
            return Err(PairError::Check(format!(
                "hapair validate {}: {}{}",
                self.config.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        self.say(&format!(
            "config {} (valid), key {}/authkey",
            self.config.display(),
            self.lab.dir().display()
        ));
        Ok(())
    }

    /// The config file (host path = guest path).
    pub fn config(&self) -> &Path {
        &self.config
    }

    /// Per boot of a pair node: softdog, the OCF provider `lab` (a tmpfs
    /// over `/usr/lib/ocf/resource.d` linking the host's providers back),
    /// the mount point and the state dir; the partition table re-read.
    ///
    /// softdog gets `nowayout=0`: the guest kernel is built with
    /// `CONFIG_WATCHDOG_NOWAYOUT=y`, under which even hapair's magic close
    /// on a clean stop leaves the device armed and the guest resets 3 s
    /// later. A daemon that dies without the magic close still gets fenced
    /// by it (softdog keeps running after an unexpected close).
    pub fn prepare(&self, node: Node) -> Result<(), PairError> {
        let agent = self.bin.join("recordd-agent");
        let script = format!(
            "set -e
modprobe softdog soft_margin=3 nowayout=0
[ -c /dev/watchdog1 ]
if ! grep -q ' /usr/lib/ocf/resource.d ' /proc/self/mountinfo; then
  mkdir -p /run/ocf-host && mount --bind /usr/lib/ocf/resource.d /run/ocf-host
  mount -t tmpfs ocf /usr/lib/ocf/resource.d
  for d in /run/ocf-host/*; do ln -s \"$d\" /usr/lib/ocf/resource.d/; done
  mkdir /usr/lib/ocf/resource.d/lab
  ln -s {agent} /usr/lib/ocf/resource.d/lab/recordd
fi
mkdir -p {DATA_DIR} /run/hapair/state
[ -b {LEASE_DEV} ] || blockdev --rereadpt /dev/ubdb
for i in $(seq 50); do [ -b {LEASE_DEV} ] && break; sleep 0.1; done
[ -b {LEASE_DEV} ]
{dm}",
            agent = agent.display(),
            dm = if self.dm_lease {
                format!(
                    "test -b {DM_LEASE_DEV} || {{ modprobe dm_mod && dmsetup create lease --table \
                     \"0 $(blockdev --getsz {LEASE_DEV}) linear {LEASE_DEV} 0\" && dmsetup mknodes lease; }}
test -b {DM_LEASE_DEV}"
                )
            } else {
                String::new()
            }
        );
        self.lab.run_ok(node, &script)?;
        Ok(())
    }

    /// The daemon's log (host path).
    pub fn log_path(&self, node: Node) -> PathBuf {
        self.lab.dir().join(node.name()).join("hapair.log")
    }

    /// The daemon's log so far.
    pub fn log(&self, node: Node) -> String {
        fs::read_to_string(self.log_path(node)).unwrap_or_default()
    }

    /// Starts `hapair run` in `node` (detached; log appended to
    /// [`Pair::log_path`]).
    pub fn start_daemon(&self, node: Node) -> Result<(), PairError> {
        let cmd = format!(
            "echo $$ > /run/hapair/daemon.pid; exec {} run --config {} --node {} >> {} 2>&1",
            self.hapair().display(),
            self.config.display(),
            node.name(),
            self.log_path(node).display()
        );
        self.lab.spawn(node, &cmd)?;
        Ok(())
    }

    /// Starts both daemons.
    pub fn start_daemons(&self) -> Result<(), PairError> {
        self.start_daemon(Node::A)?;
        self.start_daemon(Node::B)?;
        self.say("hapair run started on nodeA and nodeB (heartbeat on lan and repl)");
        Ok(())
    }

    /// `kill -9` of the daemon in `node` (the stack keeps running).
    pub fn kill_daemon(&self, node: Node) -> Result<(), PairError> {
        self.lab
            .run_ok(node, "kill -9 $(cat /run/hapair/daemon.pid)")?;
        Ok(())
    }

    /// Starts both daemons at the same instant: each guest waits on a go
    /// file in the lab dir (a bash loop without forks, 10 ms steps), then
    /// the host creates it.
    pub fn start_daemons_together(&self) -> Result<(), PairError> {
        let go = self.lab.dir().join("go-daemons");
        let _ = fs::remove_file(&go);
        for n in [Node::A, Node::B] {
            let cmd = format!(
                "rm -f /run/hapair/go && mkfifo /run/hapair/go && exec 3<>/run/hapair/go; \
                 while [ ! -e {go} ]; do read -t 0.01 -u 3; done; exec 3<&-; \
                 echo $$ > /run/hapair/daemon.pid; exec {} run --config {} --node {} >> {} 2>&1",
                self.hapair().display(),
                self.config.display(),
                n.name(),
                self.log_path(n).display(),
                go = go.display()
            );
            self.lab.spawn(n, &cmd)?;
        }
        // both are waiting once their fifo exists
        for n in [Node::A, Node::B] {
            self.lab.wait_for(
                n,
                "[ -p /run/hapair/go ]",
                "ls -l /run/hapair",
                Duration::from_secs(20),
            )?;
        }
        fs::write(&go, b"go\n").map_err(io_err("create the go file"))?;
        self.say("hapair run started on nodeA and nodeB at the same instant");
        Ok(())
    }

    /// Makes the lease device unreadable and unwritable on `node` only
    /// (its [`DM_LEASE_DEV`] table becomes `error`); needs a pair from
    /// [`Pair::up_dm_lease`]. Checks that a direct read now fails there.
    pub fn break_lease(&self, node: Node) -> Result<(), PairError> {
        if !self.dm_lease {
            return Err(PairError::Check(
                "break_lease needs a pair made by Pair::up_dm_lease".into(),
            ));
        }
        self.lab.run_ok(
            node,
            &format!(
                "dmsetup reload lease --table \"0 $(blockdev --getsz {LEASE_DEV}) error\" && \
                 dmsetup resume lease && ! dd if={DM_LEASE_DEV} of=/dev/null bs=512 count=1 \
                 iflag=direct status=none 2>/dev/null"
            ),
        )?;
        self.say(&format!(
            "lease device {DM_LEASE_DEV} on {node}: dm table `error`"
        ));
        Ok(())
    }

    /// Undoes [`Pair::break_lease`] on `node`: the `linear` table again;
    /// checks that a direct read works there.
    pub fn heal_lease(&self, node: Node) -> Result<(), PairError> {
        self.lab.run_ok(
            node,
            &format!(
                "dmsetup reload lease --table \"0 $(blockdev --getsz {LEASE_DEV}) linear {LEASE_DEV} 0\" && \
                 dmsetup resume lease && dd if={DM_LEASE_DEV} of=/dev/null bs=512 count=1 \
                 iflag=direct status=none"
            ),
        )?;
        self.say(&format!(
            "lease device {DM_LEASE_DEV} on {node}: dm table `linear` again"
        ));
        Ok(())
    }

    /// Makes the record agent's `stop` fail or hang on `node` from now on
    /// (`None`: behave again), through a flag file in the guest's `/run`.
    pub fn set_stop_fault(&self, node: Node, fault: Option<StopFault>) -> Result<(), PairError> {
        let cmd = match fault {
            None => format!("rm -f {STOP_FAIL_FLAG} {STOP_HANG_FLAG}"),
            Some(StopFault::Fail) => format!("rm -f {STOP_HANG_FLAG}; touch {STOP_FAIL_FLAG}"),
            Some(StopFault::Hang) => format!("rm -f {STOP_FAIL_FLAG}; touch {STOP_HANG_FLAG}"),
        };
        self.lab.run_ok(node, &cmd)?;
        Ok(())
    }

    /// `kill -9` of the record server on `node`, behind the agent's back
    /// (its next monitor finds it not running). Returns the killed pid.
    pub fn kill_service(&self, node: Node) -> Result<u32, PairError> {
        let out = self
            .lab
            .run_ok(node, "p=$(cat /run/recordd.pid) && kill -9 $p && echo $p")?;
        out.trim()
            .parse()
            .map_err(|_| PairError::Check(format!("kill_service on {node}: {out:?}")))
    }

    /// `hapair status --json` of `node`'s daemon: the report object
    /// (`nodes`, `resources`, `moves`, `fencing`, ...).
    pub fn status(&self, node: Node) -> Result<serde_json::Value, PairError> {
        let out = self.ctl(node, "status --json")?;
        let v: serde_json::Value = serde_json::from_str(out.trim())
            .map_err(|e| PairError::Check(format!("status --json of {node}: {e}: {out}")))?;
        // the report itself, or a control response carrying it
        let v = v.get("status").cloned().unwrap_or(v);
        if v.get("nodes").is_none() {
            return Err(PairError::Check(format!(
                "status --json of {node}: no report: {out}"
            )));
        }
        Ok(v)
    }

    /// The role `node`'s daemon gives itself (`primary`, `secondary`,
    /// `stopped`, ...).
    pub fn role(&self, node: Node) -> Result<String, PairError> {
        let s = self.status(node)?;
        Ok(node_field(&s, node, "role").unwrap_or_default())
    }

    /// Powers `node` on through the power switch (a fresh boot), prepares
    /// it ([`Pair::prepare`]) and starts its daemon.
    pub fn power_on_and_rejoin(&self, node: Node) -> Result<(), PairError> {
        let rc = self.lab.power(PowerAction::On, node)?;
        if rc != 0 {
            return Err(PairError::Check(format!("power on {node}: rc {rc}")));
        }
        self.prepare(node)?;
        self.start_daemon(node)?;
        self.say(&format!("{node} powered on, daemon started"));
        Ok(())
    }

    /// `node`'s log from byte `from` on (a length of [`Pair::log`] taken
    /// earlier).
    pub fn log_since(&self, node: Node, from: usize) -> String {
        let l = self.log(node);
        l.get(from.min(l.len())..).unwrap_or_default().to_owned()
    }

    /// Runs `hapair ARGS --socket ...` in `node`.
    pub fn ctl(&self, node: Node, args: &str) -> Result<String, PairError> {
        Ok(self.lab.run_ok(
            node,
            &format!(
                "{} {args} --socket /run/hapair/hapair.sock",
                self.hapair().display()
            ),
        )?)
    }

    /// Reads the lock block and both live nodes' mountinfo and checks the
    /// safety rule: at most one read-write mount of the data area, and a
    /// node with one holds the lease.
    ///
    /// Each node reads the lock, its mountinfo, then the lock again, in one
    /// command: a node with the data mounted must be the holder in at least
    /// one of the two reads around it. (One read after the mountinfo, as
    /// before, saw a correct handover as a violation: the node unmounted
    /// and released, and the peer took the lock, between the two reads.)
    /// The reported holder is the newest read. The two nodes are read one
    /// after the other, so two rw mounts are sampled about 0.2 s apart; a
    /// handover takes longer than that (release, heartbeat, lock write).
    pub fn check_safety(&self) -> Result<Safety, PairError> {
        self.check_safety_inner(true)
    }

    /// [`Pair::check_safety`] for a stack that does not use the lease
    /// (Pacemaker's in the side-by-side benchmark): at most one read-write
    /// mount of the data area and at most one DRBD Primary; `holder` is
    /// `None`.
    pub fn check_safety_without_lease(&self) -> Result<Safety, PairError> {
        self.check_safety_inner(false)
    }

    fn check_safety_inner(&self, lease: bool) -> Result<Safety, PairError> {
        let mut rw = Vec::new();
        let mut holder = None;
        let mut lock_read = false;
        let mut primaries = Vec::new();
        for n in [Node::A, Node::B] {
            if !self.lab.is_up(n) {
                continue;
            }
            let sfex = self.sfex();
            let sfex = sfex.display();
            let drbd = if self.opts.drbd {
                "echo '=== drbd'; cat /proc/drbd 2>/dev/null; "
            } else {
                ""
            };
            let cmd = if lease {
                format!(
                    "{sfex} status {LEASE_DEV}; echo '=== mountinfo'; cat /proc/self/mountinfo; \
                     echo '=== sfex'; {sfex} status {LEASE_DEV}; {drbd}true"
                )
            } else {
                format!(
                    "echo '=== mountinfo'; cat /proc/self/mountinfo; echo '=== sfex'; {drbd}true"
                )
            };
            let out = match self.lab.run(n, &cmd) {
                Ok(o) => o.stdout,
                // powered off between is_up and run: nothing mounted there
                Err(LabError::NodeDown { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            let (before, rest) = out.split_once("=== mountinfo").unwrap_or(("", &out));
            let (mi, after) = rest.split_once("=== sfex").unwrap_or((rest, ""));
            let (l1, l2) = (lock_holder(before), lock_holder(after));
            let data = self.data_dev();
            if rw_mounted(mi, data) {
                rw.push(n);
            }
            if lease && rw_mounted(mi, data) {
                let me = Some(Some(n.name().to_owned()));
                if l1 != me && l2 != me {
                    return Err(PairError::Check(format!(
                        "SAFETY: {n} has {data} mounted read-write but the lease holder \
                         is {l1:?} before and {l2:?} after reading its mounts"
                    )));
                }
            }
            if self.opts.drbd && drbd_primary(&out) {
                primaries.push(n);
            }
            if let Some(h) = l2.or(l1) {
                lock_read = true;
                holder = h;
            }
        }
        if lease && !lock_read && (self.lab.is_up(Node::A) || self.lab.is_up(Node::B)) {
            return Err(PairError::Check(
                "could not read the sfex lock from a live node".into(),
            ));
        }
        let s = Safety {
            holder,
            rw_mounts: rw,
        };
        if s.rw_mounts.len() > 1 {
            return Err(PairError::Check(format!(
                "SAFETY: two read-write mounts of {}: {:?}",
                self.data_dev(),
                s.rw_mounts
            )));
        }
        if primaries.len() > 1 {
            return Err(PairError::Check(format!(
                "SAFETY: DRBD r0 Primary on both nodes: {primaries:?}"
            )));
        }
        // (a mount's holder was checked on its own node, around its read)
        Ok(s)
    }

    /// Waits until exactly one node runs the stack (data mounted rw there,
    /// the service answering on the address from nodeC, or from the node
    /// itself without nodeC) and returns it, checking safety on the way.
    pub fn wait_primary(&self, timeout: Duration) -> Result<Node, PairError> {
        let start = Instant::now();
        let mut last = None;
        while start.elapsed() < timeout {
            for n in [Node::A, Node::B] {
                if let Some(l) = self.log(n).lines().find(|l| l.starts_with("hapair: ")) {
                    return Err(PairError::Check(format!("the daemon on {n} exited: {l}")));
                }
            }
            let s = self.check_safety()?;
            if let [p] = s.rw_mounts[..] {
                let probe = format!(
                    "timeout 3 bash -c 'exec 3<>/dev/tcp/{VIP}/{PORT} && echo rec 0 >&3 && read -t 2 a <&3 && [ \"$a\" = \"ack 0\" ]'"
                );
                let from = if self.opts.client_node { Node::C } else { p };
                if self.lab.run(from, &probe).is_ok_and(|o| o.success()) {
                    return Ok(p);
                }
            }
            last = Some(s);
            thread::sleep(Duration::from_millis(200));
        }
        Err(PairError::Check(format!(
            "no node runs the stack after {timeout:?} (last: {last:?}); logs:\n--- nodeA\n{}\n--- nodeB\n{}",
            tail(&self.log(Node::A), 30),
            tail(&self.log(Node::B), 30)
        )))
    }

    /// Starts the record client on nodeC; returns its output file.
    pub fn start_client(&self) -> Result<PathBuf, PairError> {
        Ok(self.lab.spawn(
            Node::C,
            &format!("exec {} client --to {VIP}:{PORT}", self.record_cmd()),
        )?)
    }

    /// The records file on `node` (which must have it mounted).
    pub fn records_on(&self, node: Node) -> Result<String, PairError> {
        Ok(self
            .lab
            .run_ok(node, &format!("cat {DATA_DIR}/{}", record::RECORDS_FILE))?)
    }

    /// Waits until the client has `n` more acks than `after`.
    pub fn wait_acks(
        &self,
        client: &Path,
        more: usize,
        timeout: Duration,
    ) -> Result<Vec<Ack>, PairError> {
        let start = Instant::now();
        let base = acks(client).len();
        loop {
            let a = acks(client);
            if a.len() >= base + more {
                return Ok(a);
            }
            if start.elapsed() > timeout {
                return Err(PairError::Check(format!(
                    "the client got {} acks in {timeout:?}, wanted {more}",
                    a.len() - base
                )));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every acknowledged record must be in the records file on `primary`:
    /// returns (acknowledged, lost).
    pub fn verify_records(
        &self,
        client: &Path,
        primary: Node,
    ) -> Result<(usize, Vec<u64>), PairError> {
        let acks = acks(client);
        let records = self.records_on(primary)?;
        Ok((acks.len(), record::lost(&acks, &records)))
    }

    /// Waits until the client is served on a connection newer than
    /// `conn_before` at or after `t0` (Unix ms), and returns how long after
    /// `t0`. `check`: `Some(lease)` runs the safety check (with or without
    /// the lease, see [`Pair::check_safety_without_lease`]) while waiting.
    pub fn wait_served(
        &self,
        client: &Path,
        conn_before: u64,
        t0: u64,
        timeout: Duration,
        check: Option<bool>,
    ) -> Result<u64, PairError> {
        let start = Instant::now();
        loop {
            if let Some(a) = acks(client)
                .into_iter()
                .find(|a| a.conn > conn_before && a.at_ms >= t0)
            {
                return Ok(a.at_ms.saturating_sub(t0));
            }
            if start.elapsed() > timeout {
                return Err(PairError::Check(format!(
                    "the client was not served again {timeout:?} after the power cut"
                )));
            }
            if let Some(lease) = check {
                self.check_safety_inner(lease)?;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Power-cuts `victim` (the primary) through the host side of the power
    /// switch, then waits until the client is served again through the
    /// peer, and measures the failover. Checks safety every step while
    /// waiting.
    /// `check` says whether to check safety while waiting (each check
    /// runs a command in both guests, which slows the takeover a little;
    /// the benchmark checks before and after only).
    pub fn power_cut(
        &self,
        victim: Node,
        client: &Path,
        timeout: Duration,
        check: bool,
    ) -> Result<Failover, PairError> {
        let conn_before = acks(client).last().map_or(0, |a| a.conn);
        let log_len = self.log(other(victim)).len();
        let power_log_len = self.lab.power_log().len();
        let t0 = record::unix_ms();
        let rc = self.lab.power(PowerAction::Off, victim)?;
        if rc != 0 {
            return Err(PairError::Check(format!("power off {victim}: rc {rc}")));
        }
        self.say(&format!("POWER CUT {victim} (the primary)"));
        let served_ms = self
            .wait_served(client, conn_before, t0, timeout, check.then_some(true))
            .map_err(|e| {
                PairError::Check(format!(
                    "{e}; {} log:\n{}",
                    other(victim),
                    tail(&self.log(other(victim)), 40)
                ))
            })?;
        let mut f = Failover {
            victim: Some(victim),
            served_ms,
            ..Failover::default()
        };
        // the survivor logs its timeline once the stack runs
        let t_wait = Instant::now();
        let line = loop {
            let log = self.log(other(victim));
            if let Some(l) = log[log_len.min(log.len())..]
                .lines()
                .find(|l| l.contains("takeover timeline:"))
            {
                break l.to_owned();
            }
            if t_wait.elapsed() > Duration::from_secs(10) {
                return Err(PairError::Check(format!(
                    "no takeover timeline in {}'s log",
                    other(victim)
                )));
            }
            thread::sleep(Duration::from_millis(50));
        };
        f.timeline = line
            .split("takeover timeline:")
            .nth(1)
            .unwrap_or("")
            .trim()
            .to_owned();
        let steps = parse_timeline(&f.timeline);
        if let (Some(end), Some(last)) = (log_time_ms(&line), steps.last()) {
            let start_abs = end.saturating_sub(last.1);
            for (name, rel) in &steps {
                f.steps
                    .push((name.clone(), (start_abs + rel).saturating_sub(t0)));
            }
            f.detect_ms = f.steps.iter().find(|(n, _)| n == "detect").map(|s| s.1);
        }
        let plog = self.lab.power_log();
        f.fence_ms = plog[power_log_len.min(plog.len())..]
            .lines()
            .find(|l| l.contains(&format!(" off {} rc=0", victim.name())))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse::<f64>().ok())
            .map(|done| {
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let ms = (done * 1000.0) as u64;
                ms.saturating_sub(t0)
            });
        Ok(f)
    }
}

/// A field of `node`'s entry in a status report's `nodes`.
pub fn node_field(status: &serde_json::Value, node: Node, field: &str) -> Option<String> {
    status["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["name"] == node.name())?
        .get(field)?
        .as_str()
        .map(str::to_owned)
}

/// A resource's fail counts by node in a status report.
pub fn fail_counts(status: &serde_json::Value, res: &str) -> Vec<(String, u64)> {
    status["resources"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["name"] == res))
        .and_then(|r| r["fail_counts"].as_object())
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

/// The acks in a client's output file so far.
pub fn acks(client: &Path) -> Vec<Ack> {
    record::parse_acks(&fs::read_to_string(client).unwrap_or_default())
}

/// Whether the `=== drbd` part of a safety read (`/proc/drbd`) shows the
/// local role Primary (`ro:Primary/...`).
fn drbd_primary(out: &str) -> bool {
    out.split_once("=== drbd")
        .is_some_and(|(_, d)| d.contains(" ro:Primary/"))
}

/// Whether `dev` is mounted read-write in this mountinfo text.
pub fn rw_mounted(mountinfo: &str, dev: &str) -> bool {
    mountinfo.lines().any(|l| {
        let Some((left, right)) = l.split_once(" - ") else {
            return false;
        };
        let source = right.split_whitespace().nth(1);
        let opts = left.split_whitespace().nth(5).unwrap_or("");
        source == Some(dev) && opts.split(',').any(|o| o == "rw")
    })
}

/// The holder from `sfex status` text: `Some(None)` unlocked,
/// `Some(Some(name))` locked by name, `None` unreadable.
pub fn lock_holder(status: &str) -> Option<Option<String>> {
    let field = |k: &str| {
        status
            .lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix(k).map(|v| v.trim().to_owned()))
    };
    match field("status:")?.as_str() {
        "lock" => Some(Some(field("nodename:")?)),
        "unlock" => Some(None),
        _ => None,
    }
}

/// `detect +0 ms, fence +812 ms` → [("detect", 0), ("fence", 812)].
pub fn parse_timeline(t: &str) -> Vec<(String, u64)> {
    t.split(',')
        .filter_map(|s| {
            let mut w = s.split_whitespace();
            let name = w.next()?.to_owned();
            let ms = w.next()?.strip_prefix('+')?.parse().ok()?;
            Some((name, ms))
        })
        .collect()
}

/// The Unix time (ms) of a tracing log line starting with an RFC 3339 UTC
/// timestamp (`2026-11-25T02:12:39.123456Z ...`).
pub fn log_time_ms(line: &str) -> Option<u64> {
    let ts = line.split_whitespace().next()?;
    let ts = ts.strip_suffix('Z')?;
    let (date, time) = ts.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, m, dd) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|x| x.parse::<i64>());
    let (h, mi, s) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    let ms: i64 = format!("{frac:0<3}")[..3].parse().ok()?;
    // days from civil (Howard Hinnant)
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + dd - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(((days * 86400 + h * 3600 + mi * 60 + s) * 1000) + ms).ok()
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let l: Vec<&str> = s.lines().collect();
    l[l.len().saturating_sub(n)..].join("\n")
}

/// An MBR with primary Linux partitions (start sector, sectors).
pub fn mbr(parts: &[(u32, u32)]) -> [u8; 512] {
    let mut b = [0u8; 512];
    for (i, (start, len)) in parts.iter().enumerate().take(4) {
        let e = 446 + 16 * i;
        b[e] = 0;
        b[e + 1..e + 4].copy_from_slice(&[0xfe, 0xff, 0xff]);
        b[e + 4] = 0x83;
        b[e + 5..e + 8].copy_from_slice(&[0xfe, 0xff, 0xff]);
        b[e + 8..e + 12].copy_from_slice(&start.to_le_bytes());
        b[e + 12..e + 16].copy_from_slice(&len.to_le_bytes());
    }
    b[510] = 0x55;
    b[511] = 0xaa;
    b
}

/// p50 and p99 (nearest rank) of `v` (sorted in place).
pub fn percentiles(v: &mut [u64]) -> Option<(u64, u64)> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let rank = |p: usize| {
        v[((v.len() * p).div_ceil(100))
            .saturating_sub(1)
            .min(v.len() - 1)]
    };
    Some((rank(50), rank(99)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers() {
        assert_eq!(
            parse_timeline("detect +0 ms, fence +812 ms, lease +1300 ms"),
            vec![
                ("detect".into(), 0),
                ("fence".into(), 812),
                ("lease".into(), 1300)
            ]
        );
        assert_eq!(log_time_ms("1970-01-01T00:00:01.5Z x"), Some(1500));
        assert_eq!(
            log_time_ms("2000-03-01T00:00:00.000Z x"),
            Some(951_868_800_000)
        );
        let mi = "36 25 98:2 / /mnt/data rw,relatime shared:1 - ext4 /dev/ubdb2 rw\n\
                  37 25 98:2 / /mnt/x ro,relatime - ext4 /dev/ubdb1 rw\n";
        assert!(rw_mounted(mi, "/dev/ubdb2"));
        assert!(!rw_mounted(mi, "/dev/ubdb1"));
        assert_eq!(
            lock_holder("  status: lock\n  count: 7\n  nodename: nodeA\nstatus is LOCKED.\n"),
            Some(Some("nodeA".into()))
        );
        assert_eq!(
            lock_holder("  status: unlock\n  count: 0\n  nodename: \nstatus is UNLOCKED.\n"),
            Some(None)
        );
        assert_eq!(lock_holder("garbage"), None);
        assert_eq!(percentiles(&mut [5, 1, 3, 2, 4]), Some((3, 5)));
        let m = mbr(&[(2048, 8192)]);
        assert_eq!(&m[510..], &[0x55, 0xaa]);
        assert_eq!(m[446 + 4], 0x83);
    }
}
