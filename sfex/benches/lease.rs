//! Latency of one sfex lease renewal against the raw cost of the disk I/O it
//! needs, on real block devices (loop devices over a sparse file in
//! /var/tmp), for 512- and 4096-byte logical sectors.
//!
//! Run with `cargo bench -p sfex --bench lease` (as root: it attaches loop
//! devices). `SFEX_BENCH_ITERS` sets the measured iterations per series
//! (default 2000); a warm-up of a tenth of that (10..=200) comes first.
//!
//! Measured, interleaved round-robin so that every series sees the same disk
//! conditions:
//! - **raw**: one `O_DIRECT|O_SYNC` block `pwrite` + `pread` on a std `File`,
//!   with an aligned window into a plain `Vec<u8>` (no `unsafe` here);
//! - **sync / uring**: one full renewal through the real [`Lease`] machine and
//!   [`Device`]: `Timer` -> `Read` -> `read_block` + `decode_lock` ->
//!   `ReadDone` -> `Write` -> `encode_lock` + `write_block` -> `WriteDone` ->
//!   `Renewed`. Any other outcome panics: only real renewals are measured.
//!
//! The machine gets a fake monotonic clock advanced by `monitor_interval` per
//! renewal, so every `Timer` is due. This is a report, not a test: it asserts
//! no timing, and prints PASS/MISS for the target "lease update p99 <= 2x raw
//! write+read p99". It exits non-zero only when something failed.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use sfex::dev::{BlockIo, Device, EngineKind};
use sfex::format::{self, NodeName};
use sfex::lease::{Action, Config, Event, Input, IoFailure, Lease, Millis};

type Res<T> = Result<T, String>;

/// Size of each scratch device: plenty for 3 locks plus the raw block.
const DEV_SIZE: u64 = 1 << 20;
/// Lock blocks used by the two engines; the raw series uses block `RAW_BLOCK`.
const SYNC_LOCK: u32 = 1;
const URING_LOCK: u32 = 2;
const NUMLOCKS: u32 = 2;
const RAW_BLOCK: u64 = 3;
/// Alignment of the raw buffer (page size and the largest sector tested).
const ALIGN: usize = 4096;

// ---------------------------------------------------------------------------
// Scratch loop device

/// A loop device over a sparse file in /var/tmp (disk-backed, not tmpfs),
/// detached on drop, which also runs while a panic unwinds (cargo builds
/// benches with `panic = "unwind"` whatever the release profile says).
struct LoopDev {
    path: PathBuf,
    // Dropped (deleted) after `drop` has detached the device.
    _backing: tempfile::NamedTempFile,
}

impl LoopDev {
    fn new(sector: u32) -> Res<LoopDev> {
        let backing = tempfile::Builder::new()
            .prefix("sfex-bench.")
            .suffix(".img")
            .tempfile_in("/var/tmp")
            .map_err(|e| format!("create backing file in /var/tmp: {e}"))?;
        backing
            .as_file()
            .set_len(DEV_SIZE)
            .map_err(|e| format!("size backing file: {e}"))?;
        let out = Command::new("losetup")
            .args(["--find", "--show", "--sector-size", &sector.to_string()])
            .arg(backing.path())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("run losetup: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "losetup --find --show --sector-size {sector} failed ({}): {} \
                 (the bench needs root for loop devices)",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let printed = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !printed.starts_with("/dev/loop") {
            return Err(format!("losetup printed {printed:?}, not a loop device"));
        }
        Ok(LoopDev {
            path: PathBuf::from(printed),
            _backing: backing,
        })
    }
}

impl Drop for LoopDev {
    fn drop(&mut self) {
        for _ in 0..10 {
            let ok = Command::new("losetup")
                .arg("-d")
                .arg(&self.path)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("warning: could not detach {}", self.path.display());
    }
}

// ---------------------------------------------------------------------------
// Series

/// Raw O_DIRECT|O_SYNC write + read of one block, no sfex code involved.
struct Raw {
    file: File,
    buf: Vec<u8>,
    start: usize,
    bs: usize,
    offset: u64,
    path: PathBuf,
}

impl Raw {
    fn open(path: &Path, bs: usize) -> Res<Raw> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_DIRECT | libc::O_SYNC)
            .open(path)
            .map_err(|e| format!("open {} O_DIRECT|O_SYNC: {e}", path.display()))?;
        let mut buf = vec![0u8; bs + ALIGN];
        let start = buf.as_ptr().align_offset(ALIGN);
        if start > ALIGN {
            return Err("cannot align the raw buffer".into());
        }
        for (i, b) in buf[start..start + bs].iter_mut().enumerate() {
            *b = u8::try_from(i % 251).unwrap_or(0);
        }
        Ok(Raw {
            file,
            buf,
            start,
            bs,
            offset: RAW_BLOCK * bs as u64,
            path: path.to_owned(),
        })
    }

    fn once(&mut self) -> Res<Duration> {
        let window = self.start..self.start + self.bs;
        let t0 = Instant::now();
        let w = self
            .file
            .write_at(&self.buf[window.clone()], self.offset)
            .map_err(|e| format!("raw pwrite on {}: {e}", self.path.display()))?;
        let r = self
            .file
            .read_at(&mut self.buf[window], self.offset)
            .map_err(|e| format!("raw pread on {}: {e}", self.path.display()))?;
        let took = t0.elapsed();
        if w != self.bs || r != self.bs {
            return Err(format!(
                "raw short transfer: wrote {w}, read {r} of {} bytes",
                self.bs
            ));
        }
        Ok(took)
    }
}

/// One lease held through the real machine on its own lock block.
struct Renewer {
    dev: Device,
    lease: Lease,
    index: u32,
    bs: usize,
    now: Millis,
    count: i32,
}

fn bench_config() -> Config {
    Config {
        node: NodeName::new("sfex-bench").expect("valid node name"),
        lock_timeout: Millis(1000),
        collision_timeout: Millis(1),
        monitor_interval: Millis(10),
        margin: Millis(1),
        retry_interval: Millis(1),
        wait: false,
        max_io: None,
    }
}

impl Renewer {
    fn read_lock(dev: &mut Device, index: u32) -> Res<Result<format::LockBlock, IoFailure>> {
        let blk = dev
            .read_block(u64::from(index))
            .map_err(|e| format!("read lock {index}: {e}"))?;
        Ok(format::decode_lock(&blk).map_err(|e| IoFailure::corrupt(e.to_string())))
    }

    fn write_lock(dev: &mut Device, index: u32, lb: &format::LockBlock, bs: usize) -> Res<()> {
        dev.write_block(u64::from(index), &format::encode_lock(lb, bs))
            .map_err(|e| format!("write lock {index}: {e}"))
    }

    /// Opens the device with `kind` and acquires lock `index` through the
    /// machine, jumping the fake clock to each wake-up it asks for.
    fn acquire(path: &Path, kind: EngineKind, index: u32) -> Res<Renewer> {
        let mut dev = Device::open(path, kind).map_err(|e| e.to_string())?;
        let bs = dev.sector_size() as usize;
        let cfg = bench_config();
        cfg.validate().map_err(|e| e.to_string())?;
        let mut lease = Lease::new(cfg);
        let mut now = Millis(0);
        let mut input = Input::Start;
        let count = 'acq: loop {
            let mut next = None;
            for action in lease.step(now, input) {
                match action {
                    Action::Read => next = Some(Input::ReadDone(Self::read_lock(&mut dev, index)?)),
                    Action::Write(lb) => {
                        Self::write_lock(&mut dev, index, &lb, bs)?;
                        next = Some(Input::WriteDone(Ok(())));
                    }
                    Action::Event(Event::Acquired { count, .. }) => break 'acq count,
                    Action::Event(ev) => {
                        return Err(format!("acquiring lock {index} ({kind}): {ev:?}"));
                    }
                }
            }
            input = match next {
                Some(i) => i,
                None => {
                    let wake = lease
                        .next_wake()
                        .ok_or_else(|| format!("acquiring lock {index}: machine stalled"))?;
                    now = now.max(wake);
                    Input::Timer
                }
            };
        };
        Ok(Renewer {
            dev,
            lease,
            index,
            bs,
            now,
            count,
        })
    }

    /// One renewal, timed from the timer input to the `Renewed` event.
    fn once(&mut self) -> Res<Duration> {
        // The machine scheduled the renewal at last write + monitor_interval.
        self.now = self.now.plus(self.lease.config().monitor_interval);
        let now = self.now;
        let t0 = Instant::now();
        let acts = self.lease.step(now, Input::Timer);
        assert_eq!(
            acts,
            [Action::Read],
            "timer at {now} did not start a renewal"
        );
        let read = Self::read_lock(&mut self.dev, self.index)?;
        let acts = self.lease.step(now, Input::ReadDone(read));
        let [Action::Write(lb)] = acts.as_slice() else {
            panic!("renewal read did not lead to a write: {acts:?}");
        };
        Self::write_lock(&mut self.dev, self.index, lb, self.bs)?;
        let acts = self.lease.step(now, Input::WriteDone(Ok(())));
        let took = t0.elapsed();
        let want = format::next_count(self.count);
        match acts.as_slice() {
            [Action::Event(Event::Renewed { count, .. })] if *count == want => {
                self.count = *count;
            }
            other => panic!("renewal did not end in Renewed {{ count: {want} }}: {other:?}"),
        }
        Ok(took)
    }
}

// ---------------------------------------------------------------------------
// Statistics and report

#[derive(Clone, Copy)]
struct Stats {
    p50: f64,
    p99: f64,
    mean: f64,
}

fn stats(samples: &[Duration]) -> Stats {
    let mut us: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e6).collect();
    us.sort_by(f64::total_cmp);
    // nearest-rank percentile
    let pct = |p: usize| us[(p * us.len()).div_ceil(100).clamp(1, us.len()) - 1];
    Stats {
        p50: pct(50),
        p99: pct(99),
        mean: us.iter().sum::<f64>() / us.len() as f64,
    }
}

fn env_iters() -> Res<usize> {
    match std::env::var("SFEX_BENCH_ITERS") {
        Err(_) => Ok(2000),
        Ok(s) => match s.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("SFEX_BENCH_ITERS={s:?}: need a positive integer")),
        },
    }
}

struct Verdict {
    sector: u32,
    engine: String,
    ratio: f64,
    pass: bool,
}

fn bench_sector(sector: u32, iters: usize, verdicts: &mut Vec<Verdict>) -> Res<()> {
    let loopdev = LoopDev::new(sector)?;
    let path = loopdev.path.clone();
    {
        let mut dev = Device::open(&path, EngineKind::Sync).map_err(|e| e.to_string())?;
        if dev.sector_size() != sector {
            return Err(format!(
                "{} reports sector size {}, asked for {sector}",
                path.display(),
                dev.sector_size()
            ));
        }
        sfex::ops::init(&mut dev, &path, NUMLOCKS, false)
            .map_err(|e| format!("sfex init {}: {e}", path.display()))?;
    }
    let mut raw = Raw::open(&path, sector as usize)?;
    let mut engines = [
        Renewer::acquire(&path, EngineKind::Sync, SYNC_LOCK)?,
        Renewer::acquire(&path, EngineKind::Uring, URING_LOCK)?,
    ];

    let warmup = (iters / 10).clamp(10, 200);
    let mut samples: [Vec<Duration>; 3] = std::array::from_fn(|_| Vec::with_capacity(iters));
    for i in 0..warmup + iters {
        // round-robin, rotating which series goes first
        for k in 0..3 {
            let series = (i + k) % 3;
            let took = match series {
                0 => raw.once()?,
                s => engines[s - 1].once()?,
            };
            if i >= warmup {
                samples[series].push(took);
            }
        }
    }

    let raw_s = stats(&samples[0]);
    println!();
    println!(
        "== {sector}-byte sectors: {} ({} MiB sparse file in /var/tmp), {iters} iterations after {warmup} warm-up ==",
        path.display(),
        DEV_SIZE >> 20
    );
    println!(
        "{:<22} {:>9} {:>9} {:>9} {:>10} {:>10}",
        "series", "p50 µs", "p99 µs", "mean µs", "p50/raw", "p99/raw"
    );
    println!(
        "{:<22} {:>9.1} {:>9.1} {:>9.1} {:>10} {:>10}",
        "raw pwrite+pread", raw_s.p50, raw_s.p99, raw_s.mean, "-", "-"
    );
    for (r, s) in engines.iter().zip(&samples[1..]) {
        let st = stats(s);
        let ran = r.dev.engine();
        let label = format!("lease {ran} (lock {})", r.index);
        let p99_ratio = st.p99 / raw_s.p99;
        println!(
            "{:<22} {:>9.1} {:>9.1} {:>9.1} {:>9.2}x {:>9.2}x",
            label,
            st.p50,
            st.p99,
            st.mean,
            st.p50 / raw_s.p50,
            p99_ratio
        );
        if let Some(why) = r.dev.fallback_reason() {
            println!("  note: uring asked for, sync ran: {why}");
        }
        verdicts.push(Verdict {
            sector,
            engine: ran.to_string(),
            ratio: p99_ratio,
            pass: p99_ratio <= 2.0,
        });
    }
    let requested: Vec<String> = [EngineKind::Sync, EngineKind::Uring]
        .iter()
        .zip(&engines)
        .map(|(k, r)| format!("{k} -> {}", r.dev.engine()))
        .collect();
    println!("engines (requested -> ran): {}", requested.join(", "));
    // Devices close before the guard detaches the loop device.
    drop(engines);
    drop(raw);
    drop(loopdev);
    Ok(())
}

fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:").map(|v| v.trim().to_owned()))
        })
        .unwrap_or_else(|| "unknown".into())
}

fn run() -> Res<()> {
    let iters = env_iters()?;
    println!(
        "sfex lease-update benchmark ({iters} iterations per series; SFEX_BENCH_ITERS to change)"
    );
    let mut verdicts = Vec::new();
    for sector in [512, 4096] {
        bench_sector(sector, iters, &mut verdicts)?;
    }
    println!();
    let line: Vec<String> = verdicts
        .iter()
        .map(|v| {
            format!(
                "{}/{} {} ({:.2}x)",
                v.sector,
                v.engine,
                if v.pass { "PASS" } else { "MISS" },
                v.ratio
            )
        })
        .collect();
    println!(
        "target \"lease update p99 <= 2x raw write+read p99\": {}",
        line.join(", ")
    );
    println!("peak RSS (VmHWM): {}", peak_rss());
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lease bench error: {e}");
            ExitCode::FAILURE
        }
    }
}
