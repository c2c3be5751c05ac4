//! `hapair preflight`: what to check before starting the daemon (and what
//! systemd's `ExecStartPre` runs). Every check reads; none changes the
//! machine, sends a packet to the peer or takes the lease.

use std::net::UdpSocket;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

use serde::Serialize;

use crate::config::{Config, Exec, SelfFenceMode};

/// One check's result.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Check {
    /// What was checked ("lease device", "link repl", ...).
    pub what: String,
    /// Passed.
    pub ok: bool,
    /// Details or the problem, in words.
    pub detail: String,
}

fn check(what: impl Into<String>, r: Result<String, String>) -> Check {
    let (ok, detail) = match r {
        Ok(d) => (true, d),
        Err(d) => (false, d),
    };
    Check {
        what: what.into(),
        ok,
        detail,
    }
}

/// Runs every check for node `me` of `cfg`.
pub async fn run(cfg: &Config, me: usize) -> Vec<Check> {
    let mut out = vec![check(
        "node",
        Ok(format!(
            "this node is {} (peer {})",
            cfg.nodes[me].name,
            cfg.nodes[1 - me].name
        )),
    )];
    out.push(check("key file", key_file(&cfg.cluster.key_file)));
    for l in &cfg.links {
        out.push(check(format!("link {}", l.name), link(l.addrs[me])));
    }
    out.push(check("lease device", lease(cfg)));
    out.push(check("state dir", dir_ok(&cfg.cluster.state_dir)));
    let runner = ra::Runner::new(ra::RunnerConfig {
        node_name: cfg.nodes[me].name.clone(),
        ..ra::RunnerConfig::default()
    });
    for r in &cfg.resources {
        let what = format!("resource {}", r.name);
        let res = match &r.exec {
            Exec::Agent(a) => match &runner {
                Err(e) => Err(e.to_string()),
                Ok(runner) => agent(runner, a, &r.params).await,
            },
            Exec::Filesystem => {
                crate::runtime::builtin::filesystem::Filesystem::from_params(&r.params)
                    .map_err(|v| join(&v))
                    .and_then(|_| {
                        let dev = r.params.get("device").map_or("", String::as_str);
                        block_device(Path::new(dev)).map(|d| format!("filesystem on {d}"))
                    })
            }
            Exec::Address => crate::runtime::builtin::address::Address::from_params(&r.params)
                .map(|_| "address parameters valid".to_string())
                .map_err(|v| join(&v)),
            Exec::Drbd => drbd(r.params.get("resource").map_or("", String::as_str)).await,
        };
        out.push(check(what, res));
    }
    for d in cfg
        .fencing
        .levels_for(&cfg.nodes[1 - me].name)
        .iter()
        .flatten()
    {
        out.push(check(
            format!("fence level {} ({})", d.level, d.agent),
            fence_agent(&d.agent),
        ));
    }
    out.push(check("self-fence", self_fence(cfg)));
    out
}

fn join(v: &[crate::runtime::builtin::ParamError]) -> String {
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn key_file(p: &Path) -> Result<String, String> {
    let kf = crate::keys::load(p).map_err(|e| e.to_string())?;
    kf.keyring().map_err(|e| e.to_string())?;
    Ok(format!("{} (mode 0600, keys valid)", p.display()))
}

/// The local address must be bindable: it exists on this host and nobody
/// else (another hapair) holds the port. Binding sends nothing.
fn link(local: std::net::SocketAddr) -> Result<String, String> {
    match UdpSocket::bind(local) {
        Ok(_) => Ok(format!("{local} is free to bind")),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            Err(format!("{local} is in use (is hapair already running?)"))
        }
        Err(e) => Err(format!(
            "cannot bind {local}: {e} (is the address configured here?)"
        )),
    }
}

fn block_device(p: &Path) -> Result<String, String> {
    let md = std::fs::metadata(p).map_err(|e| format!("{}: {e}", p.display()))?;
    if md.file_type().is_block_device() {
        Ok(p.display().to_string())
    } else {
        Err(format!("{} is not a block device", p.display()))
    }
}

fn lease(cfg: &Config) -> Result<String, String> {
    let l = &cfg.lease;
    block_device(&l.device)?;
    let (dev, cb) = sfex::ops::open_checked(&l.device, l.index, sfex::dev::EngineKind::Sync, false)
        .map_err(|e| e.to_string())?;
    let mut dev = dev;
    let lock = sfex::ops::read_lock(&mut dev, l.index)?;
    Ok(format!(
        "{}: sfex, {} locks, {}-byte blocks; lock {} is {}",
        l.device.display(),
        cb.numlocks,
        dev.sector_size(),
        l.index,
        match lock.status {
            sfex::format::Status::Unlocked => "free".to_string(),
            sfex::format::Status::Locked => format!(
                "held by {} (count {})",
                String::from_utf8_lossy(lock.nodename.as_bytes()),
                lock.count
            ),
        }
    ))
}

fn dir_ok(p: &Path) -> Result<String, String> {
    match std::fs::metadata(p) {
        Ok(md) if md.is_dir() => Ok(format!("{} exists", p.display())),
        Ok(_) => Err(format!("{} is not a directory", p.display())),
        // the daemon creates it
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(format!("{} will be created", p.display()))
        }
        Err(e) => Err(format!("{}: {e}", p.display())),
    }
}

async fn agent(
    runner: &ra::Runner,
    a: &ra::Agent,
    params: &std::collections::BTreeMap<String, String>,
) -> Result<String, String> {
    let path = runner
        .agent_path(a)
        .ok_or_else(|| format!("{a}: agent not found"))?;
    if matches!(a, ra::Agent::Ocf { .. }) {
        let md = runner.meta_data(a).await.map_err(|e| e.to_string())?;
        let problems: Vec<String> = md
            .check_params(params)
            .iter()
            .filter(|p| p.is_error())
            .map(ToString::to_string)
            .collect();
        if !problems.is_empty() {
            return Err(format!("{a}: {}", problems.join("; ")));
        }
    }
    Ok(format!("{a} at {}", path.display()))
}

async fn drbd(resource: &str) -> Result<String, String> {
    let out = tokio::process::Command::new("drbdadm")
        .args(["sh-nop", "--", resource])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LC_ALL", "C")
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(std::time::Duration::from_secs(10), out).await {
        Err(_) => Err("drbdadm sh-nop timed out".into()),
        Ok(Err(e)) => Err(format!("drbdadm: {e} (is drbd-utils installed?)")),
        Ok(Ok(o)) if o.status.success() => Ok(format!("DRBD resource {resource} is defined")),
        Ok(Ok(o)) => Err(format!(
            "drbdadm sh-nop {resource}: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
    }
}

fn fence_agent(agent: &str) -> Result<String, String> {
    let p = crate::runtime::fence::resolve_agent(agent);
    let md = std::fs::metadata(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    if md.permissions().mode() & 0o111 == 0 {
        return Err(format!("{} is not executable", p.display()));
    }
    Ok(p.display().to_string())
}

fn self_fence(cfg: &Config) -> Result<String, String> {
    let dev = &cfg.self_fence.watchdog_device;
    let present = std::fs::metadata(dev).is_ok_and(|m| m.file_type().is_char_device());
    match cfg.self_fence.mode {
        SelfFenceMode::Watchdog if !present => Err(format!(
            "mode watchdog but {} is missing (load softdog or a hardware driver)",
            dev.display()
        )),
        SelfFenceMode::Auto if !present => Ok(format!(
            "no {}: reboot(2) without a hardware backstop",
            dev.display()
        )),
        SelfFenceMode::Watchdog | SelfFenceMode::Auto => {
            // safe either way; with nowayout a clean stop resets the node
            let sys = Path::new("/sys");
            Ok(match crate::runtime::watchdog::nowayout(dev, sys) {
                Some(true) => format!(
                    "watchdog {}; NOTE: {}",
                    dev.display(),
                    crate::runtime::watchdog::nowayout_note(dev)
                ),
                _ => format!("watchdog {}", dev.display()),
            })
        }
        SelfFenceMode::Reboot => Ok("reboot(2)".into()),
        SelfFenceMode::TestExit => Err(
            "mode test-exit: a node that must die only exits (tests only; never in production)"
                .into(),
        ),
    }
}

/// Human output: one line per check.
pub fn render(checks: &[Check]) -> String {
    let mut s = String::new();
    for c in checks {
        s.push_str(&format!(
            "{:4}  {}: {}\n",
            if c.ok { "ok" } else { "FAIL" },
            c.what,
            c.detail
        ));
    }
    let failed = checks.iter().filter(|c| !c.ok).count();
    if failed == 0 {
        s.push_str("preflight passed\n");
    } else {
        s.push_str(&format!("preflight FAILED: {failed} problem(s)\n"));
    }
    s
}
