//! The machine can host the lab, and the teardown script is idempotent.

use std::path::Path;
use std::process::Command;

use hwtest::{Lab, scripts_dir};

#[test]
fn machine_can_host_the_lab() {
    if let Err(why) = Lab::probe() {
        panic!("this machine cannot host the UML lab: {why}");
    }
}

/// lab-down.sh on a lab that never existed, twice, and after a lab dir that
/// holds only stale files: exit 0, nothing left.
#[test]
fn lab_down_is_idempotent() {
    let ns = format!("hapair-lab-downtest-{}", std::process::id());
    let dir = format!("/tmp/{ns}");
    std::fs::create_dir_all(format!("{dir}/power")).unwrap();
    std::fs::write(format!("{dir}/power/watcher.pid"), "999999999\n").unwrap();
    std::fs::create_dir_all(format!("{dir}/nodeA")).unwrap();
    std::fs::write(format!("{dir}/nodeA/pid"), "999999999\n").unwrap();
    for round in 0..2 {
        let out = Command::new(scripts_dir().join("lab-down.sh"))
            .env("LAB_NETNS", &ns)
            .env_remove("LAB_DIR")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "round {round}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!Path::new(&dir).exists(), "round {round}: {dir} left");
        assert!(!Path::new("/run/netns").join(&ns).exists());
    }
}
