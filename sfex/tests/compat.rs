//! Acceptance tests: our `sfex` against the original Debian tools
//! (`sfex_init`, `sfex_stat`, `sfex_daemon`) on loop devices with 512- and
//! 4096-byte sectors, for both I/O engines. Implements the checklist of
//! sfex-format.md section 7 (tests `c01`..`c12`), plus mixed-pair mutual
//! exclusion (`mixed_*`) and takeover timing bounds (`takeover_*`).
//!
//! Needs root and the `resource-agents` package; fails loudly without them.
//! Every test uses its own loop device(s). Timings are short (`-c 1..2`,
//! `-t 3..5`, `-m 1..2`) so the file runs in a few minutes.
//!
//! The expected bytes come from the golden fixtures (made by the originals,
//! see `tests/fixtures/README.md`), from the originals run side by side, or
//! from the small independent encoder in `common` — never from `sfex::format`.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// Fast poll period for timing measurements.
const POLL: Duration = Duration::from_millis(20);
/// Extra time allowed on top of protocol delays for process start and I/O.
const SLACK: f64 = 0.5;

fn secs_u(s: u32) -> Duration {
    Duration::from_secs(u64::from(s))
}

fn sleep_ms(ms: u64) {
    thread::sleep(Duration::from_millis(ms));
}

/// A fresh device initialised by the original `sfex_init` (n = 1).
fn fresh(sector: u32) -> LoopDev {
    let dev = LoopDev::small(sector);
    orig_init_ok(&dev, 1);
    dev
}

/// Re-initialise the lock area of `dev` with the original (n = 1).
fn reinit(dev: &LoopDev) {
    orig_init_ok(dev, 1);
}

fn lock_now(dev: &LoopDev, k: u64) -> LockView {
    LockView::of(&dev.read_block(k))
}

/// `sfex init` (ours).
fn ours_init(dev: &LoopDev, engine: &str, n: Option<u32>, force: bool) -> Run {
    let mut args: Vec<String> = vec!["init".into(), "--engine".into(), engine.into()];
    if let Some(n) = n {
        args.extend(["-n".into(), n.to_string()]);
    }
    if force {
        args.push("--force".into());
    }
    args.push(dev.path_str().into());
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    ours_run(&a)
}

/// `sfex status ARGS` (ours) with `--engine` and `--node`.
fn ours_stat_args(dev: &LoopDev, engine: &str, node: &str, args: &[&str]) -> Run {
    let mut a = vec!["status", "--engine", engine, "--node", node];
    a.extend_from_slice(args);
    a.push(dev.path_str());
    ours_run(&a)
}

/// The exact `sfex_stat` stdout for a readable control block and lock.
fn stat_text(bs: u32, numlocks: u32, idx: u32, lock: &LockView, mine: bool) -> String {
    format!(
        "control data:\n  magic: 0x53, 0x46, 0x45, 0x58\n  version: 1\n  revision: 3\n  \
         blocksize: {bs}\n  numlocks: {numlocks}\nlock data #{idx}:\n  status: {}\n  count: {}\n  \
         nodename: {}\nstatus is {}.\n",
        if lock.status == b'u' {
            "unlock"
        } else {
            "lock"
        },
        lock.count,
        lock.name_str(),
        if mine { "LOCKED" } else { "UNLOCKED" }
    )
}

/// Asserts our stat and theirs agree (exit code and stdout) for `args`.
#[track_caller]
fn assert_stat_same(
    dev: &LoopDev,
    engine: &str,
    host: &str,
    args: &[&str],
    what: &str,
) -> (i32, String) {
    let (tc, tout, terr) = orig_stat_args(dev, args, host);
    let o = ours_stat_args(dev, engine, host, args);
    assert_eq!(
        (o.code, o.stdout.as_str()),
        (tc, tout.as_str()),
        "{what}: ours (left, engine {engine}) vs sfex_stat (right) for {args:?} as {host:?}\n\
         our stderr: {}\ntheir stderr: {terr}",
        o.stderr
    );
    (tc, tout)
}

fn expect_acquired(l: &mut OurLock, secs: u32) -> Duration {
    l.expect_acquired(secs_u(secs))
}

// ---------------------------------------------------------------------------
// 1. Init bytes
// ---------------------------------------------------------------------------

/// Checklist 1: our init with n = 1, 3, 999 writes blocks 0..=n byte-identical
/// to `sfex_init`, on both sector sizes, with both engines; the originals'
/// output also matches the golden fixtures.
#[test]
fn c01_init_bytes_identical_to_theirs() {
    require_root();
    for sector in SECTORS {
        let size = (1u64 << 20).max(1000 * u64::from(sector));
        let theirs = LoopDev::new(sector, size);
        let ours = LoopDev::new(sector, size);
        for n in [1u32, 3, 999] {
            orig_init_ok(&theirs, n);
            let want = theirs.read_blocks(0, u64::from(n) + 1);
            match (sector, n) {
                (512, 1) => {
                    assert_bytes_eq(&want, &fixture("init-512-n1.bin"), "sfex_init vs fixture")
                }
                (512, 3) => {
                    assert_bytes_eq(&want, &fixture("init-512-n3.bin"), "sfex_init vs fixture")
                }
                (4096, 1) => {
                    assert_bytes_eq(&want, &fixture("init-4096-n1.bin"), "sfex_init vs fixture")
                }
                _ => {}
            }
            for engine in both_engines() {
                ours.zero(0, u64::from(n) + 1);
                let r = ours_init(&ours, engine, Some(n), false);
                assert_eq!(
                    r.code, 0,
                    "sfex init -n {n} --engine {engine} on {sector}: {r:?}"
                );
                let got = ours.read_blocks(0, u64::from(n) + 1);
                assert_bytes_eq(
                    &got,
                    &want,
                    &format!("init -n {n}, {sector}-byte sectors, {engine}"),
                );
            }
        }
        // Default numlocks is 1.
        let want = fixture(if sector == 512 {
            "init-512-n1.bin"
        } else {
            "init-4096-n1.bin"
        });
        for engine in both_engines() {
            ours.zero(0, 2);
            let r = ours_init(&ours, engine, None, false);
            assert_eq!(r.code, 0, "sfex init (default -n) {engine}: {r:?}");
            assert_bytes_eq(&ours.read_blocks(0, 2), &want, "init without -n");
        }
    }
}

/// Our init's refusals (our contract, beyond the original): an existing
/// control block needs `--force` (exit 1, nothing written); a held lock is
/// never overwritten, even with `--force` (exit 2).
#[test]
fn c01_init_refuses_existing_and_held() {
    require_root();
    // The independent encoder agrees with the original's bytes.
    let mut n3 = ctrl_block(512, b"SFEX", "1", "3", "512", "3");
    for _ in 0..3 {
        n3.extend(lock_block(512, b'u', 0, b""));
    }
    assert_bytes_eq(&n3, &fixture("init-512-n3.bin"), "encoder vs fixture");
    for sector in SECTORS {
        let bs = sector as usize;
        let dev = fresh(sector);
        for engine in both_engines() {
            reinit(&dev);
            let before = dev.read_blocks(0, 4);
            let r = ours_init(&dev, engine, Some(3), false);
            assert_eq!(
                r.code, 1,
                "init over an sfex device without --force must exit 1: {r:?}"
            );
            assert_bytes_eq(&dev.read_blocks(0, 4), &before, "refused init wrote");

            let r = ours_init(&dev, engine, Some(3), true);
            assert_eq!(r.code, 0, "init --force -n 3: {r:?}");
            let mut want = ctrl_block(bs, b"SFEX", "1", "3", &sector.to_string(), "3");
            for _ in 0..3 {
                want.extend(lock_block(bs, b'u', 0, b""));
            }
            assert_bytes_eq(&dev.read_blocks(0, 4), &want, "init --force -n 3");

            // Lock 2 held (stale or not, status l): refuse even with --force.
            dev.write_block(2, &lock_block(bs, b'l', 7, b"other"));
            let before = dev.read_blocks(0, 4);
            let r = ours_init(&dev, engine, Some(1), true);
            assert_eq!(
                r.code, 2,
                "init --force over a held lock must exit 2: {r:?}"
            );
            assert_bytes_eq(&dev.read_blocks(0, 4), &before, "init over held lock wrote");
            let r = ours_init(&dev, engine, Some(1), false);
            assert!(
                r.code == 1 || r.code == 2,
                "init over held lock without --force: {r:?}"
            );
            assert_bytes_eq(&dev.read_blocks(0, 4), &before, "init over held lock wrote");
        }
    }
}

// ---------------------------------------------------------------------------
// 2./3. stat compatibility
// ---------------------------------------------------------------------------

/// Checklist 2: after our init -n 3, `sfex_stat -i k` prints the exact
/// expected text with exit 2 for k = 1..3, exit 1 for k = 4.
#[test]
fn c02_our_init_their_stat() {
    require_root();
    for sector in SECTORS {
        let dev = LoopDev::small(sector);
        for engine in both_engines() {
            dev.zero(0, 4);
            let r = ours_init(&dev, engine, Some(3), false);
            assert_eq!(r.code, 0, "{r:?}");
            let free = LockView::of(&lock_block(512, b'u', 0, b""));
            for k in 1..=3 {
                let (code, out, err) = orig_stat(&dev, k, "gamma");
                assert_eq!(code, 2, "sfex_stat -i {k} after our init ({engine}): {err}");
                assert_eq!(
                    out,
                    stat_text(sector, 3, k, &free, false),
                    "sfex_stat -i {k} stdout"
                );
                assert!(
                    out.contains("  nodename: \n"),
                    "trailing space after 'nodename:'"
                );
            }
            let (code, _, err) = orig_stat(&dev, 4, "gamma");
            assert_eq!(code, 1, "sfex_stat -i 4 with 3 locks: {err}");
            // Default index is 1.
            let (code, out, _) = orig_stat_args(&dev, &[], "gamma");
            assert_eq!((code, out), (2, stat_text(sector, 3, 1, &free, false)));
        }
    }
}

/// Checklist 3: on a device made by `sfex_init`, our status prints the same
/// stdout and exit code as `sfex_stat` for valid, too-large and out-of-range
/// indexes; also for the golden images of held / released locks (as the
/// holder and as another host), and through the `stat` alias.
#[test]
fn c03_their_init_our_stat() {
    require_root();
    for sector in SECTORS {
        let dev = LoopDev::small(sector);
        orig_init_ok(&dev, 3);
        for engine in both_engines() {
            for args in [
                &[][..],
                &["-i", "1"][..],
                &["-i", "3"][..],
                &["-i", "4"][..],
                &["-i", "999"][..],
                &["-i", "0"][..],
                &["-i", "1000"][..],
            ] {
                let (code, out) = assert_stat_same(&dev, engine, "gamma", args, "their init -n 3");
                let want = match args {
                    [_, "0"] | [_, "1000"] => 4,
                    [_, "4"] | [_, "999"] => 1,
                    _ => 2,
                };
                assert_eq!(code, want, "sfex_stat {args:?} exit code");
                if code == 2 {
                    assert!(out.ends_with("status is UNLOCKED.\n"), "{out}");
                }
            }
            // The `stat` alias prints the same.
            let a = ours_run(&[
                "stat",
                "--engine",
                engine,
                "--node",
                "gamma",
                "-i",
                "2",
                dev.path_str(),
            ]);
            let (tc, tout, _) = orig_stat(&dev, 2, "gamma");
            assert_eq!((a.code, a.stdout), (tc, tout), "`sfex stat` alias");
        }
    }
    // Golden images made by sfex_daemon.
    let name255 = "x".repeat(255);
    let cases: [(u32, &str, &str); 4] = [
        (512, "held-512-a.bin", "a"),
        (512, "released-512-a.bin", "a"),
        (4096, "held-4096-node-b.bin", "node-b"),
        (512, "held-512-name255.bin", &name255),
    ];
    for (sector, file, holder) in cases {
        let dev = LoopDev::small(sector);
        let img = fixture(file);
        dev.write_blocks(0, &img);
        let lv = LockView::of(&img[sector as usize..]);
        for engine in both_engines() {
            // Hostnames are limited to 64 bytes: the 255-byte holder is only
            // checked with our --node.
            if holder.len() <= 64 {
                let (code, out) = assert_stat_same(&dev, engine, holder, &["-i", "1"], file);
                let mine = lv.status == b'l';
                assert_eq!(code, if mine { 0 } else { 2 }, "{file} as {holder}");
                assert_eq!(
                    out,
                    stat_text(sector, 1, 1, &lv, mine),
                    "{file} as {holder}"
                );
            } else {
                let o = ours_stat_args(&dev, engine, holder, &["-i", "1"]);
                assert_eq!(o.code, 0, "{file} as the 255-byte holder: {o:?}");
                assert_eq!(o.stdout, stat_text(sector, 1, 1, &lv, true));
            }
            let (code, out) = assert_stat_same(&dev, engine, "gamma", &["-i", "1"], file);
            assert_eq!(code, 2);
            assert_eq!(out, stat_text(sector, 1, 1, &lv, false), "{file} as gamma");
        }
    }
}

// ---------------------------------------------------------------------------
// 4. Locked by me vs other
// ---------------------------------------------------------------------------

/// Checklist 4: while their daemon holds the lock as `alpha`, our status
/// exits 0 (`LOCKED`) for `--node alpha` and 2 for `gamma`, with sfex_stat's
/// exact stdout; and the reverse: our `lock` holding, their stat.
#[test]
fn c04_locked_by_me_vs_other() {
    require_root();
    // Long -m so the count does not move between the two stat runs.
    let tm = Timing::new(1, 60, 30);
    for sector in SECTORS {
        let dev = fresh(sector);
        let mut theirs = OrigDaemon::start(&dev, "alpha", tm);
        assert_eq!(
            theirs.code(),
            Some(0),
            "sfex_daemon start: {}",
            theirs.log()
        );
        for engine in both_engines() {
            let (code, out) = assert_stat_same(&dev, engine, "alpha", &["-i", "1"], "theirs holds");
            assert_eq!(code, 0, "held by alpha, asked as alpha");
            assert!(
                out.ends_with("status: lock\n  count: 2\n  nodename: alpha\nstatus is LOCKED.\n"),
                "{out}"
            );
            let (code, out) = assert_stat_same(&dev, engine, "gamma", &["-i", "1"], "theirs holds");
            assert_eq!(code, 2, "held by alpha, asked as gamma");
            assert!(
                out.ends_with("nodename: alpha\nstatus is UNLOCKED.\n"),
                "{out}"
            );
        }
        theirs.term();
        assert_eq!(
            theirs.wait_exit(Duration::from_secs(5)),
            Some(0),
            "sfex_daemon SIGTERM exit"
        );

        for engine in both_engines() {
            let mut ours = OurLock::spawn(&dev, &LockArgs::new(engine, "alpha", tm));
            expect_acquired(&mut ours, 5);
            let (code, out, err) = orig_stat(&dev, 1, "alpha");
            assert_eq!(
                code, 0,
                "sfex_stat as the holder of our lock ({engine}): {err}\n{out}"
            );
            assert!(
                out.ends_with("nodename: alpha\nstatus is LOCKED.\n"),
                "{out}"
            );
            let (code, out, _) = orig_stat(&dev, 1, "gamma");
            assert_eq!(code, 2);
            assert!(
                out.contains("  status: lock\n")
                    && out.ends_with("nodename: alpha\nstatus is UNLOCKED.\n"),
                "{out}"
            );
            for e2 in both_engines() {
                assert_eq!(assert_stat_same(&dev, e2, "alpha", &[], "ours holds").0, 0);
                assert_eq!(assert_stat_same(&dev, e2, "gamma", &[], "ours holds").0, 2);
            }
            assert_eq!(
                ours.term_and_wait(Duration::from_secs(5)),
                0,
                "{}",
                ours.stderr()
            );
        }
    }
}

// ---------------------------------------------------------------------------
// 5. Block size mismatch
// ---------------------------------------------------------------------------

/// Checklist 5: an image made on 512-byte sectors read through a 4096-byte
/// loop device (and the reverse): stat exits 1 in both implementations, a
/// daemon start fails with 1 in both, and nothing is written.
#[test]
fn c05_blocksize_mismatch() {
    require_root();
    let tm = Timing::new(1, 3, 1);
    for (src, dst) in [(512u32, 4096u32), (4096, 512)] {
        let a = fresh(src);
        let img = a.read_blocks(0, 2);
        let b = LoopDev::small(dst);
        if img.len() < dst as usize {
            b.write_block(0, &img);
        } else {
            b.write_blocks(0, &img);
        }
        let before = b.read_blocks(0, 4);
        let (code, out, err) = orig_stat(&b, 1, "gamma");
        assert_eq!(
            code, 1,
            "sfex_stat on a {src}-byte image via {dst}-byte sectors: {out}{err}"
        );
        for engine in both_engines() {
            let (code, _) =
                assert_stat_same(&b, engine, "gamma", &["-i", "1"], "blocksize mismatch");
            assert_eq!(code, 1);
            let mut ours = OurLock::spawn(&b, &LockArgs::new(engine, "alpha", tm));
            assert_eq!(
                ours.wait_acquired(Duration::from_secs(10)),
                Err(1),
                "sfex lock on a blocksize mismatch ({engine}): {}",
                ours.stderr()
            );
        }
        let d = OrigDaemon::start(&b, "alpha", tm);
        assert_eq!(d.code(), Some(1), "sfex_daemon on a blocksize mismatch");
        assert_bytes_eq(
            &b.read_blocks(0, 4),
            &before,
            "blocksize mismatch: device modified",
        );
    }
}

// ---------------------------------------------------------------------------
// 6. Bad metadata
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Debug)]
enum Expect {
    /// Control block rejected: stat 1, daemon 1.
    CtrlReject,
    /// Lock block malformed: the daemon exits 1; stat exits like the original
    /// (which ignores lock read errors) and we must report an error on stderr.
    LockReject,
    /// Accepted: stat stdout identical.
    Accept,
}

/// Checklist 6: malformed control and lock blocks are rejected (or accepted)
/// the same way by both implementations.
#[test]
fn c06_bad_metadata() {
    require_root();
    let tm = Timing::new(1, 3, 1);
    for sector in SECTORS {
        let bs = sector as usize;
        let bss = sector.to_string();
        let ctrl =
            |magic: &[u8], v: &str, r: &str, b: &str, n: &str| ctrl_block(bs, magic, v, r, b, n);
        let good = ctrl(b"SFEX", "1", "3", &bss, "1");
        let free = lock_block(bs, b'u', 0, b"");
        let name256 = vec![b'y'; 256];
        let mut lock_name256 = lock_block(bs, b'l', 3, b"");
        lock_name256[5..261].copy_from_slice(&name256);
        let mut bad_count = lock_block(bs, b'l', 3, b"a");
        bad_count[1..5].copy_from_slice(b"1234");
        let raw_count = |c: &[u8]| {
            let mut b = lock_block(bs, b'l', 0, b"a");
            b[1..1 + c.len()].copy_from_slice(c);
            b
        };
        let cases: Vec<(&str, Vec<u8>, Vec<u8>, Expect)> = vec![
            ("all zero", vec![0; bs], vec![0; bs], Expect::CtrlReject),
            (
                "magic lowercase",
                ctrl(b"sfex", "1", "3", &bss, "1"),
                free.clone(),
                Expect::CtrlReject,
            ),
            (
                "magic from sfex.h",
                ctrl(&[1, 0x1f, 0x71, 0x7f], "1", "3", &bss, "1"),
                free.clone(),
                Expect::CtrlReject,
            ),
            (
                "version 2",
                ctrl(b"SFEX", "2", "3", &bss, "1"),
                free.clone(),
                Expect::CtrlReject,
            ),
            (
                "version 1234",
                ctrl(b"SFEX", "1234", "3", &bss, "1"),
                free.clone(),
                Expect::CtrlReject,
            ),
            (
                "revision 1234",
                ctrl(b"SFEX", "1", "1234", &bss, "1"),
                free.clone(),
                Expect::CtrlReject,
            ),
            (
                "blocksize 12345678",
                ctrl(b"SFEX", "1", "3", "12345678", "1"),
                free.clone(),
                Expect::CtrlReject,
            ),
            (
                "blocksize garbage",
                ctrl(b"SFEX", "1", "3", "abc", "1"),
                free.clone(),
                Expect::CtrlReject,
            ),
            (
                "numlocks 5000",
                ctrl(b"SFEX", "1", "3", &bss, "5000"),
                free.clone(),
                Expect::CtrlReject,
            ),
            (
                "numlocks 0",
                ctrl(b"SFEX", "1", "3", &bss, "0"),
                free.clone(),
                Expect::CtrlReject,
            ),
            (
                "lock status x",
                good.clone(),
                lock_block(bs, b'x', 3, b"a"),
                Expect::LockReject,
            ),
            (
                "lock count without NUL",
                good.clone(),
                bad_count,
                Expect::LockReject,
            ),
            (
                "lock name 256 bytes",
                good.clone(),
                lock_name256,
                Expect::LockReject,
            ),
            (
                "revision 9",
                ctrl(b"SFEX", "1", "9", &bss, "1"),
                free.clone(),
                Expect::Accept,
            ),
            (
                "blocksize leading 0",
                ctrl(b"SFEX", "1", "3", &format!("0{bss}"), "1"),
                free.clone(),
                Expect::Accept,
            ),
            (
                "blocksize trailing x",
                ctrl(b"SFEX", "1", "3", &format!("{bss}x"), "1"),
                free.clone(),
                Expect::Accept,
            ),
            (
                "blocksize leading space",
                ctrl(b"SFEX", "1", "3", &format!(" {bss}"), "1"),
                free.clone(),
                Expect::Accept,
            ),
            (
                "numlocks 1x",
                ctrl(b"SFEX", "1", "3", &bss, "1x"),
                free.clone(),
                Expect::Accept,
            ),
            ("count ab", good.clone(), raw_count(b"ab"), Expect::Accept),
            (
                "count space 7",
                good.clone(),
                raw_count(b" 7"),
                Expect::Accept,
            ),
            ("count -3", good.clone(), raw_count(b"-3"), Expect::Accept),
            ("count 999", good.clone(), raw_count(b"999"), Expect::Accept),
            (
                "name 255 bytes",
                good.clone(),
                lock_block(bs, b'l', 5, &[b'z'; 255]),
                Expect::Accept,
            ),
        ];
        let dev = LoopDev::small(sector);
        for (what, c, l, expect) in cases {
            let what = format!("{what} ({sector}-byte sectors)");
            let mut img = c.clone();
            img.extend_from_slice(&l);
            dev.write_blocks(0, &img);
            let (tc, tout, terr) = orig_stat(&dev, 1, "a");
            match expect {
                Expect::CtrlReject => {
                    assert_eq!(tc, 1, "{what}: sfex_stat should reject: {tout}{terr}")
                }
                Expect::LockReject => {
                    assert_eq!(tc, 2, "{what}: sfex_stat ignores lock read errors");
                    assert!(terr.contains("lock data format error"), "{what}: {terr}");
                }
                Expect::Accept => assert!(
                    tc == 0 || tc == 2,
                    "{what}: sfex_stat should accept: {terr}"
                ),
            }
            for engine in both_engines() {
                let o = ours_stat_args(&dev, engine, "a", &["-i", "1"]);
                assert_eq!(
                    o.code, tc,
                    "{what}: our status exit vs sfex_stat ({engine}): {o:?}"
                );
                if expect == Expect::LockReject {
                    assert!(
                        !o.stderr.trim().is_empty(),
                        "{what}: our status must report the lock error"
                    );
                } else {
                    assert_eq!(
                        o.stdout, tout,
                        "{what}: our status stdout vs sfex_stat ({engine})"
                    );
                }
                if expect != Expect::Accept {
                    let mut ours = OurLock::spawn(&dev, &LockArgs::new(engine, "a", tm));
                    let r = ours.wait_acquired(Duration::from_secs(10));
                    assert_eq!(
                        r,
                        Err(1),
                        "{what}: sfex lock ({engine}) should exit 1: {}",
                        ours.stderr()
                    );
                }
            }
            if expect == Expect::Accept {
                let lv = LockView::of(&l);
                if lv.status != b'x' && c == good {
                    assert!(
                        tout.contains(&format!("  count: {}\n", lv.count)),
                        "{what}: atoi count: {tout}"
                    );
                }
            } else {
                let mut d = OrigDaemon::start(&dev, "a", tm);
                assert_eq!(d.code(), Some(1), "{what}: sfex_daemon should exit 1");
                assert!(!d.alive());
            }
            assert_bytes_eq(
                &dev.read_blocks(0, 2),
                &img,
                &format!("{what}: device modified"),
            );
        }
    }
}

// ---------------------------------------------------------------------------
// 7./8. Mixed pair: one holds, the other waits lock_timeout and gives up
// ---------------------------------------------------------------------------

/// Checks that every sample is a block the holder wrote (`l`, count, name,
/// zero padding) with counts moving by +1; returns the (time, count) of each
/// change.
fn holder_only_samples(samples: &[Sample], bs: usize, holder: &str) -> Vec<(Instant, i64)> {
    let mut changes = Vec::new();
    let mut last: Option<i64> = None;
    for s in samples {
        let lv = LockView::of(&s.block);
        let want = lock_block(bs, b'l', lv.count, holder.as_bytes());
        assert_bytes_eq(&s.block, &want, &format!("block while {holder} holds"));
        if last != Some(lv.count) {
            if let Some(p) = last {
                assert_eq!(
                    lv.count,
                    next_count(p),
                    "count must move by +1 (seen {p} then {})",
                    lv.count
                );
            }
            changes.push((s.t1, lv.count));
            last = Some(lv.count);
        }
    }
    changes
}

fn theirs_holds_ours_waits(sector: u32) {
    let tm = Timing::new(1, 3, 1);
    let dev = fresh(sector);
    let mut holder = OrigDaemon::start(&dev, "alpha", tm);
    assert_eq!(holder.code(), Some(0));
    for engine in both_engines() {
        let rec = Recorder::start(&dev, 1, POLL);
        let mut ours = OurLock::spawn(&dev, &LockArgs::new(engine, "beta", tm));
        let r = ours.wait_acquired(Duration::from_secs(15));
        let samples = rec.stop();
        assert_eq!(
            r,
            Err(2),
            "ours ({engine}) must give up with 2 while theirs renews: {}",
            ours.stderr()
        );
        let el = secs(ours.exit_elapsed());
        assert!(
            el >= f64::from(tm.t) && el <= f64::from(tm.t) + 1.0,
            "ours ({engine}) gave up after {el:.3}s, want about t = {}s",
            tm.t
        );
        // Nothing but the holder's own renewals ever appeared on disk.
        let changes = holder_only_samples(&samples, dev.bs(), "alpha");
        assert!(
            changes.len() >= 3,
            "holder renewed only {} times in {el:.1}s",
            changes.len()
        );
        assert!(holder.alive(), "their daemon died while ours waited");
        assert_eq!(holder.sysrq_file(), "", "their daemon self-fenced");
    }
    holder.term();
    assert_eq!(holder.wait_exit(Duration::from_secs(5)), Some(0));
    let lv = lock_now(&dev, 1);
    assert_eq!(
        (lv.status, lv.name_str().as_str()),
        (b'u', "alpha"),
        "after their release: {lv}"
    );
}

/// Checklist 7 (512): their daemon holds, ours waits t once, exits 2, never writes.
#[test]
fn c07_theirs_holds_ours_waits_512() {
    require_root();
    theirs_holds_ours_waits(512);
}

/// Checklist 7 (4096).
#[test]
fn c07_theirs_holds_ours_waits_4096() {
    require_root();
    theirs_holds_ours_waits(4096);
}

fn ours_holds_theirs_waits(sector: u32) {
    let tm = Timing::new(1, 3, 1);
    let dev = fresh(sector);
    for engine in both_engines() {
        let mut ours = OurLock::spawn(&dev, &LockArgs::new(engine, "alpha", tm));
        expect_acquired(&mut ours, 5);
        let rec = Recorder::start(&dev, 1, POLL);
        let theirs = OrigDaemon::start(&dev, "beta", tm);
        thread::sleep(secs_u(tm.m));
        let samples = rec.stop();
        assert_eq!(
            theirs.code(),
            Some(2),
            "sfex_daemon must exit 2 while ours ({engine}) renews"
        );
        let el = secs(theirs.elapsed());
        assert!(
            el >= f64::from(tm.t) && el <= f64::from(tm.t) + 1.0,
            "theirs gave up after {el:.3}s"
        );
        let changes = holder_only_samples(&samples, dev.bs(), "alpha");
        assert!(
            changes.len() >= 4,
            "ours ({engine}) renewed {} times in ~{}s",
            changes.len(),
            tm.t + tm.m
        );
        // One step per monitor interval.
        for w in changes.windows(2) {
            let gap = diff_secs(w[1].0, w[0].0);
            assert!(
                (gap - f64::from(tm.m)).abs() <= 0.25,
                "ours ({engine}) renewal gap {gap:.3}s, want {}s: {changes:?}",
                tm.m
            );
        }
        assert_eq!(
            ours.try_exit(),
            None,
            "ours ({engine}) died: {}",
            ours.stderr()
        );
        assert_eq!(ours.sysrq_file(), "");
        // Release: the status byte changes, the count and name stay.
        let rec = Recorder::start(&dev, 1, POLL);
        sleep_ms(50);
        assert_eq!(
            ours.term_and_wait(Duration::from_secs(5)),
            0,
            "{}",
            ours.stderr()
        );
        sleep_ms(50);
        let (held, released) = release_step(&rec.stop());
        assert_bytes_eq(
            &released,
            &lock_block(dev.bs(), b'u', LockView::of(&held).count, b"alpha"),
            &format!("our release ({engine}) after {}", LockView::of(&held)),
        );
    }
}

/// The last `l` block before the first `u` block of a recording.
fn release_step(samples: &[Sample]) -> (Vec<u8>, Vec<u8>) {
    let i = samples
        .iter()
        .position(|s| s.block[0] == b'u')
        .expect("no release seen");
    assert!(i > 0, "released before the recording started");
    (samples[i - 1].block.clone(), samples[i].block.clone())
}

/// Checklist 8 (512): ours holds and renews +1 per -m; their daemon exits 2 after t.
#[test]
fn c08_ours_holds_theirs_waits_512() {
    require_root();
    ours_holds_theirs_waits(512);
}

/// Checklist 8 (4096).
#[test]
fn c08_ours_holds_theirs_waits_4096() {
    require_root();
    ours_holds_theirs_waits(4096);
}

// ---------------------------------------------------------------------------
// 9. Stale takeover
// ---------------------------------------------------------------------------

fn stale_takeover(sector: u32) {
    let tm = Timing::new(1, 3, 2);
    let want_lo = f64::from(tm.t + tm.c);
    let dev = fresh(sector);
    let mut first = OrigDaemon::start(&dev, "gamma", tm);
    assert_eq!(first.code(), Some(0));
    first.kill9();
    for engine in both_engines() {
        // Their holder is dead: ours takes over after t + c with count + 2.
        let stale = lock_now(&dev, 1);
        assert_eq!(
            (stale.status, stale.name_str().as_str()),
            (b'l', "gamma"),
            "{stale}"
        );
        let mut ours = OurLock::spawn(&dev, &LockArgs::new(engine, "beta", tm));
        sleep_ms(1500);
        assert_eq!(
            ours.pidfile(),
            None,
            "--pidfile written before the lock was acquired"
        );
        assert_eq!(
            lock_now(&dev, 1),
            stale,
            "ours wrote during the lock_timeout wait"
        );
        let el = secs(expect_acquired(&mut ours, tm.t + tm.c + 5));
        let got = lock_now(&dev, 1);
        assert!(
            el >= want_lo && el <= want_lo + 1.0,
            "ours ({engine}) took over after {el:.3}s, want t + c = {want_lo}s"
        );
        assert_eq!(
            got,
            LockView::of(&lock_block(dev.bs(), b'l', stale.count + 2, b"beta")),
            "ours ({engine}) after takeover from {stale}"
        );
        assert_eq!(
            ours.pidfile().map(|s| s.trim().to_string()),
            Some(ours.pid().to_string()),
            "--pidfile after acquisition"
        );
        ours.kill9();

        // Ours is dead: theirs takes over likewise.
        let stale = lock_now(&dev, 1);
        assert_eq!(
            (stale.status, stale.name_str().as_str()),
            (b'l', "beta"),
            "SIGKILL must leave l: {stale}"
        );
        let mut theirs = OrigDaemon::start(&dev, "gamma", tm);
        assert_eq!(
            theirs.code(),
            Some(0),
            "theirs must take over our stale lock"
        );
        let el = secs(theirs.elapsed());
        assert!(
            el >= want_lo && el <= want_lo + 1.0,
            "theirs took over after {el:.3}s"
        );
        assert_eq!(
            lock_now(&dev, 1),
            LockView::of(&lock_block(dev.bs(), b'l', stale.count + 2, b"gamma")),
            "theirs after takeover from {stale}"
        );
        theirs.kill9();
    }
}

/// Checklist 9 (512): SIGKILL theirs, ours takes over after t + c with +2;
/// SIGKILL ours, theirs takes over likewise.
#[test]
fn c09_stale_takeover_512() {
    require_root();
    stale_takeover(512);
}

/// Checklist 9 (4096).
#[test]
fn c09_stale_takeover_4096() {
    require_root();
    stale_takeover(4096);
}

// ---------------------------------------------------------------------------
// 10. Release bytes
// ---------------------------------------------------------------------------

fn release_bytes(sector: u32) {
    let tm = Timing::new(1, 5, 2);
    let bs = sector as usize;
    let dev = LoopDev::small(sector);
    let init = fixture(if sector == 512 {
        "init-512-n1.bin"
    } else {
        "init-4096-n1.bin"
    });
    let name255 = "x".repeat(255);
    let cases: Vec<(&str, &str)> = if sector == 512 {
        vec![("a", "held-512-a.bin"), (&name255, "held-512-name255.bin")]
    } else {
        vec![("node-b", "held-4096-node-b.bin")]
    };
    for engine in both_engines() {
        for (node, held) in &cases {
            // Theirs: acquire on a fresh image, release.
            dev.write_blocks(0, &init);
            let mut theirs = OrigDaemon::start(&dev, node, tm);
            assert_eq!(theirs.code(), Some(0));
            theirs.term();
            assert_eq!(theirs.wait_exit(Duration::from_secs(5)), Some(0));
            let theirs_rel = dev.read_blocks(0, 2);
            // Ours, same start: held bytes = the original's golden image,
            // release bytes = the original's release.
            dev.write_blocks(0, &init);
            let mut ours = OurLock::spawn(&dev, &LockArgs::new(engine, node, tm));
            expect_acquired(&mut ours, 5);
            assert_bytes_eq(
                &dev.read_blocks(0, 2),
                &fixture(held),
                &format!("ours ({engine}) held vs {held}"),
            );
            assert_eq!(
                ours.term_and_wait(Duration::from_secs(5)),
                0,
                "{}",
                ours.stderr()
            );
            let ours_rel = dev.read_blocks(0, 2);
            assert_bytes_eq(
                &ours_rel,
                &theirs_rel,
                &format!(
                    "release by ours ({engine}) vs theirs, node {}",
                    &node[..node.len().min(8)]
                ),
            );
            assert_eq!(LockView::of(&ours_rel[bs..]).status, b'u');
        }
        if sector == 512 {
            // The exact sequence of released-512-a.bin: acquire, SIGKILL,
            // re-acquire own stale lock (no wait), SIGTERM.
            dev.write_blocks(0, &init);
            let mut o1 = OurLock::spawn(&dev, &LockArgs::new(engine, "a", tm));
            expect_acquired(&mut o1, 5);
            o1.kill9();
            let mut o2 = OurLock::spawn(&dev, &LockArgs::new(engine, "a", tm));
            let el = secs(expect_acquired(&mut o2, 5));
            assert!(
                el < f64::from(tm.c) + SLACK,
                "own stale lock must be taken without waiting: {el:.3}s"
            );
            assert_eq!(o2.term_and_wait(Duration::from_secs(5)), 0);
            assert_bytes_eq(
                &dev.read_blocks(0, 2),
                &fixture("released-512-a.bin"),
                "ours vs released-512-a.bin",
            );
        }
        // After our release their daemon acquires in about c.
        let rel = lock_now(&dev, 1);
        let mut theirs = OrigDaemon::start(&dev, "other", tm);
        assert_eq!(theirs.code(), Some(0));
        let el = secs(theirs.elapsed());
        assert!(
            el < f64::from(tm.c) + SLACK,
            "theirs after our release took {el:.3}s, want ~c"
        );
        assert_eq!(
            lock_now(&dev, 1),
            LockView::of(&lock_block(bs, b'l', rel.count + 2, b"other"))
        );
        theirs.kill9();
    }
    if sector == 512 {
        // A 256-byte name is refused by both, nothing written.
        dev.write_blocks(0, &init);
        let long = "y".repeat(256);
        for engine in both_engines() {
            let mut ours = OurLock::spawn(&dev, &LockArgs::new(engine, &long, tm));
            let r = ours.wait_acquired(Duration::from_secs(5));
            assert_eq!(
                r,
                Err(1),
                "ours must refuse a 256-byte node name with 1, as sfex_daemon"
            );
        }
        let theirs = OrigDaemon::start(&dev, &long, tm);
        assert_eq!(
            theirs.code(),
            Some(1),
            "sfex_daemon refuses a 256-byte name with 1"
        );
        assert_bytes_eq(
            &dev.read_blocks(0, 2),
            &init,
            "256-byte name: device modified",
        );
    }
}

/// Checklist 10 (512): our held/released bytes equal the golden fixtures and
/// their daemon's; their daemon then acquires in about c. Also the 255-byte
/// name and the refused 256-byte name.
#[test]
fn c10_release_bytes_512() {
    require_root();
    release_bytes(512);
}

/// Checklist 10 (4096).
#[test]
fn c10_release_bytes_4096() {
    require_root();
    release_bytes(4096);
}

// ---------------------------------------------------------------------------
// 11. Wrap
// ---------------------------------------------------------------------------

/// Distinct consecutive blocks of a recording.
fn distinct(samples: &[Sample]) -> Vec<LockView> {
    let mut v: Vec<LockView> = Vec::new();
    for s in samples {
        let lv = LockView::of(&s.block);
        if v.last() != Some(&lv) {
            v.push(lv);
        }
    }
    v
}

fn wrap(sector: u32) {
    let tm = Timing::new(1, 3, 1);
    let bs = sector as usize;
    let dev = fresh(sector);
    let want: Vec<LockView> = [
        (b'u', 998, ""),
        (b'l', 999, "a"),
        (b'l', 0, "a"),
        (b'l', 1, "a"),
        (b'l', 2, "a"),
    ]
    .iter()
    .map(|&(s, c, n)| LockView::of(&lock_block(bs, s, c, n.as_bytes())))
    .collect();
    let until_two = |rd: &mut BlockReader| {
        poll_until(rd, 1, POLL, Duration::from_secs(5), |b| {
            LockView::of(b).count == 2
        })
        .expect("count never reached 2 after the wrap");
    };
    for engine in ["theirs", "sync", "uring"] {
        dev.write_block(1, &lock_block(bs, b'u', 998, b""));
        let rec = Recorder::start(&dev, 1, POLL);
        sleep_ms(60);
        let mut rd = dev.reader();
        if engine == "theirs" {
            let mut d = OrigDaemon::start(&dev, "a", tm);
            assert_eq!(d.code(), Some(0));
            until_two(&mut rd);
            sleep_ms(100); // let the recorder see l2 too
            d.term();
            assert_eq!(d.wait_exit(Duration::from_secs(5)), Some(0));
        } else {
            let mut o = OurLock::spawn(&dev, &LockArgs::new(engine, "a", tm));
            expect_acquired(&mut o, 5);
            until_two(&mut rd);
            sleep_ms(100); // let the recorder see l2 too
            assert_eq!(o.term_and_wait(Duration::from_secs(5)), 0);
        }
        let seen = distinct(&rec.stop());
        assert!(seen.len() >= 6, "{engine}: {seen:?}");
        assert_eq!(
            &seen[..5],
            &want[..],
            "{engine}: u998 -> l999 -> l0 -> l1 -> l2"
        );
        assert_eq!(
            seen.last().unwrap().status,
            b'u',
            "{engine}: released at the end"
        );
    }
    // Both read 999 and 0 the same.
    for c in [999, 0] {
        dev.write_block(1, &lock_block(bs, b'l', c, b"a"));
        for engine in both_engines() {
            let (code, out) = assert_stat_same(&dev, engine, "a", &["-i", "1"], "wrap");
            assert_eq!(code, 0);
            assert!(out.contains(&format!("  count: {c}\n")), "{out}");
        }
    }
}

/// Checklist 11 (512): seeded u998 is acquired as l999 -> l0, then l1, l2, by
/// both implementations; both print 999 and 0.
#[test]
fn c11_count_wrap_512() {
    require_root();
    wrap(512);
}

/// Checklist 11 (4096).
#[test]
fn c11_count_wrap_4096() {
    require_root();
    wrap(4096);
}

// ---------------------------------------------------------------------------
// 12. Self-fence and the collision window
// ---------------------------------------------------------------------------

/// Waits for the holder's next renewal (so an overwrite does not race it).
fn after_renewal(dev: &LoopDev, m: u32) -> LockView {
    let mut rd = dev.reader();
    let c0 = LockView::of(&rd.read(1)).count;
    let (_, hit) = poll_until(
        &mut rd,
        1,
        Duration::from_millis(5),
        secs_u(2 * m + 1),
        |b| LockView::of(b).count != c0,
    )
    .expect("no renewal seen");
    LockView::of(&hit.block)
}

fn self_fence(sector: u32) {
    let tm = Timing::new(1, 3, 1);
    let bs = sector as usize;
    let dev = fresh(sector);
    let deadline = f64::from(tm.m) + SLACK;
    for engine in both_engines() {
        // Another node's name: --on-loss reboot writes "b\n" and exits 1.
        reinit(&dev);
        let mut o = OurLock::spawn(&dev, &LockArgs::new(engine, "a", tm).on_loss("reboot"));
        expect_acquired(&mut o, 5);
        // Same count as ours, other name: only the name check can catch it.
        let cur = after_renewal(&dev, tm.m);
        let intruder = lock_block(bs, b'l', cur.count, b"b");
        dev.write_block(1, &intruder);
        let t0 = Instant::now();
        let code = o.wait_timeout(Duration::from_secs(5));
        let el = secs(t0.elapsed());
        assert_eq!(
            code,
            Some(1),
            "ours ({engine}) must exit 1 on loss: {}",
            o.stderr()
        );
        assert!(
            el <= deadline,
            "ours ({engine}) noticed the loss after {el:.3}s, want <= m"
        );
        assert_eq!(o.sysrq_file(), "b\n", "ours ({engine}) --on-loss reboot");
        assert_bytes_eq(
            &dev.read_block(1),
            &intruder,
            "ours must not touch the new holder's block",
        );

        // Status u written by someone else, --on-loss exit: exit 1, no sysrq.
        reinit(&dev);
        let mut o = OurLock::spawn(&dev, &LockArgs::new(engine, "a", tm).on_loss("exit"));
        expect_acquired(&mut o, 5);
        let cur = after_renewal(&dev, tm.m);
        let freed = lock_block(bs, b'u', cur.count, b"a");
        dev.write_block(1, &freed);
        let t0 = Instant::now();
        assert_eq!(
            o.wait_timeout(Duration::from_secs(5)),
            Some(1),
            "{}",
            o.stderr()
        );
        let el = secs(t0.elapsed());
        assert!(
            el <= deadline,
            "ours ({engine}) noticed the release after {el:.3}s"
        );
        assert_eq!(o.sysrq_file(), "", "--on-loss exit must not touch sysrq");
        assert_bytes_eq(&dev.read_block(1), &freed, "ours must not write after loss");
    }
    // The original does the same (reference behaviour).
    for (what, intruder) in [("name b", b"b".as_slice()), ("status u", b"a".as_slice())] {
        reinit(&dev);
        let mut d = OrigDaemon::start(&dev, "a", tm);
        assert_eq!(d.code(), Some(0));
        let cur = after_renewal(&dev, tm.m);
        let block = if what == "status u" {
            lock_block(bs, b'u', cur.count, intruder)
        } else {
            lock_block(bs, b'l', cur.count, intruder)
        };
        dev.write_block(1, &block);
        let t0 = Instant::now();
        let code = d.wait_exit(Duration::from_secs(5));
        assert_eq!(code, Some(1), "sfex_daemon after {what}");
        assert!(secs(t0.elapsed()) <= deadline);
        assert_eq!(d.sysrq_file(), "b\n", "sfex_daemon self-fence after {what}");
        assert_bytes_eq(&dev.read_block(1), &block, "sfex_daemon wrote after loss");
    }
}

/// Checklist 12 (512): a replaced lock is noticed at the next renewal (within
/// m): another name with the *same* count (only the name check catches it)
/// makes ours write `b\n` to --sysrq-path with --on-loss reboot and exit 1,
/// as theirs does; status `u` with --on-loss exit makes ours exit 1 without
/// touching sysrq. Neither writes to the block after the loss.
#[test]
fn c12_self_fence_512() {
    require_root();
    self_fence(512);
}

/// Checklist 12 (4096).
#[test]
fn c12_self_fence_4096() {
    require_root();
    self_fence(4096);
}

enum Contender {
    Ours(&'static str),
    Theirs,
}

enum Started {
    Ours(OurLock),
    Theirs(OrigDaemon),
}

impl Started {
    fn spawn(dev: &LoopDev, who: &Contender, node: &str, tm: Timing) -> Started {
        match who {
            Contender::Ours(e) => Started::Ours(OurLock::spawn(dev, &LockArgs::new(e, node, tm))),
            Contender::Theirs => Started::Theirs(OrigDaemon::spawn(dev, node, tm)),
        }
    }

    /// Ok(()) when acquired, Err(code) when it gave up; plus seconds since spawn.
    fn outcome(&mut self, timeout: Duration) -> (Result<(), i32>, f64) {
        match self {
            Started::Ours(o) => match o.wait_acquired(timeout) {
                Ok(d) => (Ok(()), secs(d)),
                Err(c) => (Err(c), secs(o.exit_elapsed())),
            },
            Started::Theirs(d) => {
                let c = d.wait_started(timeout);
                (if c == 0 { Ok(()) } else { Err(c) }, secs(d.elapsed()))
            }
        }
    }

    fn name(&self) -> String {
        match self {
            Started::Ours(o) => format!("ours ({})", o.argv[2]),
            Started::Theirs(_) => "theirs".into(),
        }
    }

    /// Is the holder still running and not self-fenced?
    fn healthy(&mut self) -> bool {
        match self {
            Started::Ours(o) => o.try_exit().is_none() && o.sysrq_file().is_empty(),
            Started::Theirs(d) => d.alive() && d.sysrq_file().is_empty(),
        }
    }

    fn release(&mut self) {
        match self {
            Started::Ours(o) => {
                assert_eq!(o.term_and_wait(Duration::from_secs(5)), 0, "{}", o.stderr())
            }
            Started::Theirs(d) => {
                d.term();
                assert_eq!(d.wait_exit(Duration::from_secs(5)), Some(0));
            }
        }
    }
}

fn collision_window(sector: u32) {
    let tm = Timing::new(2, 3, 1);
    let bs = sector as usize;
    let dev = fresh(sector);
    for who in [
        Contender::Ours("sync"),
        Contender::Ours("uring"),
        Contender::Theirs,
    ] {
        // Same name, other count, written during the collision wait: not
        // detected (only the name is compared); the extension is the claim
        // count + 1, as in the original.
        reinit(&dev);
        let mut rd = dev.reader();
        let mut c = Started::spawn(&dev, &who, "a", tm);
        poll_until(
            &mut rd,
            1,
            Duration::from_millis(5),
            Duration::from_secs(5),
            |b| LockView::of(b).name == b"a",
        )
        .expect("no claim seen");
        let claim = lock_now(&dev, 1);
        assert_eq!(
            claim,
            LockView::of(&lock_block(bs, b'l', 1, b"a")),
            "{}: claim",
            c.name()
        );
        dev.write_block(1, &lock_block(bs, b'l', 50, b"a"));
        let (r, el) = c.outcome(Duration::from_secs(10));
        assert_eq!(
            r,
            Ok(()),
            "{}: same name must pass the collision check",
            c.name()
        );
        assert!(
            el >= f64::from(tm.c) && el <= f64::from(tm.c) + SLACK,
            "{}: {el:.3}s",
            c.name()
        );
        assert_eq!(
            lock_now(&dev, 1),
            LockView::of(&lock_block(bs, b'l', 2, b"a")),
            "{}: extension",
            c.name()
        );
        c.release();

        // Another name during the collision wait: give up with 2 after c.
        reinit(&dev);
        let mut c = Started::spawn(&dev, &who, "a", tm);
        poll_until(
            &mut rd,
            1,
            Duration::from_millis(5),
            Duration::from_secs(5),
            |b| LockView::of(b).name == b"a",
        )
        .expect("no claim seen");
        let other = lock_block(bs, b'l', 7, b"b");
        dev.write_block(1, &other);
        let (r, el) = c.outcome(Duration::from_secs(10));
        assert_eq!(r, Err(2), "{}: collision must exit 2", c.name());
        assert!(
            el >= f64::from(tm.c) && el <= f64::from(tm.c) + SLACK,
            "{}: {el:.3}s",
            c.name()
        );
        assert_bytes_eq(&dev.read_block(1), &other, "collision loser wrote");
    }
}

/// Checklist 12, collision window (512): during the collision wait only the
/// name is compared, by ours (both engines) and theirs alike.
#[test]
fn c12_collision_window_512() {
    require_root();
    collision_window(512);
}

/// Checklist 12, collision window (4096).
#[test]
fn c12_collision_window_4096() {
    require_root();
    collision_window(4096);
}

// ---------------------------------------------------------------------------
// Unlock
// ---------------------------------------------------------------------------

/// `sfex unlock` on the originals' images: releasing our own stale lock
/// gives exactly the original's release bytes; another node's lock is left
/// alone (2) unless --force; an unlocked lock is a no-op (0).
#[test]
fn unlock_matches_their_release() {
    require_root();
    for sector in SECTORS {
        let (held, rel_node) = if sector == 512 {
            ("held-512-a.bin", "a")
        } else {
            ("held-4096-node-b.bin", "node-b")
        };
        let bs = sector as usize;
        let img = fixture(held);
        let dev = LoopDev::small(sector);
        let released = {
            let mut v = img.clone();
            v[bs] = b'u';
            v
        };
        if sector == 512 {
            let mut v = fixture("held-512-a.bin");
            v[bs..].copy_from_slice(&lock_block(bs, b'u', 2, b"a"));
            assert_eq!(released, v);
        }
        dev.write_blocks(0, &img);
        let r = ours_run(&["unlock", "--node", "other", dev.path_str()]);
        assert_eq!(r.code, 2, "unlock of another node's lock: {r:?}");
        assert_bytes_eq(&dev.read_blocks(0, 2), &img, "refused unlock wrote");
        let r = ours_run(&["unlock", "--node", rel_node, dev.path_str()]);
        assert_eq!(r.code, 0, "{r:?}");
        assert_bytes_eq(
            &dev.read_blocks(0, 2),
            &released,
            "unlock bytes vs the original's release",
        );
        let r = ours_run(&["unlock", "--node", rel_node, dev.path_str()]);
        assert_eq!(r.code, 0, "unlock of an unlocked lock: {r:?}");
        assert_bytes_eq(&dev.read_blocks(0, 2), &released, "second unlock wrote");
        dev.write_blocks(0, &img);
        let r = ours_run(&["unlock", "--node", "other", "--force", dev.path_str()]);
        assert_eq!(r.code, 0, "unlock --force: {r:?}");
        let lv = lock_now(&dev, 1);
        assert_eq!(
            (lv.status, lv.count),
            (b'u', 2),
            "unlock --force keeps the count: {lv}"
        );
        let (code, _, _) = orig_stat(&dev, 1, rel_node);
        assert_eq!(code, 2, "sfex_stat after unlock");
    }
}

// ---------------------------------------------------------------------------
// Mixed pair: simultaneous start
// ---------------------------------------------------------------------------

/// Ours and the original started at the same instant (small offsets either
/// way) on a free lock: exactly one ends up holding, the other exits 2, as
/// sfex_stat confirms under each hostname; the winner keeps renewing.
#[test]
fn mixed_race_simultaneous_start() {
    require_root();
    let tm = Timing::new(1, 3, 1);
    let devs = [LoopDev::small(512), LoopDev::small(4096)];
    let offsets_ms: [i64; 6] = [0, 0, 2, -2, 8, -8];
    for (i, off) in offsets_ms.iter().copied().enumerate() {
        let dev = &devs[i % 2];
        let engine = both_engines()[(i / 2) % 2];
        reinit(dev);
        let barrier = std::sync::Barrier::new(2);
        let (mut ours, mut theirs) = thread::scope(|s| {
            let t = s.spawn(|| {
                barrier.wait();
                if off < 0 {
                    sleep_ms(off.unsigned_abs());
                }
                Started::spawn(dev, &Contender::Theirs, "theirs", tm)
            });
            let o = s.spawn(|| {
                barrier.wait();
                if off > 0 {
                    sleep_ms(off.unsigned_abs());
                }
                Started::spawn(dev, &Contender::Ours(engine), "ours", tm)
            });
            (o.join().unwrap(), t.join().unwrap())
        });
        let to = secs_u(tm.t + tm.c + 10);
        let (ro, _) = ours.outcome(to);
        let (rt, _) = theirs.outcome(to);
        let what = format!(
            "round {i} ({}-byte sectors, {engine}, ours offset {off} ms): ours {ro:?}, theirs {rt:?}",
            dev.sector()
        );
        assert!(ro.is_ok() != rt.is_ok(), "exactly one must hold: {what}");
        assert!(
            ro == Err(2) || rt == Err(2),
            "the loser must exit 2: {what}"
        );
        // Let the winner renew at least once, then ask sfex_stat as each host.
        thread::sleep(secs_u(tm.m) + Duration::from_millis(500));
        let (winner, loser, w) = if ro.is_ok() {
            ("ours", "theirs", &mut ours)
        } else {
            ("theirs", "ours", &mut theirs)
        };
        assert!(w.healthy(), "winner {winner} lost the lock: {what}");
        let (cw, _, _) = orig_stat(dev, 1, winner);
        let (cl, _, _) = orig_stat(dev, 1, loser);
        assert_eq!(
            (cw, cl),
            (0, 2),
            "sfex_stat as winner {winner} / loser {loser}: {what}"
        );
        let lv = lock_now(dev, 1);
        assert_eq!(
            (lv.status, lv.name_str()),
            (b'l', winner.to_string()),
            "{what}"
        );
        eprintln!("{what}");
        w.release();
    }
}

// ---------------------------------------------------------------------------
// Takeover timing bounds
// ---------------------------------------------------------------------------

enum Holder {
    Ours(&'static str),
    Theirs,
}

enum Taker {
    Ours(&'static str),
    /// Ours with --wait, started before the holder dies.
    OursWait(&'static str),
    Theirs,
}

/// Holder renews every m; the moment W its count changes we SIGKILL it; the
/// contender's claim (its name) appears at X. Asserts
/// `t <= X - W <= t + m + SLACK`, using poll brackets so the lower bound is
/// proven (`X - W <= x.t1 - w_prev.t0`) and the upper bound is lenient only
/// by the documented slack (`X - W >= x_prev.t0 - w.t1`).
fn takeover_case(dev: &LoopDev, holder: &Holder, taker: &Taker) {
    let tm = Timing::new(1, 3, 1);
    let (t, m) = (f64::from(tm.t), f64::from(tm.m));
    reinit(dev);
    let hname = match holder {
        Holder::Ours(e) => format!("ours-{e}"),
        Holder::Theirs => "theirs".to_string(),
    };
    let tname = match taker {
        Taker::Ours(e) => format!("ours-{e}"),
        Taker::OursWait(e) => format!("ours-wait-{e}"),
        Taker::Theirs => "theirs".into(),
    };
    let what = format!(
        "{}-byte sectors, holder {hname}, contender {tname}",
        dev.sector()
    );
    let mut h = match holder {
        Holder::Ours(e) => Started::spawn(dev, &Contender::Ours(e), "holder", tm),
        Holder::Theirs => Started::spawn(dev, &Contender::Theirs, "holder", tm),
    };
    assert_eq!(
        h.outcome(Duration::from_secs(10)).0,
        Ok(()),
        "{what}: holder start"
    );

    let mut waiter = if let Taker::OursWait(e) = taker {
        let mut w = OurLock::spawn(dev, &LockArgs::new(e, "contender", tm).wait());
        // Past one full lock_timeout: it must still be waiting, not acquired.
        thread::sleep(secs_u(tm.t) + Duration::from_millis(500));
        assert!(
            !w.is_acquired() && w.try_exit().is_none(),
            "{what}: --wait gave up or took a live lock: {}",
            w.stderr()
        );
        assert_eq!(lock_now(dev, 1).name, b"holder");
        Some(w)
    } else {
        None
    };

    let mut rd = dev.reader();
    let c0 = LockView::of(&rd.read(1)).count;
    let (w_prev, w_hit) = poll_until(&mut rd, 1, POLL, secs_u(3 * tm.m), |b| {
        LockView::of(b).count != c0
    })
    .unwrap_or_else(|| panic!("{what}: holder did not renew"));
    match &mut h {
        Started::Ours(o) => o.kill9(),
        Started::Theirs(d) => d.kill9(),
    }
    let cw = LockView::of(&w_hit.block);
    assert_eq!(cw.name, b"holder");

    let mut c = match taker {
        Taker::Ours(e) => Some(Started::spawn(dev, &Contender::Ours(e), "contender", tm)),
        Taker::Theirs => Some(Started::spawn(dev, &Contender::Theirs, "contender", tm)),
        Taker::OursWait(_) => None,
    };
    let (x_prev, x_hit) = poll_until(&mut rd, 1, POLL, secs_u(tm.t + tm.m + 10), |b| {
        LockView::of(b).name == b"contender"
    })
    .unwrap_or_else(|| panic!("{what}: contender never claimed"));
    // Holder's block was unchanged between the kill and the claim.
    assert_eq!(
        LockView::of(&x_prev.block),
        cw,
        "{what}: block changed after the holder died"
    );
    assert_eq!(
        LockView::of(&x_hit.block),
        LockView::of(&lock_block(
            dev.bs(),
            b'l',
            next_count(cw.count),
            b"contender"
        )),
        "{what}: claim"
    );
    let hi = diff_secs(x_hit.t1, w_prev.t0);
    let lo = diff_secs(x_prev.t0, w_hit.t1);
    eprintln!("{what}: X - W in [{lo:.3}, {hi:.3}] s (t = {t}, m = {m})");
    assert!(
        hi >= t,
        "{what}: took over {hi:.3}s after the last renewal, before lock_timeout {t}s"
    );
    assert!(
        lo <= t + m + SLACK,
        "{what}: took over only {lo:.3}s after the last renewal, want <= t + m + {SLACK}"
    );

    // The claim is followed by the extension (count + 2).
    let (_, ext) = poll_until(
        &mut rd,
        1,
        Duration::from_millis(5),
        secs_u(tm.c + 2),
        |b| LockView::of(b).count != next_count(cw.count),
    )
    .unwrap_or_else(|| panic!("{what}: no extension write"));
    assert_eq!(
        LockView::of(&ext.block),
        LockView::of(&lock_block(
            dev.bs(),
            b'l',
            next_count(next_count(cw.count)),
            b"contender"
        )),
        "{what}: extension"
    );
    let mut won = match (c.take(), waiter.take()) {
        (Some(s), _) => s,
        (None, Some(w)) => Started::Ours(w),
        (None, None) => unreachable!(),
    };
    assert_eq!(
        won.outcome(Duration::from_secs(5)).0,
        Ok(()),
        "{what}: contender did not report success"
    );
    won.release();
}

/// Takeover bounds with our holder (sync, 512): contenders theirs, ours, ours --wait.
#[test]
fn takeover_timing_ours_sync_holds() {
    require_root();
    let dev = LoopDev::small(512);
    for taker in [Taker::Theirs, Taker::Ours("sync"), Taker::OursWait("sync")] {
        takeover_case(&dev, &Holder::Ours("sync"), &taker);
    }
}

/// Takeover bounds with our holder (uring, 4096): contenders theirs, ours, ours --wait.
#[test]
fn takeover_timing_ours_uring_holds() {
    require_root();
    let dev = LoopDev::small(4096);
    for taker in [
        Taker::Theirs,
        Taker::Ours("uring"),
        Taker::OursWait("uring"),
    ] {
        takeover_case(&dev, &Holder::Ours("uring"), &taker);
    }
}

/// Takeover bounds with their holder (512): contenders ours sync, ours --wait uring, theirs.
#[test]
fn takeover_timing_theirs_holds_512() {
    require_root();
    let dev = LoopDev::small(512);
    for taker in [Taker::Ours("sync"), Taker::OursWait("uring"), Taker::Theirs] {
        takeover_case(&dev, &Holder::Theirs, &taker);
    }
}

/// Takeover bounds with their holder (4096): contenders ours uring, ours --wait sync.
#[test]
fn takeover_timing_theirs_holds_4096() {
    require_root();
    let dev = LoopDev::small(4096);
    for taker in [Taker::Ours("uring"), Taker::OursWait("sync")] {
        takeover_case(&dev, &Holder::Theirs, &taker);
    }
}
