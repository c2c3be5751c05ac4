//! The runner's memory stays bounded while an agent prints tens of MiB.
//! Alone in its own test binary, so that nothing else in the process moves
//! the peak resident size (`VmHWM`) it measures.

mod common;

use std::time::Duration;

use common::*;
use ra::{Action, ExecStatus, Request};

fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

#[test]
fn flooding_agent_does_not_grow_the_runner() {
    let root = ScratchRoot::new();
    let runner = root.runner();
    let rt = rt();
    // Warm up: runtime, buffers, one small run.
    let small = Request::new(
        "m",
        test_agent("flood"),
        Action::Monitor,
        Duration::from_secs(60),
    )
    .param("out_mb", "1")
    .param("err_mb", "1");
    let r = rt.block_on(runner.run(&small)).unwrap();
    assert_eq!(r.exec, ExecStatus::Exited { code: 0 });
    let before = vm_hwm_kib();

    let big = small.param("out_mb", "64").param("err_mb", "32");
    let r = rt.block_on(runner.run(&big)).unwrap();
    let after = vm_hwm_kib();
    assert_eq!(r.exec, ExecStatus::Exited { code: 0 });
    assert!(r.stdout.total > 64 << 20, "{}", r.stdout.total);
    assert!(r.stderr.total > 32 << 20, "{}", r.stderr.total);
    let limits = runner.config().capture;
    assert_eq!(
        r.stdout.head.len() + r.stdout.tail.len(),
        limits.head + limits.tail
    );
    assert_eq!(r.exit_reason.as_deref(), Some("printed a lot"));
    let grown = after.saturating_sub(before);
    println!(
        "agent printed {} MiB; peak RSS {before} KiB before, {after} KiB after (+{grown} KiB)",
        (r.stdout.total + r.stderr.total) >> 20
    );
    assert!(
        grown < 4 << 10,
        "peak RSS grew by {grown} KiB while the agent printed 96 MiB"
    );
}
