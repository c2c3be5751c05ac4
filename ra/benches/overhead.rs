//! The runner's own overhead per action against the agent's own run time,
//! for `ocf:heartbeat:Dummy monitor` (Debian's resource-agents).
//!
//! Run with `cargo bench -p ra --bench overhead`. `RA_BENCH_ITERS` sets the
//! measured iterations (default 1000) after a warm-up of 50.
//!
//! Series, interleaved round-robin so every series sees the same machine
//! conditions:
//! - **agent alone**: `std::process::Command` with the same environment,
//!   stdio to /dev/null, `status()`: the least any runner can do, so its
//!   wall time is the agent's own run time (fork/exec included);
//! - **ra runner**: `Runner::run` on a current-thread tokio runtime, as the
//!   CLI runs it: environment built from the request, agent file checked,
//!   own process group, pipes captured through the bounded buffers, exit
//!   reason scanned, result classified;
//! - the same pair with a no-op agent (`/bin/true` linked in as an OCF
//!   agent), where the agent's variance is tiny and the difference is the
//!   runner's alone.
//!
//! Overhead = runner − agent alone: the difference of the medians, the
//! median and p99 of the per-iteration paired differences, and the mean
//! with its 95 % interval. Also the runner's own timing breakdown
//! (`Timing`: prepare, spawn, drain, elapsed − run). Target: under 1 ms of
//! overhead per action. A report, not a test: it exits non-zero only when
//! something failed.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use ra::{Action, Agent, Request, Runner, RunnerConfig};

const DUMMY: &str = "/usr/lib/ocf/resource.d/heartbeat/Dummy";

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The `permille`-th quantile (nearest rank) of sorted values.
fn pct(sorted: &[f64], permille: usize) -> f64 {
    sorted[((sorted.len() - 1) * permille + 500) / 1000]
}

struct Stats {
    p50: f64,
    p99: f64,
    mean: f64,
    sd: f64,
}

fn stats(v: &[f64]) -> Stats {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len() as f64;
    let mean = s.iter().sum::<f64>() / n;
    let var = s.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    Stats {
        p50: pct(&s, 500),
        p99: pct(&s, 990),
        mean,
        sd: var.sqrt(),
    }
}

/// One agent measured both ways.
struct Pair {
    name: &'static str,
    baseline: Vec<f64>,
    runner: Vec<f64>,
    prepare: Vec<f64>,
    spawn: Vec<f64>,
    drain: Vec<f64>,
    own: Vec<f64>,
}

impl Pair {
    fn new(name: &'static str) -> Pair {
        Pair {
            name,
            baseline: Vec::new(),
            runner: Vec::new(),
            prepare: Vec::new(),
            spawn: Vec::new(),
            drain: Vec::new(),
            own: Vec::new(),
        }
    }

    fn report(&self) -> (f64, f64) {
        let b = stats(&self.baseline);
        let r = stats(&self.runner);
        let diffs: Vec<f64> = self
            .runner
            .iter()
            .zip(&self.baseline)
            .map(|(r, b)| r - b)
            .collect();
        let d = stats(&diffs);
        let ci = 1.96 * d.sd / (diffs.len() as f64).sqrt();
        println!("\n{} ({} iterations)", self.name, self.baseline.len());
        println!("  {:44} {:>10} {:>10}", "series", "p50 µs", "p99 µs");
        println!(
            "  {:44} {:>10.1} {:>10.1}",
            "agent alone (std::process::Command)", b.p50, b.p99
        );
        println!(
            "  {:44} {:>10.1} {:>10.1}",
            "ra runner (Runner::run)", r.p50, r.p99
        );
        println!(
            "  {:44} {:>10.1} {:>10.1}",
            "overhead, paired (runner - agent alone)", d.p50, d.p99
        );
        for (name, v) in [
            ("  runner: prepare (env, agent file check)", &self.prepare),
            ("  runner: spawn call", &self.spawn),
            ("  runner: drain after exit", &self.drain),
            (
                "  runner: elapsed - agent run (Timing::overhead)",
                &self.own,
            ),
        ] {
            let s = stats(v);
            println!("  {name:44} {:>10.1} {:>10.1}", s.p50, s.p99);
        }
        let median_diff = r.p50 - b.p50;
        println!(
            "  overhead: median(runner) - median(agent) = {median_diff:.1} µs; mean paired {:.1} µs ± {ci:.1} (95 %)",
            d.mean
        );
        (median_diff, d.mean + ci)
    }
}

fn main() -> ExitCode {
    match run() {
        // PASS or MISS is printed; only a failure to measure is an error.
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<bool, String> {
    if !Path::new(DUMMY).exists() {
        return Err(format!(
            "{DUMMY} is missing: install the Debian package resource-agents"
        ));
    }
    let iters: usize = std::env::var("RA_BENCH_ITERS")
        .ok()
        .map(|v| v.parse().map_err(|_| format!("RA_BENCH_ITERS={v:?}")))
        .transpose()?
        .unwrap_or(1000);
    let warmup = 50;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    // A scratch OCF root: Debian's agents plus `true` as a no-op agent.
    let root = dir.path().join("ocf");
    std::fs::create_dir_all(root.join("resource.d/bench")).map_err(|e| e.to_string())?;
    symlink("/usr/lib/ocf/lib", root.join("lib")).map_err(|e| e.to_string())?;
    symlink(
        "/usr/lib/ocf/resource.d/heartbeat",
        root.join("resource.d/heartbeat"),
    )
    .map_err(|e| e.to_string())?;
    symlink("/bin/true", root.join("resource.d/bench/true")).map_err(|e| e.to_string())?;

    let cfg = RunnerConfig {
        ocf_root: root.clone(),
        node_name: "bench".into(),
        ..RunnerConfig::default()
    };
    let runner = Runner::new(cfg.clone()).map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let state = dir.path().join("bench.state").display().to_string();
    let dummy: Agent = "ocf:heartbeat:Dummy"
        .parse()
        .map_err(|e: ra::Error| e.to_string())?;
    let t20 = Duration::from_secs(20);
    // Start Dummy so that the monitor finds it running (rc 0).
    let start = Request::new("bench", dummy.clone(), Action::Start, t20).param("state", &state);
    let r = rt.block_on(runner.run(&start)).map_err(|e| e.to_string())?;
    if !r.is_success() {
        return Err(format!("Dummy start failed: {r:?}"));
    }
    let requests = [
        (
            "ocf:heartbeat:Dummy monitor (interval 10s, running)",
            Request::new("bench", dummy, Action::Monitor, t20)
                .interval(Duration::from_secs(10))
                .param("state", &state),
        ),
        (
            "no-op agent (/bin/true as ocf:bench:true monitor)",
            Request::new(
                "bench",
                "ocf:bench:true"
                    .parse()
                    .map_err(|e: ra::Error| e.to_string())?,
                Action::Monitor,
                t20,
            )
            .interval(Duration::from_secs(10)),
        ),
    ];
    let mut pairs: Vec<Pair> = Vec::new();
    let mut prepared = Vec::new();
    for (name, req) in &requests {
        pairs.push(Pair::new(name));
        let env = ra::env::build(req, &cfg.base_env, &cfg.ocf_root, &cfg.node_name)
            .map_err(|e| e.to_string())?;
        let path = runner.agent_path(&req.agent).ok_or("no path")?;
        prepared.push((env, path));
    }

    for i in 0..warmup + iters {
        for (k, (_, req)) in requests.iter().enumerate() {
            let (env, path) = &prepared[k];
            // The agent alone.
            let t = Instant::now();
            let st = Command::new(path)
                .arg(req.action.as_str())
                .env_clear()
                .envs(env)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map_err(|e| e.to_string())?;
            let baseline = t.elapsed();
            if !st.success() {
                return Err(format!("{path:?} monitor: {st}"));
            }
            // Through the runner.
            let t = Instant::now();
            let r = rt.block_on(runner.run(req)).map_err(|e| e.to_string())?;
            let total = t.elapsed();
            if !r.is_success() {
                return Err(format!("runner: {r:?}"));
            }
            if i >= warmup {
                let p = &mut pairs[k];
                p.baseline.push(us(baseline));
                p.runner.push(us(total));
                p.prepare.push(us(r.timing.prepare));
                p.spawn.push(us(r.timing.spawn));
                p.drain.push(us(r.timing.drain));
                p.own.push(us(r.timing.overhead()));
            }
        }
    }
    let stop = Request::new(
        "bench",
        "ocf:heartbeat:Dummy"
            .parse()
            .map_err(|e: ra::Error| e.to_string())?,
        Action::Stop,
        t20,
    )
    .param("state", &state);
    let _ = rt.block_on(runner.run(&stop));

    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "ra runner overhead per action (release build, {} cores, load average {})",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut ok = true;
    for p in &pairs {
        let (median_diff, mean_upper) = p.report();
        let pass = median_diff < 1000.0 && mean_upper < 1000.0;
        println!(
            "  target: overhead < 1 ms per action: {}",
            if pass { "PASS" } else { "MISS" }
        );
        ok &= pass;
    }
    Ok(ok)
}
