//! `hapair fence-peer --pacemaker` as DRBD runs it: the real binary, with
//! DRBD's environment (drbd.md 3.3) and `CIB_file` pointing at a temp copy
//! of a CIB from `src/fence_peer/testdata`, so the real `cibadmin` and
//! `crm_mon` (Pacemaker 2.1.5, package pacemaker-cli-utils, which
//! `.ci/test` installs) read and write it. Checks the exit code, the
//! constraint read back with `cibadmin -Q`, Pacemaker's own verdict that
//! the peer may not be promoted (`crm_mon`'s bans), idempotence and
//! `--unfence`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hapair::fence_peer::pacemaker::{Location, parse_cib};

const BIN: &str = env!("CARGO_BIN_EXE_hapair");
const ID: &str = "drbd-fence-by-handler-r0-drbd-r0-clone";

fn tool(name: &str) -> PathBuf {
    let p = Path::new("/usr/sbin").join(name);
    assert!(
        p.is_file(),
        "{} is missing: install pacemaker-cli-utils (.ci/test does)",
        p.display()
    );
    p
}

/// A temp copy of a testdata CIB.
struct Cib {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Cib {
    fn new(fixture: &str) -> Cib {
        let dir = tempfile::Builder::new()
            .prefix("hapair-pcmk.")
            .tempdir()
            .expect("tempdir");
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/fence_peer/testdata")
            .join(fixture);
        let path = dir.path().join("cib.xml");
        std::fs::copy(&src, &path).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
        Cib { _dir: dir, path }
    }

    fn run(&self, prog: &Path, args: &[&str]) -> String {
        let o = Command::new(prog)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("CIB_file", &self.path)
            .output()
            .expect("run a pacemaker tool");
        assert!(
            o.status.success(),
            "{} {args:?}: {:?} {}",
            prog.display(),
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).expect("utf-8")
    }

    /// Our constraint, read back with `cibadmin -Q`.
    fn constraints(&self) -> Vec<Location> {
        let cib = parse_cib(&self.run(&tool("cibadmin"), &["-Q"])).expect("cib");
        cib.locations.into_iter().filter(|l| l.id == ID).collect()
    }

    /// crm_mon's bans (`<ban ... node= promoted-only=>`) on the clone.
    fn promotion_banned_on(&self, node: &str) -> bool {
        let out = self.run(&tool("crm_mon"), &["--output-as=xml", "-1"]);
        out.lines().any(|l| {
            l.contains("<ban ")
                && l.contains(r#"resource="drbd-r0-clone""#)
                && l.contains(&format!(r#"node="{node}""#))
                && l.contains(r#"promoted-only="true""#)
        })
    }

    /// Runs the handler as DRBD would, with `env` (DRBD's variables).
    fn handler(&self, env: &[(&str, &str)], args: &[&str]) -> (i32, String, Duration) {
        tool("cibadmin");
        tool("crm_mon");
        let t0 = Instant::now();
        let o = Command::new(BIN)
            .args(["fence-peer", "--pacemaker", "--node", "nodeA"])
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("CIB_file", &self.path)
            .envs(env.iter().copied())
            .output()
            .expect("run hapair");
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        eprintln!("{err}");
        (o.status.code().expect("exit code"), err, t0.elapsed())
    }
}

/// DRBD 9's handler environment on nodeA (node id 0), peer nodeB (1).
fn drbd9(mask: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("DRBD_RESOURCE", "r0"),
        ("DRBD_MINOR", "0"),
        ("DRBD_VOLUME", "0"),
        ("DRBD_MY_NODE_ID", "0"),
        ("DRBD_PEER_NODE_ID", "1"),
        ("DRBD_NODE_ID_0", "nodeA"),
        ("DRBD_NODE_ID_1", "nodeB"),
        ("DRBD_MY_ADDRESS", "10.88.1.1"),
        ("DRBD_MY_AF", "ipv4"),
        ("DRBD_PEER_ADDRESS", "10.88.1.2"),
        ("DRBD_PEER_AF", "ipv4"),
        ("UP_TO_DATE_NODES", mask),
    ]
}

#[test]
fn online_peer_constraint_exit_4_idempotent_then_unfence() {
    let cib = Cib::new("cib-online.xml");
    assert!(cib.constraints().is_empty());
    assert!(!cib.promotion_banned_on("nodeB"));
    let (rc, _, _) = cib.handler(&drbd9("0x1"), &["r0"]);
    assert_eq!(rc, 4, "peer online: constraint + 4");
    let c = cib.constraints();
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0].rsc, "drbd-r0-clone");
    assert_eq!(c[0].rules.len(), 1);
    assert_eq!(c[0].rules[0].role.as_deref(), Some("Promoted"));
    assert_eq!(c[0].rules[0].score.as_deref(), Some("-INFINITY"));
    let e = &c[0].rules[0].expressions;
    assert_eq!(e.len(), 1);
    assert_eq!(
        (
            e[0].attribute.as_str(),
            e[0].operation.as_str(),
            e[0].value.as_str()
        ),
        ("#uname", "ne", "nodeA")
    );
    assert!(
        cib.promotion_banned_on("nodeB"),
        "Pacemaker must refuse to promote nodeB"
    );
    assert!(!cib.promotion_banned_on("nodeA"));

    // idempotent: the same answer, still one constraint
    let (rc, _, _) = cib.handler(&drbd9("0x1"), &["r0"]);
    assert_eq!(rc, 4);
    assert_eq!(cib.constraints().len(), 1);

    // unfence-peer (DRBD 9: both disks UpToDate again) removes it
    let (rc, _, _) = cib.handler(&drbd9("0x3"), &["--unfence", "r0"]);
    assert_eq!(rc, 0);
    assert!(cib.constraints().is_empty());
    assert!(!cib.promotion_banned_on("nodeB"));
    // and a second unfence has nothing to do
    let (rc, err, _) = cib.handler(&drbd9("0x3"), &["--unfence", "r0"]);
    assert_eq!(rc, 0);
    assert!(err.contains("nothing to do"), "{err}");
}

#[test]
fn unfence_keeps_the_constraint_while_the_peer_is_not_up_to_date() {
    let cib = Cib::new("cib-constrained.xml");
    assert_eq!(cib.constraints().len(), 1);
    let (rc, _, _) = cib.handler(&drbd9("0x1"), &["--unfence"]);
    assert_eq!(rc, 0);
    assert_eq!(cib.constraints().len(), 1, "peer not UpToDate: kept");
    // DRBD 8.4's after-resync-target on the resync target: no mask
    let (rc, _, _) = cib.handler(
        &[("DRBD_RESOURCE", "r0"), ("DRBD_PEER", "nodeB")],
        &["--unfence"],
    );
    assert_eq!(rc, 0);
    assert!(cib.constraints().is_empty());
}

#[test]
fn fenced_peer_exit_7() {
    let cib = Cib::new("cib-fenced.xml");
    let (rc, _, _) = cib.handler(&drbd9("0x1"), &[]);
    assert_eq!(rc, 7, "peer fenced, local UpToDate: constraint + 7");
    assert_eq!(cib.constraints().len(), 1);
    assert!(cib.promotion_banned_on("nodeB"));
}

#[test]
fn unclean_peer_polls_until_the_timeout_then_5_with_constraint() {
    let cib = Cib::new("cib-unclean.xml");
    let (rc, _, took) = cib.handler(&drbd9("0x1"), &["--timeout", "2s"]);
    assert_eq!(rc, 5);
    assert!(
        took >= Duration::from_secs(2),
        "answered after {took:?}, before the timeout"
    );
    assert_eq!(cib.constraints().len(), 1);
    assert!(cib.promotion_banned_on("nodeB"));
}

#[test]
fn local_disk_not_up_to_date_and_peer_unreachable_exit_5_without_constraint() {
    let cib = Cib::new("cib-unclean.xml");
    let (rc, _, took) = cib.handler(&drbd9("0x0"), &["--timeout", "30s"]);
    assert_eq!(rc, 5);
    assert!(took < Duration::from_secs(20), "no need to wait: {took:?}");
    assert!(cib.constraints().is_empty());
}

#[test]
fn no_evidence_exit_1_without_constraint() {
    // no quorum
    let cib = Cib::new("cib-noquorum.xml");
    let (rc, _, _) = cib.handler(&drbd9("0x1"), &["--timeout", "1s"]);
    assert_eq!(rc, 1);
    assert!(cib.constraints().is_empty());
    // DRBD 8.4 environment with no minor: the local disk is unknown
    let cib = Cib::new("cib-online.xml");
    let (rc, err, _) = cib.handler(&[("DRBD_RESOURCE", "r0"), ("DRBD_PEER", "nodeB")], &[]);
    assert_eq!(rc, 1, "{err}");
    assert!(cib.constraints().is_empty());
    // no promotable clone wraps the resource
    let (rc, err, _) = cib.handler(&[("DRBD_RESOURCE", "r9")], &[]);
    assert_eq!(rc, 1);
    assert!(err.contains("drbd_resource=r9"), "{err}");
    // no resource at all
    let (rc, _, _) = cib.handler(&[], &[]);
    assert_eq!(rc, 1);
}

#[test]
fn the_peers_constraint_is_never_overwritten() {
    // a constraint under the same id that keeps promotion on nodeB only
    let cib = Cib::new("cib-online.xml");
    let theirs = format!(
        r##"<rsc_location rsc="drbd-r0-clone" id="{ID}"><rule role="Promoted" score="-INFINITY" id="x-rule"><expression attribute="#uname" operation="ne" value="nodeB" id="x-expr"/></rule></rsc_location>"##
    );
    cib.run(
        &tool("cibadmin"),
        &["--create", "-o", "constraints", "--xml-text", &theirs],
    );
    let (rc, _, _) = cib.handler(&drbd9("0x1"), &[]);
    assert_eq!(rc, 1);
    let c = cib.constraints();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].rules[0].expressions[0].value, "nodeB", "untouched");
    assert!(cib.promotion_banned_on("nodeA"));
}
