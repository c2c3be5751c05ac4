//! Idle cost of one daemon: `hapair run` with a three-resource
//! `ocf:heartbeat:Dummy` stack, two links (on 127.0.0.1) at the default
//! heartbeat rate, the lease on a loop device at the default lease timings
//! (renewal every 2 s), running its stack; measured
//! over a minute (`HAPAIR_IDLE_SECS` to change) once the stack runs.
//!
//! Prints the daemon's RSS (VmRSS, and VmHWM, the peak) and its own CPU
//! (nanoseconds on a CPU of the daemon's threads, from schedstat; the agents' monitor children
//! are counted apart, as the work Pacemaker's executor would also do).
//! Targets (issue 9): RSS at most 10 MiB, idle CPU at most 0.1 % of a core.
//!
//! `cargo bench --bench idle` (root, loop devices, resource-agents).
#![allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]

#[path = "daemon_support.rs"]
mod support;

use std::time::{Duration, Instant};

use support::{Daemon, Setup};

fn ticks_per_sec() -> f64 {
    // sysconf(_SC_CLK_TCK) is 100 on every Linux ABI we run on
    100.0
}

/// (utime + stime, cutime + cstime) in clock ticks.
fn cpu(pid: i32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    // fields after the ")" of the command name
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // rest[0] is field 3 (state): utime is field 14, stime 15, cutime 16, cstime 17
    (f[11] + f[12], f[13] + f[14])
}

/// Nanoseconds on a CPU of all the daemon's threads (schedstat: exact,
/// where utime/stime count 10 ms ticks).
fn run_ns(pid: i32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("task dir")
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// CPU share of a thread that does only what an idle heartbeat must: wake
/// every `every` and send one packet per link to a receiving socket.
fn floor_pct(every: Duration, links: usize, over: Duration) -> f64 {
    std::thread::spawn(move || {
        let mut pairs = Vec::new();
        for _ in 0..links {
            let rx = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
            let to = rx.local_addr().expect("addr");
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while rx.recv(&mut buf).is_ok() {}
            });
            let tx = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
            pairs.push((tx, to));
        }
        let own = || -> u64 {
            std::fs::read_to_string("/proc/thread-self/schedstat")
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse().ok())
                .expect("schedstat")
        };
        let packet = [0x5au8; 180];
        let t0 = Instant::now();
        let c0 = own();
        let mut next = t0;
        while t0.elapsed() < over {
            next += every;
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
            for (tx, to) in &pairs {
                tx.send_to(&packet, to).expect("send");
            }
        }
        (own() - c0) as f64 / 1e9 / t0.elapsed().as_secs_f64() * 100.0
    })
    .join()
    .expect("floor thread")
}

fn status_kib(pid: i32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let secs: u64 = std::env::var("HAPAIR_IDLE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    // knobs, to see where the time goes (defaults: the setup)
    let monitor = std::env::var("HAPAIR_IDLE_MONITOR").unwrap_or_else(|_| "10s".into());
    let keepalive = std::env::var("HAPAIR_IDLE_KEEPALIVE").ok();
    let s = Setup::new();
    // defaults for heartbeat timing and monitor intervals (10 s), two links
    let text = s
        .config(
            &["db", "fs", "ip"]
                .iter()
                .map(|n| {
                    s.dummy(n).replace(
                        "monitor_interval = \"1s\"",
                        &format!("monitor_interval = \"{monitor}\""),
                    )
                })
                .collect::<String>(),
        )
        .replace(
            "keepalive = \"100ms\"\nwarntime = \"300ms\"\ndeadtime = \"500ms\"\ninitdead = \"1s\"\n",
            &keepalive.map_or(String::new(), |k| format!("keepalive = \"{k}\"\n")),
        )
        // the lease, policy and fencing at their defaults too (the tests'
        // config renews the lease every second and waits less)
        .replace(
            "engine = \"sync\"\nlock_timeout = \"6s\"\ncollision_timeout = \"1s\"\nmonitor_interval = \"1s\"\nmargin = \"500ms\"\nmax_io = \"400ms\"\n",
            "",
        )
        .replace("[fencing]\ndelay = \"3s\"\n", "")
        .replace(
            "[lease]",
            &format!(
                "[[link]]\nname = \"lo2\"\nalpha = \"127.0.0.1:{}\"\nbeta = \"127.0.0.1:{}\"\n\n[lease]",
                s.port + 2,
                s.port + 3
            ),
        );
    let cfg = s.write_config(&text);
    // the peer's ports receive (and drop) what the daemon sends, as a real
    // peer's would: without them every packet to 127.0.0.1 bounces an ICMP
    // "port unreachable" that the kernel builds on the sender's time
    for port in [s.port + 1, s.port + 3] {
        let sock = std::net::UdpSocket::bind(("127.0.0.1", port)).expect("bind the peer's port");
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while sock.recv(&mut buf).is_ok() {}
        });
    }
    let mut d = Daemon::start(&s, &cfg);
    d.wait_for("the stack to run", Duration::from_secs(60), |log| {
        log.contains("stack running here")
    });
    let pid = d.pid().as_raw();
    // settle, then measure
    std::thread::sleep(Duration::from_secs(2));
    let (_, k0) = cpu(pid);
    let n0 = run_ns(pid);
    let t0 = Instant::now();
    let mut max_rss = 0;
    while t0.elapsed() < Duration::from_secs(secs) {
        max_rss = max_rss.max(status_kib(pid, "VmRSS:"));
        std::thread::sleep(Duration::from_millis(500));
    }
    let wall = t0.elapsed().as_secs_f64();
    let (_, k1) = cpu(pid);
    let n1 = run_ns(pid);
    let cpu_pct = (n1 - n0) as f64 / 1e9 / wall * 100.0;
    let child_pct = (k1 - k0) as f64 / ticks_per_sec() / wall * 100.0;
    let rss = status_kib(pid, "VmRSS:");
    let hwm = status_kib(pid, "VmHWM:");
    let threads = status_kib(pid, "Threads:");
    println!(
        "idle daemon over {wall:.0} s: 3 Dummy resources (monitor every {monitor}), 2 links, keepalive {}",
        std::env::var("HAPAIR_IDLE_KEEPALIVE").unwrap_or_else(|_| format!(
            "default ({})",
            hapair::membership::Timing::DEFAULT.keepalive
        ))
    );
    println!(
        "  RSS now {:.2} MiB, max sampled {:.2} MiB, peak (VmHWM) {:.2} MiB  (target <= 10 MiB)",
        rss as f64 / 1024.0,
        max_rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    println!("  daemon CPU {cpu_pct:.3} % of one core  (target <= 0.1 %)");
    println!("  agent children CPU {child_pct:.3} % (monitor runs of the Dummy agent)");
    println!("  threads {threads}");
    d.signal(nix::sys::signal::Signal::SIGTERM);
    let st = d.wait_exit(Duration::from_secs(30));
    assert!(st.success(), "daemon exit {st}");
    let every = std::env::var("HAPAIR_IDLE_KEEPALIVE")
        .ok()
        .and_then(|k| humantime::parse_duration(&k).ok())
        .unwrap_or(Duration::from_millis(
            hapair::membership::Timing::DEFAULT.keepalive.0,
        ));
    let floor = floor_pct(every, 2, Duration::from_secs(10));
    println!(
        "  floor on this machine: a bare thread sleeping {every:?} then sending one 180-byte \
         packet on each of 2 loopback sockets uses {floor:.3} % of one core \
         (loopback charges the receiving side's kernel work to the sender too)"
    );
    let ok = hwm <= 10 * 1024 && cpu_pct <= 0.1;
    println!("  {}", if ok { "targets met" } else { "TARGETS MISSED" });
}
