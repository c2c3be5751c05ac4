//! Built-in `filesystem` versus `ocf:heartbeat:Filesystem`
//! (`cargo bench --bench builtin_fs`): on one scratch loop device with ext4,
//! `--rounds N` (default 20) start+stop cycles through each, the agent run
//! through `ra`'s [`Runner`] exactly as the daemon runs it (own process
//! group, clean environment, captured output, timeout). Prints p50/p99/max
//! of start, stop and start+stop for each and the ratio of the p50s (and
//! the p99s). Each round is checked: a failed start or stop aborts the run.
//!
//! Needs root, util-linux, e2fsprogs, resource-agents (and what the agent
//! uses: psmisc, kmod).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hapair::engine::{Op, Outcome};
use hapair::runtime::builtin::filesystem::Filesystem;
use ra::{Action, Request, Runner, RunnerConfig, Verdict};

fn need(file: &str, package: &str) {
    assert!(
        Path::new(file).exists(),
        "{file} missing: install {package}"
    );
}

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Scratch {
    dir: tempfile::TempDir,
    dev: String,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.dir.path().join("mnt"), nix::mount::MntFlags::empty());
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}

#[derive(Default)]
struct Times {
    start: Vec<Duration>,
    stop: Vec<Duration>,
    cycle: Vec<Duration>,
}

/// Nearest-rank percentile (`p` in percent).
fn pct(v: &[Duration], p: usize) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    let rank = (p * s.len()).div_ceil(100).max(1);
    s[rank.min(s.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn report(name: &str, t: &Times) {
    for (what, v) in [
        ("start", &t.start),
        ("stop", &t.stop),
        ("start+stop", &t.cycle),
    ] {
        println!(
            "{name:>9} {what:<10} p50 {:>10}  p99 {:>10}  max {:>10}  (n={})",
            ms(pct(v, 50)),
            ms(pct(v, 99)),
            ms(*v.iter().max().unwrap()),
            v.len()
        );
    }
}

fn main() {
    let mut rounds = 20usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rounds" => {
                rounds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--rounds N")
            }
            "--bench" => {}
            other => panic!("unknown option {other} (known: --rounds N)"),
        }
    }
    assert!(rounds > 0, "--rounds must be positive");
    assert!(
        nix::unistd::geteuid().is_root(),
        "the benchmark needs root (loop devices, mount)"
    );
    need("/usr/sbin/losetup", "util-linux");
    need("/usr/sbin/mkfs.ext4", "e2fsprogs");
    need(
        "/usr/lib/ocf/resource.d/heartbeat/Filesystem",
        "resource-agents",
    );
    need("/usr/bin/fuser", "psmisc");

    let dir = tempfile::Builder::new()
        .prefix("hapair-bfs-bench.")
        .tempdir_in("/var/tmp")
        .unwrap();
    let img = dir.path().join("img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let dev = sh(Command::new("losetup").args(["--find", "--show"]).arg(&img))
        .trim()
        .to_string();
    let s = Scratch { dir, dev };
    sh(Command::new("mkfs.ext4").args(["-q", "-F", &s.dev]));
    let mnt: PathBuf = s.dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mnt_s = mnt.display().to_string();
    println!(
        "device {} (ext4, 64 MiB), mount point {mnt_s}, {rounds} rounds each",
        s.dev
    );

    // built-in
    let params: BTreeMap<String, String> = [
        ("device", s.dev.as_str()),
        ("directory", mnt_s.as_str()),
        ("fstype", "ext4"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let fs = Filesystem::from_params(&params).expect("parameters");
    let mut builtin = Times::default();
    for i in 0..rounds {
        let t0 = Instant::now();
        let r = fs.run(Op::Start);
        let t1 = Instant::now();
        assert_eq!(r.outcome, Outcome::Ok, "round {i}: built-in start: {r:?}");
        let r = fs.run(Op::Stop);
        let t2 = Instant::now();
        assert_eq!(r.outcome, Outcome::Ok, "round {i}: built-in stop: {r:?}");
        builtin.start.push(t1 - t0);
        builtin.stop.push(t2 - t1);
        builtin.cycle.push(t2 - t0);
    }

    // OCF agent through ra's runner, as the daemon runs it
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let runner = Runner::new(RunnerConfig {
        node_name: "bench".into(),
        ..RunnerConfig::default()
    })
    .unwrap();
    let agent: ra::Agent = "ocf:heartbeat:Filesystem".parse().unwrap();
    let req = |action: Action| {
        Request::new("fs", agent.clone(), action, Duration::from_secs(60))
            .param("device", &s.dev)
            .param("directory", &mnt_s)
            .param("fstype", "ext4")
    };
    let (start_req, stop_req) = (req(Action::Start), req(Action::Stop));
    let mut ocf = Times::default();
    for i in 0..rounds {
        let t0 = Instant::now();
        let r = rt.block_on(runner.run(&start_req)).expect("run start");
        let t1 = Instant::now();
        assert_eq!(
            r.classification.verdict,
            Verdict::Success,
            "round {i}: agent start: {r:?}"
        );
        let r = rt.block_on(runner.run(&stop_req)).expect("run stop");
        let t2 = Instant::now();
        assert_eq!(
            r.classification.verdict,
            Verdict::Success,
            "round {i}: agent stop: {r:?}"
        );
        ocf.start.push(t1 - t0);
        ocf.stop.push(t2 - t1);
        ocf.cycle.push(t2 - t0);
    }

    println!();
    report("built-in", &builtin);
    report("OCF agent", &ocf);
    let ratio = |a: &[Duration], b: &[Duration], p: usize| {
        pct(a, p).as_secs_f64() / pct(b, p).as_secs_f64().max(1e-9)
    };
    println!();
    println!(
        "start+stop: the built-in is {:.1}x faster at p50, {:.1}x at p99 (target: 10x)",
        ratio(&ocf.cycle, &builtin.cycle, 50),
        ratio(&ocf.cycle, &builtin.cycle, 99)
    );
    println!(
        "start: {:.1}x at p50; stop: {:.1}x at p50",
        ratio(&ocf.start, &builtin.start, 50),
        ratio(&ocf.stop, &builtin.stop, 50)
    );
}
