//! `hapair demo`: the sfex lease end to end on a scratch loop device, driven
//! through the real `sfex` CLI, each command printed with its output and exit
//! code, and each expected outcome checked (the demo fails loudly otherwise).
//! Everything it creates (backing file, loop device, lock processes) is
//! removed on the way out, also on failure.

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
