//! Issue 10: `ocf:hapair:sfex` inside a real Pacemaker + Corosync cluster
//! (tuned token, STONITH through the lab's `fence_lab`), in front of the
//! DRBD/filesystem group exactly where `ocf:heartbeat:sfex` sits in
//! classic setups: the lease primitive first; DRBD r0 may be promoted
//! only where the lease is held (hapair's safety rule: colocation of the
//! Promoted role with the lease, order lease start → promote); the group
//! Filesystem /dev/drbd0 → IPaddr2 → busybox httpd runs where r0 is
//! Promoted. The shared disk `/dev/ubdb` is the lock device (`sfex init`).
//!
//! 1. The lease holder (read from the shared image on the host with
//!    `sfex status` and resource-agents' `sfex_stat`) is the node running
//!    the group.
//! 2. A power cut of the holder: Pacemaker fences it through `fence_lab`
//!    (the switch's log shows `off`), and lease and group move together.
//! 3. Interchangeability on the same lock device: with our agent holding
//!    the lease, the lease is made unmanaged, the holder loses power and is
//!    fenced, the primitive becomes `ocf:heartbeat:sfex` (sfex_daemon),
//!    which takes over the lease our agent held; then the same the other
//!    way round, our agent taking over sfex_daemon's lease.
//!
//! After every step: never two lease holders (lock processes), never two
//! read-write mounts of r0, never two DRBD Primaries; the lock on disk
//! names the node that runs the group.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hwtest::hapair_drbd::{Bins, other};
use hwtest::pcmk::{self, ClusterStatus, Pacemaker, Token};
use hwtest::{Lab, LabOptions, Node};

const LOCK_TIMEOUT: u32 = 6;
const FAILOVER: Duration = Duration::from_secs(150);
const PAGE: &str = "hello from drbd r0 under ocf sfex";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Agent {
    /// `ocf:hapair:sfex` (`sfex lock`).
    Hapair,
    /// resource-agents' `ocf:heartbeat:sfex` (`sfex_daemon`).
    Heartbeat,
}

impl Agent {
    fn provider(self) -> &'static str {
        match self {
            Agent::Hapair => "hapair",
            Agent::Heartbeat => "heartbeat",
        }
    }
}

/// The lease primitive: same lock device and timings for both agents;
/// ours gets its binary (under the lab dir, visible in the guests).
fn lease_xml(agent: Agent, sfex: &Path) -> String {
    let binary = match agent {
        Agent::Hapair => format!(
            r#"<nvpair id="lease-bin" name="binary" value="{}"/>"#,
            sfex.display()
        ),
        Agent::Heartbeat => String::new(),
    };
    format!(
        r#"<primitive id="lease" class="ocf" provider="{p}" type="sfex">
    <instance_attributes id="lease-ia">
      <nvpair id="lease-dev" name="device" value="/dev/ubdb"/>
      <nvpair id="lease-idx" name="index" value="1"/>
      <nvpair id="lease-coll" name="collision_timeout" value="1"/>
      <nvpair id="lease-mon" name="monitor_interval" value="2"/>
      <nvpair id="lease-lt" name="lock_timeout" value="{LOCK_TIMEOUT}"/>
      {binary}
    </instance_attributes>
    <operations>
      <op id="lease-monitor" name="monitor" interval="10s" timeout="20s"/>
      <op id="lease-start" name="start" interval="0" timeout="60s"/>
      <op id="lease-stop" name="stop" interval="0" timeout="30s"/>
    </operations>
  </primitive>"#,
        p = agent.provider()
    )
}

fn stack_xml(agent: Agent, sfex: &Path) -> String {
    format!(
        r#"<configuration>
<resources>
  <primitive id="fence-lab" class="stonith" type="fence_lab">
    <instance_attributes id="fence-lab-ia">
      <nvpair id="fence-lab-hl" name="pcmk_host_list" value="nodeA nodeB"/>
    </instance_attributes>
    <operations><op id="fence-lab-mon" name="monitor" interval="60s"/></operations>
  </primitive>
  {lease}
  <clone id="drbd-r0-clone">
    <meta_attributes id="drbd-r0-clone-meta">
      <nvpair id="d-prom" name="promotable" value="true"/>
      <nvpair id="d-pmax" name="promoted-max" value="1"/>
      <nvpair id="d-pnmax" name="promoted-node-max" value="1"/>
      <nvpair id="d-cmax" name="clone-max" value="2"/>
      <nvpair id="d-cnmax" name="clone-node-max" value="1"/>
      <nvpair id="d-notify" name="notify" value="true"/>
    </meta_attributes>
    <primitive id="drbd-r0" class="ocf" provider="linbit" type="drbd">
      <instance_attributes id="drbd-r0-ia"><nvpair id="drbd-r0-res" name="drbd_resource" value="r0"/></instance_attributes>
      <operations>
        <op id="drbd-r0-mon-p" name="monitor" interval="29s" role="Promoted"/>
        <op id="drbd-r0-mon-u" name="monitor" interval="31s" role="Unpromoted"/>
        <op id="drbd-r0-start" name="start" interval="0" timeout="240s"/>
        <op id="drbd-r0-stop" name="stop" interval="0" timeout="100s"/>
        <op id="drbd-r0-promote" name="promote" interval="0" timeout="90s"/>
        <op id="drbd-r0-demote" name="demote" interval="0" timeout="90s"/>
      </operations>
    </primitive>
  </clone>
  <group id="g-svc">
    <primitive id="fs-r0" class="ocf" provider="heartbeat" type="Filesystem">
      <instance_attributes id="fs-r0-ia">
        <nvpair id="fs-dev" name="device" value="/dev/drbd0"/>
        <nvpair id="fs-dir" name="directory" value="/mnt/r0"/>
        <nvpair id="fs-type" name="fstype" value="ext4"/>
      </instance_attributes>
      <operations>
        <op id="fs-r0-mon" name="monitor" interval="20s" timeout="40s"/>
        <op id="fs-r0-start" name="start" interval="0" timeout="60s"/>
        <op id="fs-r0-stop" name="stop" interval="0" timeout="60s"/>
      </operations>
    </primitive>
    <primitive id="ip-svc" class="ocf" provider="heartbeat" type="IPaddr2">
      <instance_attributes id="ip-svc-ia">
        <nvpair id="ip-ip" name="ip" value="10.88.0.100"/>
        <nvpair id="ip-mask" name="cidr_netmask" value="24"/>
        <nvpair id="ip-nic" name="nic" value="vec0"/>
      </instance_attributes>
      <operations><op id="ip-svc-mon" name="monitor" interval="20s" timeout="40s"/></operations>
    </primitive>
    <primitive id="web" class="ocf" provider="heartbeat" type="anything">
      <instance_attributes id="web-ia">
        <nvpair id="web-bin" name="binfile" value="/bin/busybox"/>
        <nvpair id="web-opts" name="cmdline_options" value="httpd -f -p 10.88.0.100:80 -h /mnt/r0/www"/>
      </instance_attributes>
      <operations>
        <op id="web-mon" name="monitor" interval="20s" timeout="40s"/>
        <op id="web-start" name="start" interval="0" timeout="60s"/>
        <op id="web-stop" name="stop" interval="0" timeout="60s"/>
      </operations>
    </primitive>
  </group>
</resources>
<constraints>
  <rsc_colocation id="col-promoted-with-lease" score="INFINITY" rsc="drbd-r0-clone" rsc-role="Promoted" with-rsc="lease"/>
  <rsc_order id="ord-lease-then-promote" kind="Mandatory" first="lease" first-action="start" then="drbd-r0-clone" then-action="promote"/>
  <rsc_colocation id="col-svc-on-promoted" score="INFINITY" rsc="g-svc" with-rsc="drbd-r0-clone" with-rsc-role="Promoted"/>
  <rsc_order id="ord-promote-then-svc" kind="Mandatory" first="drbd-r0-clone" first-action="promote" then="g-svc" then-action="start"/>
  <rsc_colocation id="col-svc-with-lease" score="INFINITY" rsc="g-svc" with-rsc="lease"/>
</constraints>
<rsc_defaults>
  <meta_attributes id="rsc-options">
    <nvpair id="rsc-options-stickiness" name="resource-stickiness" value="100"/>
  </meta_attributes>
</rsc_defaults>
</configuration>
"#,
        lease = lease_xml(agent, sfex)
    )
}

/// A read-only host loop device over the shared image, to read the lock
/// as the guests see it (the image is one host file, coherent through the
/// host page cache). Detached on drop.
struct HostLoop(String);

impl HostLoop {
    fn attach(img: &Path) -> HostLoop {
        let out = Command::new("losetup")
            .args(["--read-only", "--find", "--show"])
            .arg(img)
            .output()
            .expect("losetup");
        assert!(
            out.status.success(),
            "losetup of {} failed (the test needs loop devices): {}",
            img.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        HostLoop(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}

impl Drop for HostLoop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

struct T<'a> {
    lab: &'a Lab,
    pcmk: &'a Pacemaker<'a>,
    sfex_host: PathBuf,
    lock_dev: HostLoop,
    t0: Instant,
}

impl T<'_> {
    fn say(&self, what: &str) {
        eprintln!("[{:6.1}s] {what}", self.t0.elapsed().as_secs_f64());
    }

    /// The lock's holder on disk (None: unlocked), from `sfex status`;
    /// resource-agents' `sfex_stat` must name the same node.
    fn disk_holder(&self) -> Option<String> {
        let out = Command::new(&self.sfex_host)
            .args(["--engine", "sync", "status", "--json", "--node", "host"])
            .arg(&self.lock_dev.0)
            .output()
            .expect("sfex status");
        let text = String::from_utf8_lossy(&out.stdout);
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
            panic!(
                "sfex status --json: {e}: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let holder = (v["lock"]["status"] == "locked")
            .then(|| v["lock"]["nodename"].as_str().unwrap_or("").to_owned());
        let stat = Command::new("/usr/sbin/sfex_stat")
            .args(["-i", "1", &self.lock_dev.0])
            .output()
            .expect("sfex_stat");
        let stat = String::from_utf8_lossy(&stat.stdout).into_owned()
            + &String::from_utf8_lossy(&stat.stderr);
        if let Some(h) = &holder {
            assert!(
                stat.contains(h.as_str()),
                "sfex_stat disagrees with sfex status ({h}):\n{stat}"
            );
        }
        holder
    }

    /// The safety rule over the nodes that are up: at most one DRBD
    /// Primary, one rw mount of /dev/drbd0, one node with a lock process
    /// (`sfex lock` or `sfex_daemon`). With `holder`: that node holds the
    /// lock on disk, has the lock process, is Primary, has r0 mounted rw,
    /// and Pacemaker runs lease, promoted r0 and the group there.
    fn check(&self, holder: Option<Node>) -> ClusterStatus {
        let mut primaries = Vec::new();
        let mut mounts = Vec::new();
        let mut lockers = Vec::new();
        let mut seen = String::new();
        for n in [Node::A, Node::B] {
            if !self.lab.is_up(n) {
                continue;
            }
            let out = match self.lab.run(
                n,
                "cat /proc/drbd; echo @@; cat /proc/self/mountinfo; echo @@; \
                 pgrep -af 'sfex lock |sfex_daemon ' || true",
            ) {
                Ok(o) => o.stdout,
                Err(hwtest::LabError::NodeDown { .. }) => continue,
                Err(e) => panic!("{e}"),
            };
            let parts: Vec<&str> = out.split("@@").collect();
            assert_eq!(parts.len(), 3, "{n}: {out}");
            if parts[0].contains("ro:Primary/") {
                primaries.push(n);
            }
            let rw = parts[1].lines().any(|l| {
                let Some((left, right)) = l.split_once(" - ") else {
                    return false;
                };
                right.split_whitespace().nth(1) == Some("/dev/drbd0")
                    && left
                        .split_whitespace()
                        .nth(5)
                        .is_some_and(|o| o.split(',').any(|x| x == "rw"))
            });
            if rw {
                mounts.push(n);
            }
            if !parts[2].trim().is_empty() {
                lockers.push(n);
            }
            seen += &format!("--- {n}\n{}\n{}\n", parts[0].trim(), parts[2].trim());
        }
        let disk = self.disk_holder();
        let st = self.pcmk.status().unwrap_or_else(|e| panic!("{e}"));
        let ctx = || format!("{seen}disk lock: {disk:?}\n{}", self.pcmk.crm_mon_text());
        assert!(primaries.len() <= 1, "two DRBD Primaries\n{}", ctx());
        assert!(mounts.len() <= 1, "/dev/drbd0 mounted rw twice\n{}", ctx());
        assert!(lockers.len() <= 1, "two lease holders\n{}", ctx());
        if let Some(h) = holder {
            assert_eq!(disk.as_deref(), Some(h.name()), "disk lock\n{}", ctx());
            assert_eq!(lockers, vec![h], "lock process\n{}", ctx());
            assert_eq!(primaries, vec![h], "DRBD Primary\n{}", ctx());
            assert_eq!(mounts, vec![h], "rw mount\n{}", ctx());
            assert_eq!(st.running_on("lease"), vec![h], "{}", ctx());
            assert_eq!(st.promoted_on("drbd-r0"), vec![h], "{}", ctx());
            for r in ["fs-r0", "ip-svc", "web"] {
                assert_eq!(st.running_on(r), vec![h], "{r}\n{}", ctx());
            }
        } else {
            // nobody runs the stack: the disk lock may name a dead node,
            // but no live node may act on it
            for n in &primaries {
                assert!(
                    lockers.contains(n),
                    "{n} Primary without the lease\n{}",
                    ctx()
                );
            }
        }
        st
    }

    /// The page, fetched over the service address with bash's /dev/tcp
    /// (busybox wget segfaults in the UML guests).
    fn served(&self, from: Node) {
        let page = self
            .lab
            .run_ok(
                from,
                "exec 3<>/dev/tcp/10.88.0.100/80 && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 && timeout 5 cat <&3",
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(page.contains(PAGE), "{page}");
    }

    fn offs(&self, victim: Node) -> usize {
        self.lab
            .power_log()
            .matches(&format!(" off {} rc=0", victim.name()))
            .count()
    }

    /// Power cut of `victim`; waits until Pacemaker had it fenced (the
    /// switch logged one more `off`). Returns the time to fenced.
    fn cut_and_fence(&self, victim: Node) -> Duration {
        let before = self.offs(victim);
        let cut = Instant::now();
        self.lab.kill(victim).unwrap();
        self.check(None);
        while self.offs(victim) == before {
            assert!(
                cut.elapsed() < Duration::from_secs(60),
                "{victim} was not fenced through fence_lab within 60 s\npower log:\n{}\n{}",
                self.lab.power_log(),
                self.pcmk.crm_mon_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let fenced = cut.elapsed();
        self.say(&format!(
            "{victim}: power cut -> fenced (switch off) {fenced:.1?}"
        ));
        fenced
    }

    /// Waits for the stack (lease, promoted r0, group) on `on`, checks it,
    /// and that the page is served.
    fn wait_stack(&self, on: Node, since: Instant) {
        self.pcmk
            .wait_started("web", Some(on), FAILOVER)
            .unwrap_or_else(|e| panic!("{e}"));
        self.say(&format!("stack running on {on}: {:.1?}", since.elapsed()));
        self.check(Some(on));
        self.served(on);
    }

    /// Boots a fenced node (DRBD up) and has it rejoin the cluster; waits
    /// until it runs r0 Unpromoted and changed nothing.
    fn bring_back(&self, node: Node, holder: Node) {
        let t = Instant::now();
        self.lab.boot(node).unwrap_or_else(|e| panic!("{e}"));
        self.pcmk.rejoin().unwrap_or_else(|e| panic!("{e}"));
        self.pcmk
            .wait(
                &format!("{node} back, r0 Unpromoted there"),
                Duration::from_secs(120),
                |st| {
                    st.online.len() == 2
                        && st.running_on("drbd-r0").contains(&node)
                        && st.promoted_on("drbd-r0") == vec![holder]
                        && st.running_on("web") == vec![holder]
                },
            )
            .unwrap_or_else(|e| panic!("{e}"));
        self.say(&format!("{node} booted and rejoined: {:.1?}", t.elapsed()));
        self.check(Some(holder));
    }

    /// Makes the lease unmanaged (Pacemaker neither stops nor starts it
    /// any more) and waits until the cluster shows it so.
    fn unmanage_lease(&self, holder: Node) {
        self.lab
            .run_ok(
                holder,
                "crm_resource -r lease --meta -p is-managed -v false",
            )
            .unwrap();
        self.pcmk
            .wait("lease unmanaged", Duration::from_secs(30), |st| {
                st.get("lease").iter().all(|r| !r.managed)
            })
            .unwrap_or_else(|e| panic!("{e}"));
        self.check(Some(holder));
    }
}

fn install_agent(lab: &Lab, sfex: &Path) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sfex/ocf/install.sh");
    let ocf = lab.dir().join("ocf");
    let out = Command::new("sh")
        .arg(&script)
        .arg("--prefix")
        .arg(lab.dir())
        .arg("--ocf-root")
        .arg(&ocf)
        .arg(sfex)
        .output()
        .expect("install.sh");
    assert!(
        out.status.success(),
        "install.sh: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(Pacemaker::ocf_dir(lab).join("hapair/sfex").is_file());
    lab.dir().join("sbin/sfex")
}

#[test]
fn ocf_sfex_in_pacemaker() {
    let t0 = Instant::now();
    let bins = Bins::find().unwrap_or_else(|e| panic!("{e}"));
    let lab = Lab::up_with(LabOptions {
        mem: pcmk::MEM.into(),
        run_timeout: Duration::from_secs(120),
        ..LabOptions::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "[{:6.1}s] lab up ({:.1?})",
        t0.elapsed().as_secs_f64(),
        lab.up_time()
    );
    let sfex = install_agent(&lab, &bins.sfex);
    lab.run_ok(
        Node::A,
        &format!(
            "drbdadm primary r0 && mkfs.ext4 -q /dev/drbd0 && mkdir -p /mnt/r0 && mount /dev/drbd0 /mnt/r0 && \
             mkdir /mnt/r0/www && echo '{PAGE}' > /mnt/r0/www/index.html && umount /mnt/r0 && \
             drbdadm secondary r0 && {} init /dev/ubdb",
            sfex.display()
        ),
    )
    .unwrap();
    let fence_lab_before = Path::new("/usr/sbin/fence_lab").exists();
    let lock_dev = HostLoop::attach(&lab.dir().join("shared.img"));
    let pcmk = Pacemaker::up(&lab, Token::Tuned).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "[{:6.1}s] pacemaker up ({:.1?})",
        t0.elapsed().as_secs_f64(),
        pcmk.up_time()
    );
    // Pacemaker accepts our fence_lab: its metadata parses, the fencer
    // lists it as an installed agent, and it reports both plugs
    let meta = lab
        .run_ok(
            Node::A,
            "stonith_admin -I | grep -qw fence_lab && stonith_admin --metadata -a fence_lab | xmllint --noout - && \
             stonith_admin --metadata -a fence_lab",
        )
        .unwrap();
    assert!(meta.contains("name=\"plug\""), "{meta}");
    // both agents' metadata as Pacemaker reads it
    lab.run_ok(
        Node::B,
        "crm_resource --show-metadata ocf:hapair:sfex | xmllint --noout - && \
         crm_resource --show-metadata ocf:heartbeat:sfex | xmllint --noout -",
    )
    .unwrap();
    let t = T {
        lab: &lab,
        pcmk: &pcmk,
        sfex_host: bins.sfex.clone(),
        lock_dev,
        t0,
    };
    t.check(None);
    assert_eq!(t.disk_holder(), None, "fresh lock device is unlocked");

    let load = Instant::now();
    let out = pcmk
        .load(&stack_xml(Agent::Hapair, &sfex))
        .unwrap_or_else(|e| panic!("{e}"));
    t.say(&format!("loaded: {}", out.trim()));
    let first = pcmk
        .wait_started("web", None, FAILOVER)
        .unwrap_or_else(|e| panic!("{e}"));
    t.say(&format!("stack started on {first}: {:.1?}", load.elapsed()));
    let st = t.check(Some(first));
    assert_eq!(st.get("lease")[0].agent, "ocf:hapair:sfex");
    t.served(first);
    let fence_dev = st.running_on("fence-lab");
    assert_eq!(fence_dev.len(), 1, "{st:?}");

    // 1. power cut of the holder: ours -> ours
    let second = other(first);
    let cut = Instant::now();
    let fenced1 = t.cut_and_fence(first);
    t.wait_stack(second, cut);
    let failover1 = cut.elapsed();
    t.bring_back(first, second);

    // 2. ours held it on `second`; sfex_daemon takes it over after the
    // power cut
    t.unmanage_lease(second);
    let cut = Instant::now();
    let fenced2 = t.cut_and_fence(second);
    pcmk.wait("lease stopped after the fencing", FAILOVER, |st| {
        st.running_on("lease").is_empty() && st.unclean.is_empty()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    // the unmanaged lease is not started anywhere, so nothing is promoted
    let st = t.check(None);
    assert!(st.promoted_on("drbd-r0").is_empty(), "{st:?}");
    assert_eq!(
        t.disk_holder().as_deref(),
        Some(second.name()),
        "stale lock of the dead holder"
    );
    pcmk.load(&stack_xml(Agent::Heartbeat, &sfex))
        .unwrap_or_else(|e| panic!("{e}"));
    t.wait_stack(first, cut);
    let failover2 = cut.elapsed();
    let st = t.status_agent();
    assert_eq!(st, "ocf:heartbeat:sfex");
    t.lab
        .run_ok(first, "pgrep -f '/sfex_daemon .* lease ' >/dev/null")
        .unwrap();
    t.bring_back(second, first);

    // 3. and back: sfex_daemon held it on `first`; ours takes it over
    t.unmanage_lease(first);
    let cut = Instant::now();
    let fenced3 = t.cut_and_fence(first);
    pcmk.wait("lease stopped after the fencing", FAILOVER, |st| {
        st.running_on("lease").is_empty() && st.unclean.is_empty()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    t.check(None);
    assert_eq!(
        t.disk_holder().as_deref(),
        Some(first.name()),
        "stale lock of the dead holder"
    );
    pcmk.load(&stack_xml(Agent::Hapair, &sfex))
        .unwrap_or_else(|e| panic!("{e}"));
    t.wait_stack(second, cut);
    let failover3 = cut.elapsed();
    assert_eq!(t.status_agent(), "ocf:hapair:sfex");
    let power = lab.power_log();
    t.say(&format!(
        "power cut -> fenced / -> stack running: ours->ours {fenced1:.1?} / {failover1:.1?}; \
         ours->sfex_daemon {fenced2:.1?} / {failover2:.1?} (incl. the CIB change); \
         sfex_daemon->ours {fenced3:.1?} / {failover3:.1?}\npower log:\n{power}"
    ));
    drop(t);
    pcmk.kill().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        fence_lab_before || !Path::new("/usr/sbin/fence_lab").exists(),
        "pcmk-down.sh left /usr/sbin/fence_lab behind"
    );
    lab.down().unwrap_or_else(|e| panic!("{e}"));
    eprintln!("total {:.1?}", t0.elapsed());
}

impl T<'_> {
    fn status_agent(&self) -> String {
        let st = self.pcmk.status().unwrap_or_else(|e| panic!("{e}"));
        st.get("lease")[0].agent.clone()
    }
}
