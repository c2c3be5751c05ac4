//! More end-to-end scenarios of the lab pair (issue 8), next to
//! `pair_failover.rs`: the lease device failing on the primary only, stops
//! that fail or hang, operator standby/online and a move with its expiry,
//! monitor failures up to the migration threshold and `cleanup`, both
//! daemons starting at the same instant, and the power-cut primary
//! rejoining; and issue 5's scenario 7 second half on DRBD (a Primary
//! whose lease fails and whose stop hangs self-fences). After every step:
//! never two lease holders / rw mounts ([`Pair::check_safety`]; two DRBD
//! Primaries too on DRBD), and no acknowledged record lost.
//!
//! What is asserted besides safety is the engine's documented behaviour
//! (`src/engine/mod.rs`, README "The pair engine"): a stop that fails or
//! times out self-fences at once; the peer fences a node that vanished with
//! the lease and takes over; no automatic failback (an idle node never
//! takes the stack from a live peer that runs it, preferred or not); a move
//! is a preference that ends at its expiry without moving anything back;
//! monitor failures restart locally until `migration_threshold` (3 here).
//!
//! Needs the binaries built first (root, the lab):
//! `cargo build -p hapair -p sfex -p hwtest --bins && cargo test -p hwtest --test pair_scenarios -- --test-threads=1`

use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use hwtest::Node;
use hwtest::pair::{Pair, PairOptions, StopFault, fail_counts, node_field, other};

fn options() -> PairOptions {
    PairOptions::for_tests(PathBuf::from(env!("CARGO_BIN_EXE_hapair-recordd")))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A pair with both daemons started (one after the other).
fn pair() -> Pair {
    let p = Pair::up(options()).unwrap_or_else(|e| panic!("{e}"));
    p.start_daemons().unwrap();
    p
}

const START: Duration = Duration::from_secs(60);
const FAILOVER: Duration = Duration::from_secs(30);

fn no_loss(p: &Pair, client: &Path, primary: Node) -> usize {
    let (acked, lost) = p.verify_records(client, primary).unwrap();
    assert!(acked > 0, "no record acknowledged");
    assert!(
        lost.is_empty(),
        "{} acknowledged records lost: {lost:?}",
        lost.len()
    );
    acked
}

/// Waits for the primary, starts the client on nodeC and waits for 20
/// acknowledged records, then checks safety: (primary, the other node, the
/// client's record file).
fn serving(p: &Pair) -> (Node, Node, PathBuf) {
    let pri = p.wait_primary(START).unwrap();
    let client = p.start_client().unwrap();
    p.wait_acks(&client, 20, Duration::from_secs(20)).unwrap();
    p.check_safety().unwrap();
    (pri, other(pri), client)
}

/// Both logs, for failure messages.
fn logs(p: &Pair) -> String {
    format!(
        "--- nodeA log\n{}\n--- nodeB log\n{}\n--- power log\n{}",
        hwtest::pair::tail(&p.log(Node::A), 60),
        hwtest::pair::tail(&p.log(Node::B), 60),
        p.lab.power_log()
    )
}

/// Waits until `node` alone has the data mounted read-write and serves the
/// client, checking safety at every look.
fn wait_stack_on(p: &Pair, node: Node, timeout: Duration) {
    let start = Instant::now();
    loop {
        let s = p
            .check_safety()
            .unwrap_or_else(|e| panic!("{e}\n{}", logs(p)));
        if s.rw_mounts == vec![node] {
            break;
        }
        assert!(
            start.elapsed() < timeout,
            "the stack did not reach {node} in {timeout:?}: {s:?}\n{}",
            logs(p)
        );
        sleep(Duration::from_millis(100));
    }
    let got = p
        .wait_primary(timeout.saturating_sub(start.elapsed()).max(FAILOVER))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got, node, "{}", logs(p));
}

/// For `dur`: the stack stays on `node` (safety checked every look), and
/// `node`'s log gets no "stack stopped here".
fn stays_on(p: &Pair, node: Node, dur: Duration) {
    let from = p.log(node).len();
    let start = Instant::now();
    while start.elapsed() < dur {
        let s = p
            .check_safety()
            .unwrap_or_else(|e| panic!("{e}\n{}", logs(p)));
        assert_eq!(s.rw_mounts, vec![node], "{}", logs(p));
        assert_eq!(s.holder.as_deref(), Some(node.name()), "{}", logs(p));
        sleep(Duration::from_millis(400));
    }
    let since = p.log_since(node, from);
    assert!(
        !since.contains("stack stopped here"),
        "{node} stopped its stack:\n{since}"
    );
}

/// The Unix time (ms) of the first log line containing `what`.
fn line_time(log: &str, what: &str) -> Option<u64> {
    log.lines()
        .find(|l| l.contains(what))
        .and_then(hwtest::pair::log_time_ms)
}

fn power_offs(p: &Pair) -> usize {
    p.lab.power_log().matches(" off ").count()
}

/// `survivor` fenced `victim` (a power-off since `offs` were counted, and
/// the "fenced" line in `survivor_log`) before it took the lease.
fn fenced_before_lease(p: &Pair, survivor_log: &str, victim: Node, offs: usize) {
    let fenced = line_time(survivor_log, &format!("{victim} fenced"));
    let taken = line_time(survivor_log, "lease acquired");
    assert!(
        power_offs(p) > offs && fenced.is_some() && taken.is_some() && fenced <= taken,
        "fenced {victim} at {fenced:?}, lease acquired at {taken:?}\n{}",
        logs(p)
    );
}

/// The lease device fails on `victim`, which runs the stack and whose
/// record stop hangs: it cannot give the stack up before its lease
/// deadline, so it must emergency-stop and self-fence, and `survivor` must
/// fence it before taking the lease and starting the stack (within
/// `timeout`, safety checked throughout). Returns the survivor's log since
/// the break.
fn hung_stop_on_lease_failure(p: &Pair, victim: Node, survivor: Node, timeout: Duration) -> String {
    let victim_from = p.log(victim).len();
    let survivor_from = p.log(survivor).len();
    let offs = power_offs(p);
    p.set_stop_fault(victim, Some(StopFault::Hang)).unwrap();
    p.break_lease(victim).unwrap();
    wait_stack_on(p, survivor, timeout);
    let vlog = p.log_since(victim, victim_from);
    assert!(
        vlog.contains("lease deadline near: emergency stop") && vlog.contains("SELF-FENCE"),
        "{victim} did not self-fence after an emergency stop:\n{}",
        logs(p)
    );
    let slog = p.log_since(survivor, survivor_from);
    fenced_before_lease(p, &slog, victim, offs);
    slog
}

/// Waits until `node`'s daemon calls itself `role`.
fn wait_role(p: &Pair, node: Node, role: &str, timeout: Duration) {
    let start = Instant::now();
    loop {
        p.check_safety()
            .unwrap_or_else(|e| panic!("{e}\n{}", logs(p)));
        let r = p.role(node).unwrap_or_default();
        if r == role {
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "{node} is {r:?}, not {role:?}, after {timeout:?}\n{}",
            logs(p)
        );
        sleep(Duration::from_millis(300));
    }
}

/// Scenario: the lease device fails on the primary only (dm `error` table
/// there; the other node still reads it). The primary cannot renew, so it
/// stops its stack `stop_budget` before its lease deadline (or self-fences
/// if that does not finish in time); the peer takes the lease once the
/// counter stood still for `lock_timeout` and starts the stack. Then the
/// same on the new primary with its record stop hanging: it self-fences
/// (reboot in the guest, softdog armed behind it), the peer fences it and
/// takes over. Never two rw mounts or holders on the way; nothing
/// acknowledged lost.
#[test]
fn lease_device_fails_on_the_primary_only() {
    let t0 = Instant::now();
    let p = Pair::up_dm_lease(options()).unwrap_or_else(|e| panic!("{e}"));
    p.start_daemons().unwrap();
    let (pri, sec, client) = serving(&p);
    let from = p.log(pri).len();
    let sec_from = p.log(sec).len();

    let cut = Instant::now();
    p.break_lease(pri).unwrap();
    // lock_timeout 20 s: the peer waits for the counter to stand still
    wait_stack_on(&p, sec, Duration::from_secs(90));
    let took = cut.elapsed();
    let plog = p.log_since(pri, from);
    let self_fenced = plog.contains("SELF-FENCE");
    eprintln!(
        "lease broken on {pri} -> stack on {sec} after {took:.1?}; {pri} {}",
        if self_fenced {
            "self-fenced"
        } else {
            "stopped its stack"
        }
    );
    assert!(
        self_fenced || plog.contains("stack stopped here"),
        "{pri} neither stopped its stack nor self-fenced:\n{}",
        logs(&p)
    );
    if self_fenced {
        // its stop did not finish before the lease deadline, so it reset
        // itself; the peer, hearing it no more, fenced it before taking
        // the lease. It comes back (a fresh boot) as the secondary.
        eprintln!(
            "{pri} self-fenced; its log since the break:\n{}",
            hwtest::pair::tail(&plog, 40)
        );
        fenced_before_lease(&p, &p.log_since(sec, sec_from), pri, 0);
        p.power_on_and_rejoin(pri).unwrap();
        wait_role(&p, pri, "secondary", Duration::from_secs(40));
    } else {
        // it gave up in good order, before the peer took the lease: nobody
        // needed to shoot it
        assert_eq!(power_offs(&p), 0, "{}", logs(&p));
        assert!(p.lab.is_up(pri));
        assert!(
            plog.contains("lease deadline near: emergency stop"),
            "{plog}"
        );
        let stopped = line_time(&plog, "stack stopped here");
        let taken = line_time(&p.log_since(sec, sec_from), "lease acquired");
        assert!(
            stopped.is_some() && taken.is_some() && stopped < taken,
            "{pri} stopped at {stopped:?}, {sec} took the lease at {taken:?}\n{}",
            logs(&p)
        );
    }
    p.wait_acks(&client, 10, Duration::from_secs(20)).unwrap();
    stays_on(&p, sec, Duration::from_secs(3));
    no_loss(&p, &client, sec);

    // Second part: the first node's device works again (healed, or new
    // after the reboot); the lease device now fails on the new primary,
    // whose record service cannot be stopped (stop hangs past its
    // timeout). It cannot give the stack up in good order, so it
    // self-fences; the peer fences it and takes over.
    if !self_fenced {
        p.heal_lease(pri).unwrap();
    }
    let t = Instant::now();
    hung_stop_on_lease_failure(&p, sec, pri, Duration::from_secs(60));
    eprintln!(
        "lease broken and stop hung on {sec} -> self-fence, stack on {pri} after {:.1?}",
        t.elapsed()
    );
    p.wait_acks(&client, 10, Duration::from_secs(20)).unwrap();
    let n = no_loss(&p, &client, pri);
    eprintln!(
        "{n} records acknowledged, 0 lost; scenario time {:.1?}",
        t0.elapsed()
    );
    p.lab.down().unwrap();
}

/// Issue 5, scenario 7 (second part) on DRBD: the same pair with its data
/// on DRBD r0 (hapair's `drbd` resource first in the stack, DRBD fencing
/// through `hapair fence-peer`). The lease device fails on the Primary only
/// and its record stop hangs: it cannot give the stack up in good order
/// before its lease deadline, so it self-fences (reboot in the guest,
/// softdog armed behind it); the peer fences it, takes the lease, promotes
/// DRBD and serves. Never two Primaries, rw mounts or holders on the way
/// (`check_safety` reads both DRBD roles too); nothing acknowledged lost.
#[test]
fn drbd_primary_with_a_hung_stop_self_fences_when_its_lease_fails() {
    let t0 = Instant::now();
    let p = Pair::up_dm_lease(PairOptions {
        drbd: true,
        ..options()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    p.start_daemons().unwrap();
    let (pri, sec, client) = serving(&p);
    let cut = Instant::now();
    let slog = hung_stop_on_lease_failure(&p, pri, sec, Duration::from_secs(90));
    let took = cut.elapsed();
    assert!(
        slog.contains("op=promote"),
        "{sec} never promoted DRBD:\n{slog}"
    );
    eprintln!(
        "lease broken and stop hung on {pri} (DRBD Primary) -> self-fence, stack on {sec} after {took:.1?}"
    );
    p.wait_acks(&client, 10, Duration::from_secs(30)).unwrap();
    stays_on(&p, sec, Duration::from_secs(3));
    let n = no_loss(&p, &client, sec);
    eprintln!(
        "{n} records acknowledged, 0 lost; scenario time {:.1?}",
        t0.elapsed()
    );
    p.lab.down().unwrap();
}

/// Scenario: a stop that fails, then (same lab) a stop that hangs past
/// `stop_timeout` (2 s). Both are asked for with `hapair standby` of the
/// primary. The engine's rule: a failed or timed-out stop self-fences at
/// once (reboot(2) in the guest, the lease left to expire); the peer sees
/// the node vanish with the lease counter standing still, fences it
/// through `fence_lab` and takes over. Between the two, the first victim
/// is powered on again and rejoins as secondary.
#[test]
fn failed_and_hung_stops_escalate_to_fencing() {
    let t0 = Instant::now();
    let p = pair();
    let (first, second, client) = serving(&p);

    for (victim, fault) in [(first, StopFault::Fail), (second, StopFault::Hang)] {
        let t = Instant::now();
        let survivor = other(victim);
        let from = p.log(victim).len();
        let sfrom = p.log(survivor).len();
        let offs = power_offs(&p);
        p.set_stop_fault(victim, Some(fault)).unwrap();
        p.check_safety().unwrap();
        // the failing stop may self-fence the node before the command's
        // lab wrapper returns: the answer printed before is what counts
        let out =
            match p.ctl(victim, &format!("standby {}", victim.name())) {
                Ok(out) => out,
                Err(hwtest::pair::PairError::Lab(hwtest::LabError::NodeDown {
                    output, ..
                })) if output.contains("is in standby") => output,
                Err(e) => panic!("{e}"),
            };
        eprintln!("{victim}: standby: {}", out.trim());
        wait_stack_on(&p, survivor, FAILOVER);
        let vlog = p.log_since(victim, from);
        assert!(
            vlog.contains("records stop failed"),
            "{victim}: no failed stop of records ({fault:?}):\n{}",
            logs(&p)
        );
        assert!(
            vlog.contains("SELF-FENCE"),
            "{victim} did not self-fence after its stop failed ({fault:?}):\n{}",
            logs(&p)
        );
        // the survivor fenced the vanished holder through the power switch
        let plog = p.lab.power_log();
        assert!(
            power_offs(&p) > offs && plog.contains(&format!(" off {victim} rc=0")),
            "{survivor} did not fence {victim}:\n{}",
            logs(&p)
        );
        assert!(!p.lab.is_up(victim), "{victim} still runs");
        let slog = p.log_since(survivor, sfrom);
        let fenced = line_time(&slog, &format!("{victim} fenced"));
        let taken = line_time(&slog, "lease acquired");
        assert!(
            fenced.is_some() && taken.is_some() && fenced <= taken,
            "{survivor}: fenced {fenced:?}, lease acquired {taken:?}\n{}",
            logs(&p)
        );
        p.wait_acks(&client, 10, Duration::from_secs(20)).unwrap();
        no_loss(&p, &client, survivor);
        eprintln!(
            "{fault:?} stop on {victim}: stack on {survivor} after {:.1?}",
            t.elapsed()
        );
        // the victim comes back (fresh boot: flags and standby gone) as
        // the secondary
        p.power_on_and_rejoin(victim).unwrap();
        wait_role(&p, victim, "secondary", Duration::from_secs(30));
        stays_on(&p, survivor, Duration::from_secs(2));
    }
    p.wait_acks(&client, 10, Duration::from_secs(20)).unwrap();
    let n = no_loss(&p, &client, first);
    eprintln!(
        "{n} records acknowledged, 0 lost; scenario time {:.1?}",
        t0.elapsed()
    );
    p.lab.down().unwrap();
}

/// Scenarios: standby then online of the primary, then a timed move and
/// its expiry (one lab). Standby: the stack moves to the peer, nobody is
/// fenced; online: no failback, the stack stays where it runs. `move
/// <node> --for 20s` back to the first node: the stack moves there; the
/// move shows in both nodes' status; at expiry it disappears from both and
/// nothing moves back (a move is a preference, not a place to return
/// from). No fencing at any point.
#[test]
fn standby_online_then_move_and_its_expiry() {
    let t0 = Instant::now();
    let p = pair();
    let (a, b, client) = serving(&p);

    // standby of the primary
    let t = Instant::now();
    p.ctl(a, &format!("standby {}", a.name())).unwrap();
    wait_stack_on(&p, b, FAILOVER);
    eprintln!("standby {a}: stack on {b} after {:.1?}", t.elapsed());
    let st = p.status(b).unwrap();
    assert_eq!(
        node_field(&st, a, "state").as_deref(),
        Some("standby"),
        "{st}"
    );
    assert_eq!(p.role(b).unwrap(), "primary");
    p.wait_acks(&client, 10, Duration::from_secs(20)).unwrap();
    no_loss(&p, &client, b);

    // online again: no failback
    p.ctl(a, &format!("online {}", a.name())).unwrap();
    wait_role(&p, a, "secondary", Duration::from_secs(10));
    stays_on(&p, b, Duration::from_secs(8));
    assert_eq!(power_offs(&p), 0, "{}", logs(&p));

    // a timed move back to a, asked on b
    let t = Instant::now();
    let out = p.ctl(b, &format!("move {} --for 20s", a.name())).unwrap();
    eprintln!("move: {}", out.trim());
    wait_stack_on(&p, a, FAILOVER);
    let moved_in = t.elapsed();
    eprintln!("move to {a}: stack there after {moved_in:.1?}");
    for n in [a, b] {
        let st = p.status(n).unwrap();
        let moves = st["moves"].as_array().cloned().unwrap_or_default();
        assert_eq!(moves.len(), 1, "{n}: {st}");
        assert_eq!(moves[0]["to"], a.name(), "{n}: {st}");
    }
    // the issuer's status shows the time left
    let st = p.status(b).unwrap();
    let left = st["moves"][0]["remaining_ms"].as_u64();
    assert!(
        left.is_some_and(|l| l <= 20_000),
        "remaining_ms {left:?}: {st}"
    );
    p.wait_acks(&client, 10, Duration::from_secs(20)).unwrap();
    no_loss(&p, &client, a);
    // until the expiry: stays on a
    let expiry = Duration::from_secs(20);
    stays_on(&p, a, expiry.saturating_sub(t.elapsed()));
    // after it: the move is gone on both nodes, the stack stays on a
    let start = Instant::now();
    loop {
        let gone = [a, b].iter().all(|&n| {
            p.status(n)
                .map(|s| s["moves"].as_array().is_some_and(Vec::is_empty))
                .unwrap_or(false)
        });
        if gone {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the move did not expire on both nodes:\n{}\n{}",
            p.status(a).unwrap(),
            p.status(b).unwrap()
        );
        p.check_safety().unwrap();
        sleep(Duration::from_millis(200));
    }
    eprintln!("move expired {:.1?} after it was asked", t.elapsed());
    stays_on(&p, a, Duration::from_secs(8));
    assert_eq!(p.role(b).unwrap(), "secondary");
    assert_eq!(power_offs(&p), 0, "{}", logs(&p));
    p.wait_acks(&client, 10, Duration::from_secs(20)).unwrap();
    let n = no_loss(&p, &client, a);
    eprintln!(
        "{n} records acknowledged, 0 lost; scenario time {:.1?}",
        t0.elapsed()
    );
    p.lab.down().unwrap();
}

/// Scenario: the record server killed behind the agent's back. Each failed
/// monitor (every 5 s) counts one failure and restarts the service on the
/// same node (only `records`: the data mount stays); the third reaches
/// `migration_threshold` = 3 and the stack fails over to the peer. `hapair
/// cleanup` then clears the count on both nodes, and the stack stays on the
/// peer (no failback). Nobody is fenced.
#[test]
fn monitor_failures_restart_locally_then_fail_over_and_cleanup() {
    let t0 = Instant::now();
    let p = pair();
    let (pri, sec, client) = serving(&p);
    let mount_id = |n: Node| {
        p.lab
            .mountinfo(n)
            .unwrap()
            .lines()
            .find(|l| l.contains(" /mnt/data "))
            .and_then(|l| l.split_whitespace().next().map(str::to_owned))
    };
    let mnt = mount_id(pri);
    assert!(mnt.is_some());

    for i in 1..=3u64 {
        let t = Instant::now();
        let pid = p.kill_service(pri).unwrap();
        if i < 3 {
            // restarted in place: a new server on the same node
            let start = Instant::now();
            loop {
                let s = p.check_safety().unwrap();
                assert_eq!(s.rw_mounts, vec![pri], "{}", logs(&p));
                let st = p.status(pri).unwrap();
                let fc = fail_counts(&st, "records");
                let newpid = p
                    .lab
                    .run_ok(pri, "cat /run/recordd.pid 2>/dev/null; true")
                    .unwrap();
                if fc == vec![(pri.name().to_owned(), i)]
                    && newpid.trim().parse::<u32>().is_ok_and(|n| n != pid)
                    && p.role(pri).unwrap() == "primary"
                {
                    break;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(20),
                    "failure {i}: fail counts {fc:?}, pid {newpid:?}\n{}",
                    logs(&p)
                );
                sleep(Duration::from_millis(300));
            }
            assert_eq!(p.wait_primary(FAILOVER).unwrap(), pri);
            assert_eq!(mount_id(pri), mnt, "the data was remounted");
            p.wait_acks(&client, 10, Duration::from_secs(20)).unwrap();
            eprintln!("failure {i}: restarted on {pri} in {:.1?}", t.elapsed());
        } else {
            wait_stack_on(&p, sec, FAILOVER);
            eprintln!("failure {i}: failed over to {sec} in {:.1?}", t.elapsed());
        }
    }
    let st = p.status(pri).unwrap();
    assert_eq!(
        fail_counts(&st, "records"),
        vec![(pri.name().to_owned(), 3)],
        "{st}"
    );
    assert!(fail_counts(&p.status(sec).unwrap(), "records").is_empty());
    let plog = p.log(pri);
    assert_eq!(
        plog.matches("records monitor failed").count(),
        3,
        "{}",
        logs(&p)
    );
    p.wait_acks(&client, 10, Duration::from_secs(20)).unwrap();
    no_loss(&p, &client, sec);

    // cleanup (asked on the new primary) clears both nodes' counts
    let out = p.ctl(sec, "cleanup").unwrap();
    eprintln!("cleanup: {}", out.trim());
    let start = Instant::now();
    while !fail_counts(&p.status(pri).unwrap(), "records").is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "cleanup did not reach {pri}"
        );
        sleep(Duration::from_millis(200));
    }
    wait_role(&p, pri, "secondary", Duration::from_secs(10));
    stays_on(&p, sec, Duration::from_secs(6));
    assert_eq!(power_offs(&p), 0, "{}", logs(&p));
    p.wait_acks(&client, 10, Duration::from_secs(20)).unwrap();
    let n = no_loss(&p, &client, sec);
    eprintln!(
        "{n} records acknowledged, 0 lost; scenario time {:.1?}",
        t0.elapsed()
    );
    p.lab.down().unwrap();
}

/// Scenarios: both daemons started at the same instant on a fresh lease:
/// exactly one primary, the preferred nodeA (the non-preferred node gives
/// it `start_delay` when it boots without hearing it), nobody fenced. Then
/// the primary is power-cut, the peer fences it and takes over; the old
/// primary is powered on, boots, starts its daemon and rejoins as
/// secondary: the stack stays on the survivor (no failback, even to the
/// preferred node) and nobody is fenced again.
#[test]
fn both_boot_at_once_then_power_cut_primary_rejoins() {
    let t0 = Instant::now();
    let p = Pair::up(options()).unwrap_or_else(|e| panic!("{e}"));
    p.start_daemons_together().unwrap();
    let pri = p.wait_primary(START).unwrap();
    eprintln!("both started at once: {pri} runs the stack");
    stays_on(&p, pri, Duration::from_secs(3));
    assert_eq!(power_offs(&p), 0, "{}", logs(&p));
    for n in [Node::A, Node::B] {
        assert!(!p.log(n).contains("SELF-FENCE"), "{}", logs(&p));
    }
    assert_eq!(
        pri,
        Node::A,
        "the preferred node did not win:\n{}",
        logs(&p)
    );
    wait_role(&p, Node::B, "secondary", Duration::from_secs(10));

    let client = p.start_client().unwrap();
    p.wait_acks(&client, 20, Duration::from_secs(20)).unwrap();
    let f = p.power_cut(pri, &client, FAILOVER, true).unwrap();
    let survivor = other(pri);
    eprintln!(
        "power cut {pri}: served again after {} ms (fence {:?} ms)",
        f.served_ms, f.fence_ms
    );
    let s = p.check_safety().unwrap();
    assert_eq!(s.rw_mounts, vec![survivor]);
    assert!(
        p.lab.power_log().contains(&format!(" off {pri} rc=0")),
        "{}",
        logs(&p)
    );
    p.wait_acks(&client, 10, Duration::from_secs(20)).unwrap();
    no_loss(&p, &client, survivor);

    let offs = power_offs(&p);
    let t = Instant::now();
    p.power_on_and_rejoin(pri).unwrap();
    wait_role(&p, pri, "secondary", Duration::from_secs(40));
    eprintln!("{pri} rejoined as secondary in {:.1?}", t.elapsed());
    let st = p.status(survivor).unwrap();
    assert_eq!(node_field(&st, pri, "state").as_deref(), Some("online"));
    stays_on(&p, survivor, Duration::from_secs(8));
    assert_eq!(power_offs(&p), offs, "fenced again: {}", logs(&p));
    assert!(p.lab.is_up(pri));
    p.wait_acks(&client, 10, Duration::from_secs(20)).unwrap();
    let n = no_loss(&p, &client, survivor);
    eprintln!(
        "{n} records acknowledged, 0 lost; scenario time {:.1?}",
        t0.elapsed()
    );
    p.lab.down().unwrap();
}

/// Scenario: the primary's daemon freezes (SIGSTOP: its event loop, lease
/// thread and watchdog keeper all stop) while the peer cannot fence (its
/// fence agent is moved away for the test). Nothing but the guest's softdog
/// (`/dev/watchdog1`, 3 s) can end the frozen holder: it must reset the
/// node within a few seconds; the peer's fencing fails, so it takes the
/// lease only once the counter stood still for `lock_timeout`. The peer
/// never mounts the data while the frozen node still runs.
#[test]
fn frozen_primary_daemon_is_reset_by_softdog() {
    let t0 = Instant::now();
    let p = pair();
    let (pri, sec, client) = serving(&p);
    let console = p.lab.dir().join(pri.name()).join("console.log");
    let con_from = std::fs::read_to_string(&console).unwrap_or_default().len();
    let agent = p.lab.dir().join("bin").join("fence_lab");
    let away = p.lab.dir().join("bin").join("fence_lab.away");
    std::fs::rename(&agent, &away).unwrap();
    let sec_from = p.log(sec).len();

    p.lab
        .run_ok(pri, "kill -STOP $(cat /run/hapair/daemon.pid)")
        .unwrap();
    let t = Instant::now();
    // until the softdog fires: the peer must not have the data mounted
    loop {
        let con = std::fs::read_to_string(&console).unwrap_or_default();
        if con
            .get(con_from..)
            .is_some_and(|c| c.contains("softdog: Initiating system reboot"))
        {
            break;
        }
        let mi = p.lab.mountinfo(sec).unwrap();
        assert!(
            !hwtest::pair::rw_mounted(&mi, hwtest::pair::DATA_DEV),
            "{sec} mounted the data while {pri} is frozen with it\n{}",
            logs(&p)
        );
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the softdog did not reset the frozen {pri}:\n{}",
            hwtest::pair::tail(&con, 30)
        );
        sleep(Duration::from_millis(100));
    }
    let reset = t.elapsed();
    eprintln!("{pri} frozen -> softdog reset after {reset:.1?}");
    // watchdog_timeout 3 s after the keeper's last kick
    assert!(reset < Duration::from_secs(6), "{reset:?}");
    // A UML guest restarting in place (softdog, reboot(2)) hangs early in
    // its re-exec and never answers again; pull its plug on the host so
    // the checks can tell it is down. This changes nothing the peer sees
    // (no heartbeat, a still counter either way) and is not a fence: the
    // power switch's log (the fence agent's way in) stays empty.
    p.lab.kill(pri).unwrap();

    wait_stack_on(&p, sec, Duration::from_secs(60));
    let took = t.elapsed();
    std::fs::rename(&away, &agent).unwrap();
    let slog = p.log_since(sec, sec_from);
    assert!(
        slog.contains("every fence level failed"),
        "{sec} did not try (and fail) to fence {pri}:\n{}",
        logs(&p)
    );
    assert!(
        !p.lab.power_log().contains(&format!(" off {pri} rc=0")),
        "{}",
        logs(&p)
    );
    eprintln!("stack on {sec} {took:.1?} after the freeze (lease expiry)");
    p.wait_acks(&client, 10, Duration::from_secs(20)).unwrap();
    let n = no_loss(&p, &client, sec);
    eprintln!(
        "{n} records acknowledged, 0 lost; scenario time {:.1?}",
        t0.elapsed()
    );
    p.lab.down().unwrap();
}
