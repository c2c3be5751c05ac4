//! The events2 monitor against fake `drbdsetup` scripts replaying the real
//! lines of drbd-events-captured.txt, plus its pure parts (backoff, line
//! splitting).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use drbd::events::Role;
use drbd::model::Transition;
use drbd::monitor::{
    Backoff, BadLine, LineSplitter, Monitor, MonitorConfig, MonitorEvent, Stale, StateView,
    events2_args,
};
use drbd::{Cluster, parse_line};
use tokio::sync::mpsc;

const CAPTURE: &str = include_str!("fixtures/drbd-events-captured.txt");

/// The capture's stream lines (no annotations, no blanks).
fn stream() -> Vec<&'static str> {
    CAPTURE
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect()
}

const MS: fn(u64) -> Duration = Duration::from_millis;

#[test]
fn backoff_doubles_caps_and_resets_after_health() {
    let mut b = Backoff::new(MS(100), Duration::from_secs(5), Duration::from_secs(60));
    let got: Vec<u64> = (0..9)
        .map(|_| u64::try_from(b.after_exit(Duration::ZERO).as_millis()).unwrap())
        .collect();
    assert_eq!(got, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
    // Healthy for less than a minute: no reset.
    assert_eq!(
        b.after_exit(Duration::from_secs(59)),
        Duration::from_secs(5)
    );
    // A minute of health: back to the start.
    assert_eq!(b.after_exit(Duration::from_secs(60)), MS(100));
    assert_eq!(b.after_exit(Duration::ZERO), MS(200));
}

#[test]
fn events2_command_lines() {
    assert_eq!(
        events2_args(false),
        ["events2", "--timestamps", "--statistics", "all"]
    );
    assert_eq!(
        events2_args(true),
        ["events2", "--timestamps", "--statistics", "--full", "all"]
    );
    let c = MonitorConfig::default();
    assert_eq!(c.program, PathBuf::from("/usr/sbin/drbdsetup"));
    assert_eq!(c.args, events2_args(false));
    assert_eq!(
        (c.backoff_initial, c.backoff_max, c.healthy_after),
        (MS(100), Duration::from_secs(5), Duration::from_secs(60))
    );
}

#[test]
fn line_splitter_bounds_lines() {
    let mut s = LineSplitter::new(10);
    assert_eq!(s.push(b"exists -\nab"), [Ok("exists -".to_owned())]);
    assert_eq!(s.pending(), 2);
    assert_eq!(s.push(b"c\r\n"), [Ok("abc".to_owned())]);
    // 11 bytes split over two pushes: refused once, rest skipped to newline.
    assert_eq!(s.push(b"0123456"), []);
    assert_eq!(s.push(b"7890"), [Err(BadLine::TooLong(10))]);
    assert_eq!(s.push(b"more junk"), []);
    assert_eq!(s.push(b"tail\nok\n"), [Ok("ok".to_owned())]);
    // Too long within one push.
    assert_eq!(
        s.push(b"0123456789X\nx\n"),
        [Err(BadLine::TooLong(10)), Ok("x".to_owned())]
    );
    assert_eq!(s.push(b"\xff\xfe\n"), [Err(BadLine::NotUtf8)]);
    assert_eq!(s.pending(), 0);
}

// ---- fake drbdsetup ----

fn write_script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn write_lines(path: &Path, lines: &[&str]) {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(path, text).unwrap();
}

/// A fake drbdsetup whose n-th invocation runs `gen<n>` (a shell snippet),
/// after recording its arguments, PID and start time.
fn fake(dir: &Path, gens: &[&str]) -> PathBuf {
    let d = dir.display();
    let mut cases = String::new();
    for (i, g) in gens.iter().enumerate() {
        cases.push_str(&format!("{}) {g} ;;\n", i + 1));
    }
    let body = format!(
        r#"d={d}
n=$(cat $d/count 2>/dev/null || echo 0); n=$((n+1)); echo $n > $d/count
echo "$*" > $d/args.$n
date +%s%N > $d/start.$n
echo $$ > $d/pid.$n
case $n in
{cases}*) exit 1 ;;
esac
"#
    );
    let p = dir.join("drbdsetup");
    write_script(&p, &body);
    p
}

fn cfg(program: PathBuf, initial: Duration, max: Duration, healthy: Duration) -> MonitorConfig {
    MonitorConfig {
        program,
        args: events2_args(false),
        backoff_initial: initial,
        backoff_max: max,
        healthy_after: healthy,
        max_line: 64 << 10,
        event_capacity: 4096,
    }
}

async fn next(rx: &mut mpsc::Receiver<MonitorEvent>) -> MonitorEvent {
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("no monitor event within 20 s")
        .expect("event channel closed")
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(MS(5)).await;
    }
}

fn read_u32(path: &Path) -> u32 {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .parse()
        .unwrap()
}

/// Applies lines to a fresh model; returns it and the transitions after
/// (and including) Ready, as the monitor must send them.
fn replay(lines: &[&str], generation: u64) -> (Cluster, Vec<MonitorEvent>) {
    let mut c = Cluster::new();
    let mut out = Vec::new();
    for l in lines {
        let ev = parse_line(l).unwrap();
        let was = c.ready();
        for t in c.apply(&ev).unwrap() {
            if was || t == Transition::Ready {
                out.push(MonitorEvent::Transition {
                    generation,
                    timestamp: ev.timestamp.clone(),
                    transition: t,
                });
            }
        }
    }
    (c, out)
}

fn group_alive(pid: u32) -> bool {
    ra::process_group_alive(pid)
}

#[tokio::test]
async fn views_are_unknown_until_exists_dash_and_after_the_child_dies() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lines = stream();
    let dump_end = lines.iter().position(|l| l.ends_with(" exists -")).unwrap();
    assert_eq!(dump_end, 4);
    // First capture up to the end of the resync, before the demote: this
    // node is Primary there, unlike in the dump.
    let first_end = lines
        .iter()
        .position(|l| l.ends_with("change resource name:r0 role:Secondary"))
        .unwrap()
        - 1;
    write_lines(&d.join("dump-head"), &lines[..dump_end]);
    write_lines(&d.join("rest1"), &lines[dump_end..=first_end]);
    write_lines(&d.join("dump"), &lines[..=dump_end]);
    let prog = fake(
        d,
        &[
            // gen 1: dump without its end, a bad line, wait; then the end
            // and the first capture; wait; die with a message.
            &format!(
                "cat {p}/dump-head; echo 'garbage here'; \
                 while [ ! -e {p}/go ]; do sleep 0.01; done; cat {p}/rest1; \
                 while [ ! -e {p}/go2 ]; do sleep 0.01; done; \
                 echo 'events2: netlink went away' >&2; exit 3",
                p = d.display()
            ),
            // gen 2: the whole dump, then hang with a child in the group.
            &format!(
                "cat {p}/dump; sleep 1000 & echo $! > {p}/bg.2; wait",
                p = d.display()
            ),
        ],
    );
    let (mon, mut rx) = Monitor::spawn(cfg(prog, MS(300), MS(300), Duration::from_secs(60)));
    let view = mon.subscribe();

    // gen 1 starts: Unknown/Loading, even after the dump's lines were read.
    let pid1 = match next(&mut rx).await {
        MonitorEvent::Started {
            generation: 1,
            delay: Duration::ZERO,
            pid: Some(p),
        } => p,
        other => panic!("{other:?}"),
    };
    wait_for("the garbage line", || mon.stats().bad_lines == 1).await;
    assert_eq!(
        mon.current(),
        StateView::Unknown {
            generation: 1,
            reason: Stale::Loading
        }
    );
    assert_eq!(read_u32(&d.join("pid.1")), pid1);
    assert_eq!(
        std::fs::read_to_string(d.join("args.1")).unwrap(),
        "events2 --timestamps --statistics all\n"
    );

    // `exists -` and the first capture: exact transitions, exact view.
    std::fs::write(d.join("go"), "").unwrap();
    let (model1, expected) = replay(&lines[..=first_end], 1);
    assert!(expected.len() > 10);
    for want in &expected {
        assert_eq!(&next(&mut rx).await, want);
    }
    assert_eq!(
        mon.current(),
        StateView::Ready {
            generation: 1,
            cluster: Arc::new(model1.clone())
        }
    );
    let r0 = model1.resource("r0").unwrap();
    assert_eq!(r0.role, Some(Role::Primary));
    assert_eq!(r0.connections[&0].peer_role, Some(Role::Secondary));

    // The child dies: Unknown at once, with its exit status and last words.
    std::fs::write(d.join("go2"), "").unwrap();
    let reason = Stale::Exited("exit status: 3: events2: netlink went away".into());
    assert_eq!(
        next(&mut rx).await,
        MonitorEvent::Stale {
            generation: 1,
            reason: reason.clone()
        }
    );
    let v = mon.current();
    assert!(
        v == StateView::Unknown {
            generation: 1,
            reason
        } || v
            == StateView::Unknown {
                generation: 2,
                reason: Stale::Loading
            },
        "{v:?}"
    );
    assert!(v.cluster().is_none());
    assert!(!v.promote_view("r0", true, false).ready);
    assert!(!group_alive(pid1));

    // gen 2 after the backoff; its own dump, from scratch.
    let pid2 = match next(&mut rx).await {
        MonitorEvent::Started {
            generation: 2,
            delay,
            pid: Some(p),
        } => {
            assert_eq!(delay, MS(300));
            p
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(
        next(&mut rx).await,
        MonitorEvent::Transition {
            generation: 2,
            timestamp: Some("2026-11-24T21:31:45.354151+00:00".into()),
            transition: Transition::Ready
        }
    );
    let (model2, _) = replay(&lines[..=dump_end], 2);
    assert_eq!(
        mon.current(),
        StateView::Ready {
            generation: 2,
            cluster: Arc::new(model2.clone())
        }
    );
    // The dump's role (Secondary), not gen 1's last state (Primary).
    assert_ne!(model1, model2);
    let pv = mon.current().promote_view("r0", true, false);
    assert!(pv.ready);
    assert_eq!(pv.local_role, Some(Role::Secondary));

    let s1 = read_u64(&d.join("start.1"));
    let s2 = read_u64(&d.join("start.2"));
    assert!(s2 - s1 >= 300_000_000, "restart after {} ns", s2 - s1);
    let st = mon.stats();
    assert_eq!(
        (st.generation, st.restarts, st.bad_lines, st.dropped_events),
        (2, 1, 1, 0)
    );

    // Shutdown kills gen 2's group (the shell and its sleep).
    wait_for("bg.2", || d.join("bg.2").exists()).await;
    let bg = read_u32(&d.join("bg.2"));
    assert!(group_alive(pid2));
    mon.shutdown().await;
    assert_eq!(
        *view.borrow(),
        StateView::Unknown {
            generation: 2,
            reason: Stale::ShutDown
        }
    );
    wait_for("gen 2's group to die", || !group_alive(pid2)).await;
    let bg_state = std::fs::read_to_string(format!("/proc/{bg}/stat")).unwrap_or_default();
    assert!(
        bg_state.is_empty()
            || bg_state
                .rsplit(')')
                .next()
                .unwrap()
                .trim_start()
                .starts_with('Z'),
        "sleep {bg} survived: {bg_state}"
    );
    // The channel ends with the task.
    assert!(rx.recv().await.is_none());
}

fn read_u64(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn restarts_back_off_and_reset_after_health() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_lines(&d.join("end"), &["exists -"]);
    let die = "exit 1";
    let healthy = format!("cat {}/end; sleep 0.4; exit 0", d.display());
    // gens 1-4 die at once, gen 5 is ready for 0.4 s (healthy_after 0.25 s),
    // gens 6-8 die at once.
    let prog = fake(d, &[die, die, die, die, &healthy, die, die, die]);
    let (mon, mut rx) = Monitor::spawn(cfg(prog, MS(20), MS(80), MS(250)));
    let mut delays = Vec::new();
    let mut stale8 = false;
    while !stale8 {
        match next(&mut rx).await {
            MonitorEvent::Started {
                generation, delay, ..
            } => {
                assert_eq!(generation, delays.len() as u64 + 1);
                delays.push(u64::try_from(delay.as_millis()).unwrap());
            }
            MonitorEvent::Stale { generation, reason } => {
                // Gen 8 has exited: all its files are written.
                stale8 = generation == 8;
                let want = if generation == 5 {
                    "exit status: 0"
                } else {
                    "exit status: 1"
                };
                assert_eq!(reason, Stale::Exited(want.into()), "gen {generation}");
            }
            MonitorEvent::Transition {
                generation,
                transition,
                ..
            } => {
                assert_eq!((generation, transition), (5, Transition::Ready));
            }
        }
    }
    assert_eq!(delays, [0, 20, 40, 80, 80, 20, 40, 80]);
    // The real starts are at least the delays apart, in order.
    for g in 2..=8usize {
        let a = read_u64(&d.join(format!("start.{}", g - 1)));
        let b = read_u64(&d.join(format!("start.{g}")));
        assert!(
            b >= a + delays[g - 1] * 1_000_000,
            "gen {g} started {} ms after gen {}",
            (b - a) / 1_000_000,
            g - 1
        );
    }
    assert_eq!(mon.stats().restarts, mon.stats().generation - 1);
    assert!(mon.stats().restarts >= 7);
    mon.shutdown().await;
}

#[tokio::test]
async fn dropping_the_monitor_kills_the_child_group() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_lines(&d.join("dump"), &stream()[..5]);
    let prog = fake(
        d,
        &[&format!(
            "cat {p}/dump; sleep 1000 & echo $! > {p}/bg.1; wait",
            p = d.display()
        )],
    );
    let (mon, mut rx) = Monitor::spawn(cfg(prog, MS(100), MS(100), Duration::from_secs(60)));
    let pid = match next(&mut rx).await {
        MonitorEvent::Started { pid: Some(p), .. } => p,
        other => panic!("{other:?}"),
    };
    assert!(matches!(
        next(&mut rx).await,
        MonitorEvent::Transition {
            transition: Transition::Ready,
            ..
        }
    ));
    wait_for("bg.1", || d.join("bg.1").exists()).await;
    assert!(group_alive(pid));
    drop(mon);
    wait_for("the group to die", || !group_alive(pid)).await;
    // No restart after a drop.
    tokio::time::sleep(MS(300)).await;
    assert_eq!(read_u32(&d.join("count")), 1);
}

#[tokio::test]
async fn skipped_marker_restarts_and_missing_binary_retries() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_lines(&d.join("dump"), &stream()[..5]);
    let prog = fake(
        d,
        &[
            &format!("cat {}/dump; echo '- skipped 3'; sleep 1000", d.display()),
            &format!("cat {}/dump; sleep 1000", d.display()),
        ],
    );
    let (mon, mut rx) = Monitor::spawn(cfg(prog, MS(10), MS(10), Duration::from_secs(60)));
    let mut seen = Vec::new();
    loop {
        let ev = next(&mut rx).await;
        let done = matches!(
            ev,
            MonitorEvent::Transition {
                generation: 2,
                transition: Transition::Ready,
                ..
            }
        );
        seen.push(ev);
        if done {
            break;
        }
    }
    assert!(matches!(
        seen[0],
        MonitorEvent::Started { generation: 1, .. }
    ));
    assert!(matches!(
        seen[1],
        MonitorEvent::Transition {
            generation: 1,
            transition: Transition::Ready,
            ..
        }
    ));
    assert_eq!(
        seen[2],
        MonitorEvent::Stale {
            generation: 1,
            reason: Stale::Skipped(3)
        }
    );
    assert!(matches!(
        seen[3],
        MonitorEvent::Started {
            generation: 2,
            delay,
            ..
        } if delay == MS(10)
    ));
    assert_eq!(seen.len(), 5);
    mon.shutdown().await;

    // A drbdsetup that is not there: Unknown, retried with backoff.
    let (mon, mut rx) = Monitor::spawn(cfg(
        d.join("no-such-drbdsetup"),
        MS(10),
        MS(20),
        Duration::from_secs(60),
    ));
    for (g, delay) in [(1, 0), (2, 10), (3, 20)] {
        assert_eq!(
            next(&mut rx).await,
            MonitorEvent::Started {
                generation: g,
                delay: MS(delay),
                pid: None
            }
        );
        match next(&mut rx).await {
            MonitorEvent::Stale {
                generation,
                reason: Stale::SpawnFailed(why),
            } => {
                assert_eq!(generation, g);
                assert!(why.contains("no-such-drbdsetup"), "{why}");
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(mon.current().cluster().is_none());
    mon.shutdown().await;
}

#[test]
fn split_brain_kernel_lines() {
    use drbd::monitor::{SplitBrain, SyncFrom, split_brain_from_kernel_line as sb};
    let l =
        sb("[ 1234.567890] block drbd0: Split-Brain detected but unresolved, dropping connection!")
            .unwrap();
    assert_eq!(l.object, "block drbd0");
    assert_eq!(l.split_brain, SplitBrain::Unresolved);
    let l = sb("drbd r0/0 drbd0 bravo: Split-Brain detected, 1 primaries, automatically solved. Sync from peer node")
        .unwrap();
    assert_eq!(l.object, "drbd r0/0 drbd0 bravo");
    assert_eq!(
        l.split_brain,
        SplitBrain::AutoSolved {
            primaries: 1,
            sync_from: SyncFrom::Peer
        }
    );
    let l = sb("Nov 24 21:36:17 nodeB kernel: block drbd0: Split-Brain detected, 0 primaries, automatically solved. Sync from this node").unwrap();
    assert_eq!(l.object, "Nov 24 21:36:17 nodeB kernel: block drbd0");
    assert_eq!(
        l.split_brain,
        SplitBrain::AutoSolved {
            primaries: 0,
            sync_from: SyncFrom::This
        }
    );
    let l = sb("drbd r0/0 drbd0 alpha: Split-Brain detected, manually solved. Sync from this node")
        .unwrap();
    assert_eq!(
        l.split_brain,
        SplitBrain::ManuallySolved {
            sync_from: SyncFrom::This
        }
    );
    for other in [
        "block drbd0: Unrelated data, aborting!",
        "drbd r0: helper command: /sbin/drbdadm split-brain",
        "Split-Brain detected, lots primaries, automatically solved. Sync from peer node",
        "Split-Brain detected, 1 primaries, automatically solved. Sync from nowhere",
        "",
    ] {
        assert_eq!(sb(other), None, "{other:?}");
    }
}

#[test]
fn the_last_split_brain_of_a_resource_in_a_kernel_log() {
    use drbd::monitor::{SplitBrain, SyncFrom, kmsg_message, last_split_brain, object_is};
    assert_eq!(
        kmsg_message("2,1234,5678901,-;block drbd0: Split-Brain detected\n SUBSYSTEM=block"),
        "block drbd0: Split-Brain detected"
    );
    assert_eq!(kmsg_message("6,7,8,-,caller=T1;hello"), "hello");
    assert_eq!(kmsg_message("[ 1.0] a;b"), "[ 1.0] a;b");
    assert!(object_is("block drbd0", "r0", Some(0)));
    assert!(!object_is("block drbd1", "r0", Some(0)));
    assert!(object_is("drbd r0/0 drbd0 bravo", "r0", None));
    assert!(object_is("drbd r0 bravo", "r0", None));
    assert!(!object_is("drbd r01/0 drbd5 bravo", "r0", Some(0)));
    let log = [
        "6,1,10,-;drbd r0: conn( Unconnected -> Connecting )",
        "2,2,20,-;block drbd0: Split-Brain detected but unresolved, dropping connection!",
        "2,3,30,-;block drbd1: Split-Brain detected but unresolved, dropping connection!",
    ];
    assert_eq!(
        last_split_brain(log, "r0", Some(0)).map(|l| l.split_brain),
        Some(SplitBrain::Unresolved)
    );
    assert_eq!(last_split_brain(log, "r7", Some(7)), None);
    // solved by hand later: the last line wins
    let mut solved = log.to_vec();
    solved.push("4,4,40,-;block drbd0: Split-Brain detected, manually solved. Sync from peer node");
    assert_eq!(
        last_split_brain(solved, "r0", Some(0)).map(|l| l.split_brain),
        Some(SplitBrain::ManuallySolved {
            sync_from: SyncFrom::Peer
        })
    );
}
