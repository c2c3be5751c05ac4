//! The pure pieces of the side-by-side benchmark (`hapair demo --drbd
//! --versus-pacemaker`): the Pacemaker configuration of the same stack
//! hapair runs in the lab pair, the Pacemaker failover timeline read from
//! the survivor's `pacemaker.log`, and each manager's processes, memory and
//! CPU read from a guest's `/proc` in one fork-free shell loop.
//!
//! Both stacks are measured by one rule: a manager is its daemons (by
//! command line) and every process below them at the moment of sampling;
//! CPU is the daemons' own ticks plus those of the children they reaped
//! (`cutime`/`cstime`: a monitor operation's agent counts for the manager
//! that forked it); the managed service is reparented to init by its agent
//! and counts for neither.

use crate::pair::{DATA_DIR, DRBD_DEV, PORT, VIP};

/// The Pacemaker configuration fragment (for `pcmk-load.sh`) of the lab
/// pair's DRBD stack: `stonith:fence_lab`; a promotable `ocf:linbit:drbd`
/// clone for r0; a group `Filesystem` (ext4 on r0) -> `IPaddr2` (the VIP)
/// -> `ocf:lab:recordd` (the record service, `record_cmd` its server
/// command line in the guests), colocated with the Promoted role and
/// started after the promotion; stickiness 100. Operation timings are the
/// reference stack's (`shared/lab/pacemaker/example-drbd-fs-ip.xml`).
pub fn pacemaker_stack(record_cmd: &str) -> String {
    let record_cmd = xml_escape(record_cmd);
    format!(
        r#"<configuration>
<resources>
  <primitive id="fence-lab" class="stonith" type="fence_lab">
    <instance_attributes id="fence-lab-ia">
      <nvpair id="fence-lab-hl" name="pcmk_host_list" value="nodeA nodeB"/>
    </instance_attributes>
    <operations><op id="fence-lab-mon" name="monitor" interval="60s"/></operations>
  </primitive>
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
        <nvpair id="fs-dev" name="device" value="{DRBD_DEV}"/>
        <nvpair id="fs-dir" name="directory" value="{DATA_DIR}"/>
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
        <nvpair id="ip-ip" name="ip" value="{VIP}"/>
        <nvpair id="ip-mask" name="cidr_netmask" value="24"/>
        <nvpair id="ip-nic" name="nic" value="vec0"/>
      </instance_attributes>
      <operations><op id="ip-svc-mon" name="monitor" interval="10s" timeout="40s"/></operations>
    </primitive>
    <primitive id="records" class="ocf" provider="lab" type="recordd">
      <instance_attributes id="records-ia">
        <nvpair id="records-listen" name="listen" value="{VIP}:{PORT}"/>
        <nvpair id="records-dir" name="directory" value="{DATA_DIR}"/>
        <nvpair id="records-cmd" name="serve_cmd" value="{record_cmd}"/>
      </instance_attributes>
      <operations>
        <op id="records-mon" name="monitor" interval="10s" timeout="40s"/>
        <op id="records-start" name="start" interval="0" timeout="60s"/>
        <op id="records-stop" name="stop" interval="0" timeout="60s"/>
      </operations>
    </primitive>
  </group>
</resources>
<constraints>
  <rsc_colocation id="col-svc-on-promoted" score="INFINITY" rsc="g-svc" with-rsc="drbd-r0-clone" with-rsc-role="Promoted"/>
  <rsc_order id="ord-promote-then-svc" kind="Mandatory" first="drbd-r0-clone" first-action="promote" then="g-svc" then-action="start"/>
</constraints>
<rsc_defaults>
  <meta_attributes id="rsc-options">
    <nvpair id="rsc-options-stickiness" name="resource-stickiness" value="100"/>
  </meta_attributes>
</rsc_defaults>
</configuration>
"#
    )
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The guest command that prints one line per process: `P`, its VmRSS in
/// KiB, its `/proc/PID/stat` line and its command line (arguments joined
/// by spaces), tab-separated. Bash builtins only: a fork in a UML guest
/// costs tens of milliseconds and would be measured as load.
pub const PROC_SNAPSHOT: &str = r#"for d in /proc/[0-9]*; do
  st=; read -r st < "$d/stat" 2>/dev/null || continue
  rss=0; while read -r k v _; do [ "$k" = VmRSS: ] && { rss=$v; break; }; done < "$d/status" 2>/dev/null
  args=(); mapfile -d '' args < "$d/cmdline" 2>/dev/null
  printf 'P\t%s\t%s\t%s\n' "$rss" "$st" "${args[*]}"
done"#;

/// One process of a [`PROC_SNAPSHOT`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    /// Its pid.
    pub pid: u32,
    /// Its parent's pid.
    pub ppid: u32,
    /// `comm` (at most 15 bytes).
    pub comm: String,
    /// Resident set size, KiB.
    pub rss_kb: u64,
    /// utime + stime, clock ticks.
    pub ticks: u64,
    /// cutime + cstime: ticks of its reaped children.
    pub child_ticks: u64,
    /// The command line, arguments joined by spaces (empty for kernel
    /// threads).
    pub cmdline: String,
}

/// Parses a [`PROC_SNAPSHOT`] output; lines that are not well formed (a
/// process that exited between two reads) are skipped.
pub fn parse_snapshot(out: &str) -> Vec<Proc> {
    out.lines().filter_map(parse_proc_line).collect()
}

fn parse_proc_line(line: &str) -> Option<Proc> {
    let mut f = line.splitn(4, '\t');
    if f.next()? != "P" {
        return None;
    }
    let rss_kb = f.next()?.trim().parse().ok()?;
    let stat = f.next()?;
    let cmdline = f.next().unwrap_or("").trim_end().to_owned();
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let pid = stat[..open].trim().parse().ok()?;
    let comm = stat.get(open + 1..close)?.to_owned();
    // fields after the comm: state(3) ppid(4) ... utime(14) stime(15)
    // cutime(16) cstime(17); index = field - 3
    let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let num = |field: usize| -> Option<u64> { rest.get(field - 3)?.parse().ok() };
    let ppid = u32::try_from(num(4)?).ok()?;
    // cutime/cstime are signed in the kernel's format; never negative here
    Some(Proc {
        pid,
        ppid,
        comm,
        rss_kb,
        ticks: num(14)? + num(15)?,
        child_ticks: num(16)? + num(17)?,
        cmdline,
    })
}

/// Which HA manager a measurement is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manager {
    /// Corosync + Pacemaker: `corosync`, `pacemakerd` and the
    /// `/usr/lib/pacemaker/pacemaker-*` daemons.
    Pacemaker,
    /// hapair: `hapair run`.
    Hapair,
}

impl Manager {
    /// Whether `p` is one of this manager's daemons.
    pub fn is_daemon(self, p: &Proc) -> bool {
        let mut args = p.cmdline.split(' ');
        let argv0 = args.next().unwrap_or("");
        let base = argv0.rsplit('/').next().unwrap_or("");
        match self {
            Manager::Pacemaker => {
                base == "corosync" || base == "pacemakerd" || base.starts_with("pacemaker-")
            }
            Manager::Hapair => base == "hapair" && args.next() == Some("run"),
        }
    }

    /// Its name in the benchmark's table.
    pub fn name(self) -> &'static str {
        match self {
            Manager::Pacemaker => "Pacemaker + Corosync",
            Manager::Hapair => "hapair",
        }
    }
}

/// A manager's footprint on one node at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Its daemons and every process below them.
    pub processes: usize,
    /// Their summed RSS, KiB.
    pub rss_kb: u64,
    /// The daemons' ticks including their reaped children's, plus the
    /// ticks of the live processes below them.
    pub ticks: u64,
}

/// The footprint of `m` in a snapshot.
pub fn footprint(procs: &[Proc], m: Manager) -> Footprint {
    let mut member: Vec<u32> = procs
        .iter()
        .filter(|p| m.is_daemon(p))
        .map(|p| p.pid)
        .collect();
    // descendants: repeat until no new child (the tree is shallow)
    loop {
        let before = member.len();
        for p in procs {
            if member.contains(&p.ppid) && !member.contains(&p.pid) {
                member.push(p.pid);
            }
        }
        if member.len() == before {
            break;
        }
    }
    let mut f = Footprint::default();
    for p in procs.iter().filter(|p| member.contains(&p.pid)) {
        f.processes += 1;
        f.rss_kb += p.rss_kb;
        f.ticks += p.ticks + p.child_ticks;
    }
    f
}

/// CPU use between two footprints `secs` apart, in percent of one CPU
/// (`hz` ticks per second; 100 on Linux).
pub fn cpu_percent(before: &Footprint, after: &Footprint, secs: f64, hz: u64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let ticks = after.ticks.saturating_sub(before.ticks) as f64;
    #[allow(clippy::cast_precision_loss)]
    let hz = hz as f64;
    ticks / hz / secs * 100.0
}

/// A Pacemaker log line's time as Unix milliseconds: the line starts with
/// `Mon DD HH:MM:SS[.mmm]` (the guests log UTC); `year` is the year of the
/// run (the log has none).
pub fn pcmk_log_time_ms(line: &str, year: i32) -> Option<u64> {
    let mut it = line.split_whitespace();
    let mon = match it.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let day: u32 = it.next()?.parse().ok()?;
    let hms = it.next()?;
    let (hms, frac) = hms.split_once('.').unwrap_or((hms, "0"));
    let mut t = hms.split(':');
    let h: u64 = t.next()?.parse().ok()?;
    let m: u64 = t.next()?.parse().ok()?;
    let s: u64 = t.next()?.parse().ok()?;
    if t.next().is_some() || h > 23 || m > 59 || s > 60 || !(1..=31).contains(&day) {
        return None;
    }
    // milliseconds from the fraction's first three digits
    let digits: String = frac.chars().take(3).collect();
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let ms: u64 = format!("{digits:0<3}").parse().ok()?;
    let days = days_from_civil(year, mon, day)?;
    Some((days * 86_400 + h * 3600 + m * 60 + s) * 1000 + ms)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i32, m: u32, d: u32) -> Option<u64> {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    u64::try_from(era * 146_097 + doe - 719_468).ok()
}

/// The Pacemaker side of one failover, in milliseconds after the power
/// cut, from the survivor's `pacemaker.log` written since the cut.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PcmkTimeline {
    /// `Node V state is now lost`: the peer declared lost.
    pub lost_ms: Option<u64>,
    /// `Peer V was terminated (off) ... OK`: fencing confirmed.
    pub fenced_ms: Option<u64>,
    /// `Result of promote operation for drbd-r0 ...: ok`: promoted.
    pub promoted_ms: Option<u64>,
    /// The `Result of start operation` of each group member, in order.
    pub starts: Vec<(String, u64)>,
}

/// Reads a [`PcmkTimeline`] from log text written after the power cut at
/// `t0_ms` (Unix ms) of `victim`.
pub fn pcmk_timeline(log: &str, victim: &str, t0_ms: u64, year: i32) -> PcmkTimeline {
    let mut tl = PcmkTimeline::default();
    let lost = format!("Node {victim} state is now lost");
    let fenced = format!("Peer {victim} was terminated");
    for line in log.lines() {
        let Some(at) = pcmk_log_time_ms(line, year) else {
            continue;
        };
        // a line from before the cut (the caller's offset is a guess)
        let Some(rel) = at.checked_sub(t0_ms) else {
            continue;
        };
        if tl.lost_ms.is_none() && line.contains(&lost) {
            tl.lost_ms = Some(rel);
        } else if tl.fenced_ms.is_none() && line.contains(&fenced) && line.contains("OK") {
            tl.fenced_ms = Some(rel);
        } else if let Some(rest) = line.split("Result of ").nth(1) {
            // "Result of promote operation for drbd-r0 on nodeA: ok"
            let mut w = rest.split_whitespace();
            let (Some(op), Some("operation"), Some("for"), Some(rsc)) =
                (w.next(), w.next(), w.next(), w.next())
            else {
                continue;
            };
            // "...: ok | CIB update 36, graph action confirmed; ..."
            if !rest
                .split(" | ")
                .next()
                .unwrap_or("")
                .trim_end()
                .ends_with(": ok")
            {
                continue;
            }
            let rsc = rsc.to_owned();
            match op {
                "promote" if tl.promoted_ms.is_none() => tl.promoted_ms = Some(rel),
                "start" if !tl.starts.iter().any(|(r, _)| *r == rsc) => tl.starts.push((rsc, rel)),
                _ => {}
            }
        }
    }
    tl
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_lines() {
        let out = "P\t171520\t812 (corosync) S 1 812 812 0 -1 4194560 1 0 0 0 57 31 0 0 -2 0 9 0 1 2 3\t/usr/sbin/corosync\n\
                   P\t0\t2 (kthreadd) S 0 0 0 0 -1 1 0 0 0 0 0 0 0 0 20 0 1 0 1 0 0\t\n\
                   P\t9000\t900 (pacemaker-contr) S 850 900 900 0 -1 1 0 0 0 0 10 5 40 2 20 0 1 0 1 0 0\t/usr/lib/pacemaker/pacemaker-controld\n\
                   P\t4000\t850 (pacemakerd) S 1 850 850 0 -1 1 0 0 0 0 1 1 0 0 20 0 1 0 1 0 0\t/usr/sbin/pacemakerd\n\
                   P\t2000\t950 (Filesystem) S 920 950 950 0 -1 1 0 0 0 0 3 4 0 0 20 0 1 0 1 0 0\t/bin/sh /usr/lib/ocf/resource.d/heartbeat/Filesystem monitor\n\
                   P\t3000\t920 (pacemaker-exec) S 850 920 920 0 -1 1 0 0 0 0 2 2 100 50 20 0 1 0 1 0 0\t/usr/lib/pacemaker/pacemaker-execd\n\
                   P\t5000\t1000 (a (b) c) S 1 1 1 0 -1 1 0 0 0 0 1 1 0 0 20 0 1 0 1 0 0\t/mnt/x/hapair demo --record serve\n\
                   P\t6600\t1100 (hapair) S 1 1 1 0 -1 1 0 0 0 0 7 3 1 1 20 0 1 0 1 0 0\t/tmp/lab/bin/hapair run --config /tmp/lab/hapair.toml --node nodeA\n\
                   P\t1200\t1101 (drbdsetup) S 1100 1 1 0 -1 1 0 0 0 0 1 0 0 0 20 0 1 0 1 0 0\tdrbdsetup events2 --timestamps r0\n\
                   P\tgarbage\n\
                   half a line";
        let p = parse_snapshot(out);
        assert_eq!(p.len(), 9);
        assert_eq!(p[0].pid, 812);
        assert_eq!(p[0].ppid, 1);
        assert_eq!(p[0].comm, "corosync");
        assert_eq!(p[0].ticks, 88);
        assert_eq!(p[0].rss_kb, 171_520);
        assert_eq!(p[1].cmdline, "");
        assert_eq!(p[6].comm, "a (b) c");
        assert_eq!(p[6].ppid, 1);
        let pm = footprint(&p, Manager::Pacemaker);
        // corosync, pacemakerd, controld, execd, and execd's Filesystem child
        assert_eq!(pm.processes, 5);
        assert_eq!(pm.rss_kb, 171_520 + 9000 + 4000 + 2000 + 3000);
        assert_eq!(pm.ticks, 88 + (15 + 42) + 2 + 7 + (4 + 150));
        let h = footprint(&p, Manager::Hapair);
        // the daemon and its events2 child; not the record server
        assert_eq!(h.processes, 2);
        assert_eq!(h.rss_kb, 7800);
        assert_eq!(h.ticks, 12 + 1);
        let later = Footprint {
            ticks: h.ticks + 30,
            ..h
        };
        assert!((cpu_percent(&h, &later, 30.0, 100) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn log_times() {
        let l = "Nov 25 11:22:33.456 nodeA pacemaker-controld  [900] (peer_update_callback) info: Node nodeB state is now lost";
        // 2026-11-25 = day 20_782 since the epoch
        let want = (20_782 * 86_400 + 11 * 3600 + 22 * 60 + 33) * 1000 + 456;
        assert_eq!(pcmk_log_time_ms(l, 2026), Some(want));
        assert_eq!(
            pcmk_log_time_ms("Nov 25 11:22:33 x", 2026),
            Some(want - 456)
        );
        assert_eq!(
            pcmk_log_time_ms("Nov 25 11:22:33.4 x", 2026),
            Some(want - 56)
        );
        assert_eq!(pcmk_log_time_ms("Jan  1 00:00:00.000 x", 1970), Some(0));
        assert_eq!(
            pcmk_log_time_ms("Mar  1 00:00:00.000 x", 2024),
            Some(19_783 * 86_400_000)
        );
        for bad in [
            "",
            "Foo 25 11:22:33.4",
            "Nov 32 11:22:33",
            "Nov 25 25:00:00",
            "Nov 25 11:22",
            "Nov 25 11:22:33.x",
        ] {
            assert_eq!(pcmk_log_time_ms(bad, 2026), None, "{bad}");
        }
    }

    #[test]
    fn timeline() {
        let t0 = pcmk_log_time_ms("Nov 25 11:00:00.000", 2026).unwrap();
        let log = "Nov 25 10:59:59.000 nodeA pacemaker-controld  [9] (x) notice: Result of start operation for fs-r0 on nodeA: ok\n\
                   Nov 25 11:00:02.060 nodeA pacemaker-controld  [9] (peer_update_callback) info: Node nodeB state is now lost\n\
                   Nov 25 11:00:02.420 nodeA pacemaker-controld  [9] (te_fence_node) notice: Requesting fencing (off) of node nodeB\n\
                   Nov 25 11:00:03.090 nodeA pacemaker-controld  [9] (tengine_stonith_callback) notice: Peer nodeB was terminated (off) by nodeA on behalf of pacemaker-controld.9: OK\n\
                   Nov 25 11:00:09.430 nodeA pacemaker-controld  [9] (log_executor_event) \tnotice: Result of promote operation for drbd-r0 on nodeA: ok | CIB update 52, graph action confirmed; call=41 key=drbd-r0_promote_0 rc=0\n\
                   Nov 25 11:00:16.400 nodeA pacemaker-controld  [9] (log_executor_event) notice: Result of start operation for fs-r0 on nodeA: ok\n\
                   Nov 25 11:00:18.000 nodeA pacemaker-controld  [9] (log_executor_event) notice: Result of start operation for ip-svc on nodeA: error | CIB update 60 rc=1\n\
                   Nov 25 11:00:18.500 nodeA pacemaker-controld  [9] (log_executor_event) notice: Result of probe operation for records on nodeA: not running | rc=7\n\
                   Nov 25 11:00:20.820 nodeA pacemaker-controld  [9] (log_executor_event) notice: Result of start operation for ip-svc on nodeA: ok\n\
                   Nov 25 11:00:27.190 nodeA pacemaker-controld  [9] (log_executor_event) notice: Result of start operation for records on nodeA: ok\n";
        let tl = pcmk_timeline(log, "nodeB", t0, 2026);
        assert_eq!(tl.lost_ms, Some(2060));
        assert_eq!(tl.fenced_ms, Some(3090));
        assert_eq!(tl.promoted_ms, Some(9430));
        // the start before the cut is not part of it
        assert_eq!(
            tl.starts,
            vec![
                ("fs-r0".to_owned(), 16_400),
                ("ip-svc".to_owned(), 20_820),
                ("records".to_owned(), 27_190)
            ]
        );
        assert_eq!(pcmk_timeline(log, "nodeC", t0, 2026).lost_ms, None);
    }

    #[test]
    fn stack_is_well_formed() {
        let x = pacemaker_stack("/tmp/l/bin/hapair demo --record \"q\"");
        assert!(x.contains(r#"value="/tmp/l/bin/hapair demo --record &quot;q&quot;""#));
        assert!(x.contains(&format!(r#"value="{VIP}:{PORT}""#)));
        assert_eq!(x.matches("<primitive ").count(), 5);
        assert_eq!(x.matches("</primitive>").count(), 5);
    }
}
