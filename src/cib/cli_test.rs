//! `hapair import-cib` as a process: stdout, stderr and exit status, the
//! file and stdin forms, --json, and `hapair validate` on what it printed.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_hapair");

fn example() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/cib/testdata/example-drbd-fs-ip.xml")
        .display()
        .to_string()
}

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

#[test]
fn prints_a_file_hapair_validate_accepts() {
    let out = run(
        &[
            "import-cib",
            &example(),
            "--node",
            "nodeA=10.88.0.1,10.99.0.1",
            "--node",
            "nodeB=10.88.0.2,10.99.0.2",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let toml = String::from_utf8(out.stdout).unwrap();
    assert!(toml.contains("type = \"drbd\""), "{toml}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hapair.toml");
    std::fs::write(&path, &toml).unwrap();
    let v = run(&["validate", path.to_str().unwrap()], None);
    assert!(
        v.status.success(),
        "{}{}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );
}

#[test]
fn stdin_and_json() {
    let xml = std::fs::read_to_string(example()).unwrap();
    let out = run(&["import-cib", "-", "--json"], Some(&xml));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["imported"], true);
    assert!(v["toml"].as_str().unwrap().contains("[[resource]]"));
    assert_eq!(v["placeholders"].as_array().unwrap().len(), 3);
    assert!(
        v["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["id"] == "rsc-options-stickiness" && w["line"] == 74)
    );
}

#[test]
fn refusal_exits_non_zero_with_the_error() {
    let xml = std::fs::read_to_string(example())
        .unwrap()
        .replace("with-rsc-role=\"Promoted\"", "with-rsc-role=\"Unpromoted\"");
    let out = run(&["import-cib", "-"], Some(&xml));
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with(
            "hapair import-cib: -: line 69: <rsc_colocation id=\"col-svc-on-promoted\">:"
        ),
        "{err}"
    );
    let out = run(&["import-cib", "-", "--json"], Some(&xml));
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["imported"], false);
    assert_eq!(v["line"], 69);
    assert_eq!(v["at"]["id"], "col-svc-on-promoted");
    let out = run(&["import-cib", "/nonexistent/cib.xml"], None);
    assert_eq!(out.status.code(), Some(1));
}
