//! `Runner::run_command`: an arbitrary program (fence agents, tools) run
//! under the same limits as an agent, with data on its stdin.
//!
//! - the input reaches the program's stdin whole (1 MiB, more than a pipe
//!   holds, so the write and the output capture must overlap), the pipe
//!   is closed after it, and none of it is on the command line;
//! - a program that never reads its stdin still finishes normally;
//! - a timeout kills the whole process group, a forked child too;
//! - the environment is the base one only;
//! - a missing program is a result that names it.

use std::ffi::OsString;
use std::time::{Duration, Instant};

use ra::{ExecStatus, Runner, RunnerConfig, process_group_alive};

fn runner() -> Runner {
    Runner::new(RunnerConfig {
        kill_grace: Duration::from_millis(300),
        ..RunnerConfig::default()
    })
    .unwrap()
}

fn sh(script: &str) -> Vec<OsString> {
    vec!["/bin/sh".into(), "-c".into(), script.into()]
}

#[tokio::test]
async fn input_reaches_stdin_whole_and_not_the_command_line() {
    let input: Vec<u8> = (0..(1usize << 20))
        .map(|i| b"password=s3cret\n"[i % 16])
        .collect();
    // Echo stdin back (more than a pipe buffer both ways), then prove EOF
    // came: the trailer is printed only after `cat` saw the pipe closed.
    let r = runner()
        .run_command(
            &sh("cat; echo; echo \"eof args=$#\""),
            &input,
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(r.exec, ExecStatus::Exited { code: 0 }, "{r:?}");
    let trailer = b"\neof args=0\n";
    let mut whole = input.clone();
    whole.extend_from_slice(trailer);
    // Every byte came back (counted), the kept ends are the right ones.
    let out = &r.stdout;
    assert_eq!(out.total, whole.len() as u64);
    assert_eq!(out.head[..], whole[..out.head.len()]);
    assert_eq!(out.tail[..], whole[whole.len() - out.tail.len()..]);
    assert!(out.tail.ends_with(trailer));
    assert!(r.argv.iter().all(|a| !a.contains("s3cret")));
    assert!(r.pid.is_some());
}

#[tokio::test]
async fn small_input_comes_back_exactly() {
    let r = runner()
        .run_command(&sh("cat"), b"action=off\nplug=b\n", Duration::from_secs(10))
        .await;
    assert_eq!(r.exec, ExecStatus::Exited { code: 0 });
    assert!(r.stdout.is_complete());
    assert_eq!(r.stdout.text(), "action=off\nplug=b\n");
}

#[tokio::test]
async fn a_program_that_ignores_its_input_finishes() {
    let input = vec![b'x'; 4 << 20];
    let t = Instant::now();
    let r = runner()
        .run_command(&sh("echo done"), &input, Duration::from_secs(20))
        .await;
    assert_eq!(r.exec, ExecStatus::Exited { code: 0 });
    assert_eq!(r.stdout.text(), "done\n");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
}

#[tokio::test]
async fn a_timeout_kills_the_group_with_its_forked_child() {
    // The child ignores SIGTERM too, so SIGKILL to the group is needed.
    let script = "trap '' TERM; (trap '' TERM; while :; do sleep 1; done) & \
                  echo child=$!; while :; do sleep 1; done";
    let t = Instant::now();
    let r = runner()
        .run_command(&sh(script), b"action=off\n", Duration::from_millis(400))
        .await;
    assert_eq!(
        r.exec,
        ExecStatus::TimedOut {
            killed: true,
            unreaped: false
        },
        "{r:?}"
    );
    assert!(t.elapsed() >= Duration::from_millis(400));
    let pgid = r.pid.expect("started");
    assert!(!process_group_alive(pgid), "group {pgid} survived");
    let child: i32 = r
        .stdout
        .text()
        .trim()
        .strip_prefix("child=")
        .expect("the forked child's pid was printed")
        .parse()
        .unwrap();
    assert!(
        !std::path::Path::new(&format!("/proc/{child}")).exists()
            || std::fs::read_to_string(format!("/proc/{child}/stat"))
                .is_ok_and(|s| s.contains(") Z ")),
        "forked child {child} still alive"
    );
}

#[tokio::test]
async fn the_environment_is_the_base_one() {
    let r = runner()
        .run_command(
            &[OsString::from("/usr/bin/env")],
            b"",
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(r.exec, ExecStatus::Exited { code: 0 });
    let mut vars: Vec<String> = r.stdout.text().lines().map(str::to_string).collect();
    vars.sort();
    let mut want: Vec<String> = RunnerConfig::default()
        .base_env
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    want.sort();
    assert_eq!(vars, want);
}

#[tokio::test]
async fn a_missing_program_is_a_result_naming_it() {
    let r = runner()
        .run_command(
            &[OsString::from("/nonexistent/fence_nothing")],
            b"action=off\n",
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(r.exec, ExecStatus::NotInstalled);
    assert_eq!(r.pid, None);
    let why = r.reason.expect("a reason");
    assert!(why.contains("/nonexistent/fence_nothing"), "{why}");
    let r = runner().run_command(&[], b"", Duration::from_secs(1)).await;
    assert_eq!(r.exec, ExecStatus::NotInstalled);
}
