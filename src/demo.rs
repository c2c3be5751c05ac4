//! `hapair demo`: the lab demo pair (issue 8) by default, the sfex lease on
//! a scratch loop device with `--sfex-only`.
//!
//! The lab demo boots the user-mode-Linux lab (`hwtest/lab`, nodeA, nodeB,
//! nodeC), lays out the shared disk as an sfex lock area and an ext4 data
//! area, runs `hapair run` on nodeA and nodeB with the built-in
//! `filesystem` and `address` types (`--ocf`: `ocf:heartbeat:Filesystem`
//! and `IPaddr2`) and the record service, sends records from nodeC,
//! power-cuts the primary, prints the failover timeline, checks every
//! acknowledged record on the new primary and tears the lab down, also on
//! Ctrl-C or failure (see `hwtest::pair`). `--runs N` repeats the power cut
//! N times (the old primary boots again and rejoins as standby in between)
//! and prints p50/p99 of each step.
//!
//! The sfex-only demo drives the real `sfex` CLI, each command printed with
//! its output and exit code, and each expected outcome checked (the demo
//! fails loudly otherwise). Everything it creates (backing file, loop
//! device, lock processes) is removed on the way out, also on failure.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The scratch loop device and its backing file.
struct Scratch {
    file: PathBuf,
    dev: String,
    dir: PathBuf,
}

impl Scratch {
    fn new(sector: u32) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("hapair-demo-{}", std::process::id()));
        // The loop device accepts O_DIRECT whatever filesystem backs the file.
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let file = dir.join("lease.img");
        let f = fs::File::create(&file).with_context(|| format!("creating {}", file.display()))?;
        f.set_len(16 << 20).context("sizing the backing file")?;
        let out = Command::new("losetup")
            .args(["--find", "--show", "--sector-size", &sector.to_string()])
            .arg(&file)
            .output()
            .context("running losetup (is util-linux installed?)")?;
        if !out.status.success() {
            let _ = fs::remove_dir_all(&dir);
            bail!(
                "losetup failed (the demo needs root and loop devices): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Ok(Self { file, dev, dir })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
        let _ = fs::remove_file(&self.file);
        let _ = fs::remove_dir_all(&self.dir);
        println!(
            "cleaned up: detached {}, removed {}",
            self.dev,
            self.file.display()
        );
    }
}

/// A background `sfex lock`, killed on drop.
struct Holder {
    child: Child,
    node: &'static str,
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Demo {
    sfex: PathBuf,
    dev: String,
    dir: PathBuf,
    t: u32,
    start: Instant,
}

impl Demo {
    fn stamp(&self) -> String {
        format!("[{:6.1}s]", self.start.elapsed().as_secs_f64())
    }

    /// Runs `sfex ARGS`, prints it with its output, checks the exit code.
    fn run(&self, args: &[&str], want: i32, why: &str) -> Result<String> {
        println!("\n{} # {why}", self.stamp());
        println!("$ sfex {}", args.join(" "));
        let out = Command::new(&self.sfex)
            .args(args)
            .env("SFEX_LOG", "warn")
            .output()
            .with_context(|| format!("running {}", self.sfex.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        for line in stdout
            .lines()
            .chain(String::from_utf8_lossy(&out.stderr).lines())
        {
            println!("  {line}");
        }
        let code = out.status.code().unwrap_or(-1);
        println!("  (exit {code})");
        ensure!(
            code == want,
            "`sfex {}` exited {code}, expected {want}",
            args.join(" ")
        );
        Ok(stdout)
    }

    fn lock_args(&self, node: &str, pidfile: &Path) -> Vec<String> {
        vec![
            "lock".into(),
            "-i".into(),
            "1".into(),
            "-c".into(),
            "1".into(),
            "-t".into(),
            self.t.to_string(),
            "-m".into(),
            "1".into(),
            "--node".into(),
            node.into(),
            "--pidfile".into(),
            pidfile.display().to_string(),
            self.dev.clone(),
        ]
    }

    /// Starts `sfex lock` for `node` in the background and waits until it
    /// holds the lock (its pidfile appears) or exits.
    fn hold(&self, node: &'static str, why: &str) -> Result<Holder> {
        let pidfile = self.dir.join(format!("{node}.pid"));
        let _ = fs::remove_file(&pidfile);
        let args = self.lock_args(node, &pidfile);
        println!("\n{} # {why}", self.stamp());
        println!("$ sfex {} &", args.join(" "));
        let child = Command::new(&self.sfex)
            .args(&args)
            .env("SFEX_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting sfex lock")?;
        let mut h = Holder { child, node };
        let deadline = Instant::now() + Duration::from_secs(u64::from(self.t) * 2 + 10);
        while !pidfile.exists() {
            if let Some(st) = h.child.try_wait()? {
                bail!("sfex lock for {node} exited with {st} before acquiring");
            }
            ensure!(
                Instant::now() < deadline,
                "sfex lock for {node} did not acquire in time"
            );
            sleep(Duration::from_millis(50));
        }
        println!("  {} holds the lock (pid {})", node, h.child.id());
        Ok(h)
    }

    fn signal(&self, h: &mut Holder, sig: Signal) -> Result<Option<i32>> {
        let pid = Pid::from_raw(i32::try_from(h.child.id())?);
        println!(
            "\n{} # {} the lock holder {} (pid {pid})",
            self.stamp(),
            sig.as_str(),
            h.node
        );
        println!("$ kill -{} {pid}", sig.as_str().trim_start_matches("SIG"));
        kill(pid, sig).context("sending the signal")?;
        let st = h.child.wait()?;
        println!("  {} exited: {st}", h.node);
        Ok(st.code())
    }
}

/// Runs the demo on a fresh loop device with `sector`-byte sectors.
pub fn run(sector: u32, lock_timeout: u32) -> Result<()> {
    let sfex = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("sfex")))
        .filter(|p| p.exists())
        .context(
            "the sfex binary is not next to hapair: build both with `cargo build --release`",
        )?;
    let scratch = Scratch::new(sector)?;
    println!(
        "hapair demo: the sfex lease on scratch loop device {} ({sector}-byte sectors, backing file {})",
        scratch.dev,
        scratch.file.display()
    );
    let d = Demo {
        sfex,
        dev: scratch.dev.clone(),
        dir: scratch.dir.clone(),
        t: lock_timeout,
        start: Instant::now(),
    };
    let dev = d.dev.as_str();
    let t = d.t.to_string();

    d.run(
        &["init", "-n", "3", dev],
        0,
        "format the device with 3 locks (like sfex_init -n 3)",
    )?;
    d.run(
        &["init", dev],
        1,
        "a second init is refused: the device already holds sfex metadata",
    )?;
    let out = d.run(
        &["status", "-i", "1", "--node", "alpha", dev],
        2,
        "status, as sfex_stat prints it",
    )?;
    ensure!(
        out.contains("status is UNLOCKED."),
        "fresh lock should be unlocked"
    );

    let mut alpha = d.hold(
        "alpha",
        "node alpha takes lock 1 and renews it every second",
    )?;
    let out = d.run(
        &["status", "--node", "alpha", dev],
        0,
        "alpha sees the lock as its own",
    )?;
    ensure!(
        out.contains("status is LOCKED."),
        "alpha should hold the lock"
    );
    d.run(
        &["lock", "-t", &t, "-m", "1", "--node", "beta", dev],
        2,
        "node beta tries: the counter moves while it watches, so it gives up (exit 2)",
    )?;
    d.run(
        &["watch", "--count", "3", "--interval", "1s", dev],
        0,
        "watch the holder's counter move",
    )?;
    ensure!(
        d.signal(&mut alpha, Signal::SIGTERM)? == Some(0),
        "release should exit 0"
    );
    d.run(
        &["dump", "-i", "1", dev],
        0,
        "released: status u, count and name kept",
    )?;

    let mut beta = d.hold("beta", "beta now takes the free lock at once")?;
    d.signal(&mut beta, Signal::SIGKILL)?;
    let before = Instant::now();
    let alpha = d.hold(
        "alpha",
        "beta crashed (its lock stays 'l'): alpha waits lock_timeout, sees the counter stand still, takes over",
    )?;
    let took = before.elapsed();
    println!(
        "  stale takeover took {:.1}s (lock_timeout {}s + collision 1s)",
        took.as_secs_f64(),
        d.t
    );
    ensure!(
        took >= Duration::from_secs(u64::from(d.t)),
        "takeover came before lock_timeout: {took:?}"
    );
    drop(alpha); // SIGKILL: alpha's lock stays on disk, as after a crash
    println!(
        "\n{} # alpha crashed too (SIGKILL); its lock is left on disk",
        d.stamp()
    );
    d.run(
        &["unlock", "--node", "alpha", dev],
        0,
        "alpha's operator clears alpha's stale lock",
    )?;
    let out = d.run(
        &["status", "--json", "--node", "alpha", dev],
        2,
        "status --json",
    )?;
    ensure!(
        out.contains("\"status\":\"unlocked\""),
        "lock should be free after unlock"
    );
    d.run(
        &["dump", dev],
        0,
        "the whole device: control block and the 3 lock blocks",
    )?;
    println!(
        "\n{} demo done: init, status, lock, refusal of a second node, release, crash and stale \
         takeover, unlock and dump all behaved as expected.",
        d.stamp()
    );
    Ok(())
}

/// `hapair demo` options.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Only the sfex lease on a scratch loop device (the first demo; no lab).
    #[arg(long)]
    sfex_only: bool,
    /// --sfex-only: logical sector size of the scratch loop device (512 or 4096).
    #[arg(long, default_value_t = 512, value_parser = parse_sector)]
    sector_size: u32,
    /// --sfex-only: lock_timeout in seconds for the demo locks (the stale takeover waits this long).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(2..=60))]
    lock_timeout: u32,
    /// Run the filesystem and the address with the OCF agents
    /// (ocf:heartbeat:Filesystem, IPaddr2) instead of the built-ins.
    #[arg(long)]
    ocf: bool,
    /// The data on real DRBD (r0 replicated over the repl link, promoted by
    /// hapair's `drbd` resource, DRBD fencing through `hapair fence-peer`)
    /// instead of a shared disk.
    #[arg(long)]
    drbd: bool,
    /// Power-cut the primary this many times (the old primary boots and
    /// rejoins as standby in between) and print p50/p99 of each step.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    runs: u32,
    /// The side-by-side benchmark: the same DRBD stack, address, record
    /// service and client, first under hapair, then under Pacemaker +
    /// Corosync (token 1000 ms) in the same lab, `--runs` power cuts each;
    /// prints both stacks' failover steps, processes, memory and idle CPU
    /// (implies --drbd; guests get 512 MiB).
    #[arg(long)]
    versus_pacemaker: bool,
    /// The record service inside the lab guests (serve, client, agent).
    #[arg(long, hide = true, num_args = 1.., allow_hyphen_values = true)]
    record: Option<Vec<String>>,
}

fn parse_sector(s: &str) -> Result<u32, String> {
    match s {
        "512" => Ok(512),
        "4096" => Ok(4096),
        _ => Err(format!(
            "{s}: the loop device's sector size must be 512 or 4096"
        )),
    }
}

/// Runs `hapair demo`.
pub fn main(args: DemoArgs) -> Result<()> {
    if let Some(r) = &args.record {
        std::process::exit(hwtest::record::main_args(r));
    }
    if args.sfex_only {
        return run(args.sector_size, args.lock_timeout);
    }
    lab_demo(&args)
}

use std::sync::{Arc, Mutex};

use hwtest::pair::{Failover, Flavor, Pair, PairOptions, other, percentiles};

/// Ctrl-C / SIGTERM: tear the lab down and exit 130. Before the lab exists
/// the flag makes the main thread tear it down as soon as it is up.
fn on_interrupt(
    handle: Arc<Mutex<Option<hwtest::DownHandle>>>,
    flag: Arc<std::sync::atomic::AtomicBool>,
) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return;
            };
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        });
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
        let h = handle.lock().ok().and_then(|h| h.clone());
        if let Some(h) = h {
            eprintln!("\ninterrupted: tearing the lab down");
            if let Err(e) = h.down() {
                eprintln!("teardown: {e}");
            }
            std::process::exit(130);
        }
        eprintln!("\ninterrupted: the lab is still booting; it is torn down once up");
    });
}

fn lab_demo(args: &DemoArgs) -> Result<()> {
    let hapair = std::env::current_exe().context("the hapair binary's path")?;
    let sfex = hapair.with_file_name("sfex");
    ensure!(
        sfex.is_file(),
        "{} is missing: the lab demo runs the sfex CLI in the guests; build it with `cargo build --release`",
        sfex.display()
    );
    ensure!(
        nix::unistd::geteuid().is_root(),
        "the lab demo needs root (network namespace, taps, user-mode-Linux guests)"
    );
    let handle = Arc::new(Mutex::new(None));
    let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
    on_interrupt(Arc::clone(&handle), Arc::clone(&flag));
    let flavor = if args.ocf {
        Flavor::Ocf
    } else {
        Flavor::Builtin
    };
    println!(
        "hapair lab demo: two user-mode-Linux nodes on a shared disk, {} filesystem and address, a record service, a power cut",
        if args.ocf {
            "OCF agents for the"
        } else {
            "built-in"
        }
    );
    let pair = Pair::up(PairOptions {
        hapair: hapair.clone(),
        sfex,
        record: (hapair, vec!["demo".into(), "--record".into()]),
        flavor,
        client_node: true,
        verbose: true,
        drbd: args.drbd || args.versus_pacemaker,
        // corosync alone is ~170 MiB (mlockall): 256 MiB guests OOM it
        mem: args.versus_pacemaker.then(|| "512M".to_owned()),
    })?;
    if let Ok(mut h) = handle.lock() {
        *h = Some(pair.lab.down_handle());
    }
    ensure!(
        !flag.load(std::sync::atomic::Ordering::SeqCst),
        "interrupted"
    );
    let result = if args.versus_pacemaker {
        crate::versus::run(&pair, args.runs, args.ocf)
    } else {
        drive(&pair, args)
    };
    if let Err(e) = &result {
        println!("FAILED: {e:#}");
        println!(
            "--- nodeA log (tail)\n{}",
            hwtest::pair::tail(&pair.log(hwtest::Node::A), 15)
        );
        println!(
            "--- nodeB log (tail)\n{}",
            hwtest::pair::tail(&pair.log(hwtest::Node::B), 15)
        );
    }
    println!("tearing the lab down");
    pair.lab.down()?;
    result
}

fn ms(v: Option<u64>) -> String {
    v.map_or_else(|| "     -".into(), |v| format!("{v:6}"))
}

fn drive(pair: &Pair, args: &DemoArgs) -> Result<()> {
    let t = Instant::now();
    pair.start_daemons()?;
    let mut primary = pair.wait_primary(Duration::from_secs(90))?;
    println!(
        "{primary} runs the stack ({:.1}s): lease on /dev/ubdb1, {}ext4 on {}, {}/24 on vec0, record service on :{}",
        t.elapsed().as_secs_f64(),
        if args.drbd { "DRBD r0 Primary, " } else { "" },
        hwtest::pair::DATA_DIR,
        hwtest::pair::VIP,
        hwtest::pair::PORT
    );
    let s = pair.check_safety()?;
    println!(
        "safety: lease holder {:?}, read-write mounts {:?}",
        s.holder, s.rw_mounts
    );
    let client = pair.start_client()?;
    let a = pair.wait_acks(&client, 20, Duration::from_secs(30))?;
    println!(
        "nodeC client: {} records acknowledged so far (each after fdatasync on the {} filesystem); log {}",
        a.len(),
        if args.drbd { "replicated" } else { "shared" },
        client.display()
    );
    sleep(Duration::from_secs(2));
    let mut runs: Vec<Failover> = Vec::new();
    for run in 1..=args.runs {
        if args.runs > 1 {
            println!("=== run {run}/{}", args.runs);
        }
        let before = hwtest::pair::acks(&client).len();
        println!("{before} records acknowledged before the cut");
        let f = pair.power_cut(primary, &client, Duration::from_secs(60), false)?;
        let survivor = other(primary);
        print_failover(&f, survivor);
        let s = pair.check_safety()?;
        ensure!(
            s.rw_mounts == vec![survivor] && s.holder.as_deref() == Some(survivor.name()),
            "after the failover: {s:?}"
        );
        pair.wait_acks(&client, 10, Duration::from_secs(20))?;
        let (acked, lost) = pair.verify_records(&client, survivor)?;
        println!(
            "checked on {survivor}: {acked} acknowledged records, {} missing from {}/records.log",
            lost.len(),
            hwtest::pair::DATA_DIR
        );
        ensure!(lost.is_empty(), "acknowledged records lost: {lost:?}");
        runs.push(f);
        if run < args.runs {
            rejoin(pair, primary, survivor, args.drbd)?;
        }
        primary = survivor;
    }
    if args.runs > 1 {
        print_summary(&mut runs, args.ocf, args.drbd);
    }
    let (acked, lost) = pair.verify_records(&client, primary)?;
    println!("{acked} records acknowledged, {} lost", lost.len());
    ensure!(lost.is_empty(), "acknowledged records lost");
    Ok(())
}

/// Powers the old primary on again and starts its daemon; waits until the
/// survivor sees it alive (it joins as standby).
pub(crate) fn rejoin(
    pair: &Pair,
    node: hwtest::Node,
    survivor: hwtest::Node,
    drbd: bool,
) -> Result<()> {
    let t = Instant::now();
    let rc = pair.lab.power(hwtest::PowerAction::On, node)?;
    ensure!(rc == 0, "power on {node}: rc {rc}");
    pair.prepare(node)?;
    let log_len = pair.log(survivor).len();
    pair.start_daemon(node)?;
    let alive = format!("{node} is alive");
    while !pair.log(survivor)[log_len..].contains(&alive) {
        ensure!(
            t.elapsed() < Duration::from_secs(60),
            "{node} did not rejoin within 60 s"
        );
        pair.check_safety()?;
        sleep(Duration::from_millis(100));
    }
    sleep(Duration::from_secs(2));
    let s = pair.check_safety()?;
    ensure!(
        s.rw_mounts == vec![survivor],
        "after the rejoin of {node}: {s:?}"
    );
    println!(
        "{node} powered on and rejoined as standby in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    if drbd {
        // the next power cut must find the survivor's peer UpToDate again:
        // a cut during the resync leaves only the outdated copy
        // a resync under the client's synchronous writes crawls in the
        // guests (~0.4 MB/s: every record is a flush on both nodes' disk
        // files), so the client pauses until both copies are UpToDate
        pair.lab
            .run_ok(hwtest::Node::C, "pkill -STOP -f ' client --to '")?;
        println!("  client paused (SIGSTOP) while DRBD resyncs");
        let t = Instant::now();
        let mut last = String::new();
        loop {
            // one read of /proc/drbd per 2 s (forks are dear in the guests)
            let st = pair.lab.run_ok(survivor, "cat /proc/drbd")?;
            if st.contains("cs:Connected") && st.contains("ds:UpToDate/UpToDate") {
                break;
            }
            let now = st
                .lines()
                .filter(|l| l.contains("cs:") || l.contains("sync'ed") || l.contains("finish"))
                .map(str::trim)
                .collect::<Vec<_>>()
                .join("; ");
            if now != last {
                println!("  DRBD r0 on {survivor}: {now}");
                last = now;
            }
            ensure!(
                t.elapsed() < Duration::from_secs(180),
                "DRBD r0 not UpToDate on both nodes 180 s after the rejoin:\n{st}"
            );
            sleep(Duration::from_secs(2));
        }
        pair.lab
            .run_ok(hwtest::Node::C, "pkill -CONT -f ' client --to '")?;
        println!(
            "DRBD r0 resynced, UpToDate on both nodes, {:.1}s later; client resumed",
            t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

fn print_failover(f: &Failover, survivor: hwtest::Node) {
    let victim = f.victim.map_or("?", |v| v.name());
    println!(
        "failover timeline, ms after the power cut of {victim} ({survivor}'s daemon: {}):",
        f.timeline
    );
    for (name, at) in &f.steps {
        let what = match name.as_str() {
            "detect" => "peer dead: no heartbeat on lan nor repl",
            "fence" => "fence_lab: power switch confirmed off",
            "lease" => "sfex lease acquired",
            "mount" => "ext4 data area mounted",
            "address" => "10.88.0.100 up (gratuitous ARP sent)",
            "service" => "record service listening",
            "promote" => "DRBD promoted",
            _ => "",
        };
        println!("  {name:<8} +{at:6} ms  {what}");
    }
    if let Some(fm) = f.fence_ms {
        println!("  (power switch log: {victim} off done +{fm} ms)");
    }
    println!(
        "  client   +{:6} ms  nodeC served again (first ack on a new connection)",
        f.served_ms
    );
}

fn print_summary(runs: &mut [Failover], ocf: bool, drbd: bool) {
    let n = runs.len();
    println!(
        "=== {n} power cuts, {}{}: p50 / p99 (ms after the power cut)",
        if drbd { "DRBD, " } else { "" },
        if ocf {
            "OCF Filesystem + IPaddr2"
        } else {
            "built-in filesystem + address"
        }
    );
    let mut names: Vec<String> = Vec::new();
    for f in runs.iter() {
        for (s, _) in &f.steps {
            if !names.contains(s) {
                names.push(s.clone());
            }
        }
    }
    let row = |name: &str, mut v: Vec<u64>| {
        let got = v.len();
        if let Some((p50, p99)) = percentiles(&mut v) {
            println!(
                "  {name:<16} {} / {}   ({got} runs)",
                ms(Some(p50)),
                ms(Some(p99))
            );
        }
    };
    for name in &names {
        row(
            name,
            runs.iter()
                .filter_map(|f| f.steps.iter().find(|(s, _)| s == name).map(|s| s.1))
                .collect(),
        );
    }
    row(
        "fence confirmed",
        runs.iter().filter_map(|f| f.fence_ms).collect(),
    );
    row("client served", runs.iter().map(|f| f.served_ms).collect());
    // each step's share: the gap from the previous step, p50
    let mut prev_name = "power cut".to_string();
    let mut order = names.clone();
    order.push("client".into());
    println!("  step shares (p50 of the gap to the previous step):");
    for name in &order {
        let mut gaps: Vec<u64> = runs
            .iter()
            .filter_map(|f| {
                let at = |s: &str| {
                    if s == "client" {
                        Some(f.served_ms)
                    } else if s == "power cut" {
                        Some(0)
                    } else {
                        f.steps.iter().find(|(x, _)| x == s).map(|x| x.1)
                    }
                };
                Some(at(name)?.saturating_sub(at(&prev_name)?))
            })
            .collect();
        if let Some((p50, _)) = percentiles(&mut gaps) {
            println!("    {prev_name} -> {name}: {p50} ms");
        }
        prev_name.clone_from(name);
    }
}
