//! A real Pacemaker and Corosync cluster in the lab (docs/lab.md,
//! "Pacemaker + Corosync in the lab"): [`Pacemaker`] wraps
//! `hwtest/lab/pacemaker/` (`pcmk-up.sh`, `pcmk-load.sh`, `pcmk-down.sh`),
//! and [`ClusterStatus`] reads `crm_mon --output-as=xml`.
//!
//! The lab must run nodeA and nodeB with 512 MiB each
//! ([`crate::LabOptions::mem`] = [`MEM`]): Corosync alone takes ~170 MiB.
//! The stonith agent is the lab's fence agent (this crate's `fence_lab`),
//! installed as `/usr/sbin/fence_lab` for the time the cluster runs
//! (Pacemaker finds stonith agents only there); [`Pacemaker::down`],
//! [`Pacemaker::kill`] and dropping a [`Pacemaker`] remove it again.
//!
//! OCF agents of a test go under [`Pacemaker::ocf_dir`]
//! (`$LAB_DIR/ocf/resource.d/<provider>/<agent>`) *before*
//! [`Pacemaker::up`]: each guest then sees them as
//! `/usr/lib/ocf/resource.d/<provider>/<agent>`, nothing is installed on
//! the host.

use std::fs;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use quick_xml::events::{BytesStart, Event};

use crate::{Lab, LabError, Node, Output, must};

/// Guest memory Pacemaker + Corosync need (`LAB_MEM`).
pub const MEM: &str = "512M";
/// Timeout of `pcmk-up.sh` (packages, then the first DC election waits
/// `dc-deadtime`, 20 s).
pub const UP_TIMEOUT: Duration = Duration::from_secs(600);
/// Timeout of `pcmk-down.sh` (a clean stop runs every resource's stop).
pub const DOWN_TIMEOUT: Duration = Duration::from_secs(200);
/// The reference stack of the lab recipe: `stonith:fence_lab`, a
/// promotable `ocf:linbit:drbd` clone for r0, a group Filesystem
/// /dev/drbd0 on /mnt/r0 → IPaddr2 10.88.0.100 → busybox httpd, where r0
/// is Promoted. Needs ext4 with `www/index.html` on r0.
pub const EXAMPLE_DRBD_FS_IP: &str = include_str!("../lab/pacemaker/example-drbd-fs-ip.xml");

/// Corosync's token timeout (`pcmk-up.sh default|tuned`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    /// Corosync's default, 3000 ms (consensus 3600 ms).
    Default,
    /// 1000 ms.
    Tuned,
}

impl Token {
    fn arg(self) -> &'static str {
        match self {
            Token::Default => "default",
            Token::Tuned => "tuned",
        }
    }
}

/// One resource (or clone instance) in `crm_mon`'s view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// Its id (a clone instance has the primitive's id).
    pub id: String,
    /// The group or clone it is in, if any.
    pub parent: Option<String>,
    /// `class:provider:type`, e.g. `ocf:hapair:sfex`.
    pub agent: String,
    /// `Started`, `Promoted`, `Unpromoted`, `Stopped`, ...
    pub role: String,
    /// `active="true"`.
    pub active: bool,
    /// `failed="true"`.
    pub failed: bool,
    /// `managed="true"`.
    pub managed: bool,
    /// Where it runs.
    pub nodes: Vec<Node>,
}

/// `crm_mon --output-as=xml`, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterStatus {
    /// The designated controller, if there is one.
    pub dc: Option<Node>,
    /// Nodes online.
    pub online: Vec<Node>,
    /// Nodes marked unclean (to be fenced).
    pub unclean: Vec<Node>,
    /// Every resource and clone instance.
    pub resources: Vec<Resource>,
}

fn lab_node(name: &str) -> Option<Node> {
    [Node::A, Node::B, Node::C]
        .into_iter()
        .find(|n| n.name() == name)
}

fn attrs(e: &BytesStart<'_>) -> Vec<(String, String)> {
    e.attributes()
        .flatten()
        .map(|a| {
            (
                String::from_utf8_lossy(a.key.as_ref()).into_owned(),
                a.unescape_value()
                    .map(|v| v.into_owned())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

fn attr<'a>(a: &'a [(String, String)], name: &str) -> &'a str {
    a.iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

impl ClusterStatus {
    /// Parses `crm_mon --output-as=xml` (Pacemaker 2.1).
    pub fn parse(xml: &str) -> Result<ClusterStatus, String> {
        let mut st = ClusterStatus::default();
        let mut reader = quick_xml::Reader::from_str(xml);
        // element names from the root down to the current one
        let mut path: Vec<String> = Vec::new();
        let mut parents: Vec<String> = Vec::new();
        let mut saw_root = false;
        loop {
            let ev = reader
                .read_event()
                .map_err(|e| format!("crm_mon XML at {}: {e}", reader.buffer_position()))?;
            let (e, empty) = match &ev {
                Event::Start(e) => (e, false),
                Event::Empty(e) => (e, true),
                Event::End(e) => {
                    let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                    if matches!(name.as_str(), "group" | "clone" | "bundle") {
                        parents.pop();
                    }
                    path.pop();
                    continue;
                }
                Event::Eof => break,
                _ => continue,
            };
            let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
            let a = attrs(e);
            let parent = path.last().map(String::as_str);
            match (name.as_str(), parent) {
                ("pacemaker-result" | "crm_mon", None) => saw_root = true,
                ("current_dc", _) if attr(&a, "present") == "true" => {
                    st.dc = lab_node(attr(&a, "name"));
                }
                ("node", Some("nodes")) => {
                    if let Some(n) = lab_node(attr(&a, "name")) {
                        if attr(&a, "online") == "true" {
                            st.online.push(n);
                        }
                        if attr(&a, "unclean") == "true" {
                            st.unclean.push(n);
                        }
                    }
                }
                ("group" | "clone" | "bundle", _) if !empty => {
                    parents.push(attr(&a, "id").to_owned());
                }
                ("resource", _) if path.iter().any(|p| p == "resources") => {
                    st.resources.push(Resource {
                        id: attr(&a, "id").to_owned(),
                        parent: parents.last().cloned(),
                        agent: attr(&a, "resource_agent").to_owned(),
                        role: attr(&a, "role").to_owned(),
                        active: attr(&a, "active") == "true",
                        failed: attr(&a, "failed") == "true",
                        managed: attr(&a, "managed") != "false",
                        nodes: Vec::new(),
                    });
                }
                ("node", Some("resource")) if path.iter().any(|p| p == "resources") => {
                    if let (Some(r), Some(n)) =
                        (st.resources.last_mut(), lab_node(attr(&a, "name")))
                    {
                        r.nodes.push(n);
                    }
                }
                _ => {}
            }
            if !empty {
                path.push(name);
            }
        }
        if !saw_root {
            return Err(format!("not crm_mon XML output: {}", xml.trim()));
        }
        Ok(st)
    }

    /// Every instance of resource `id` (a primitive, or a clone's
    /// primitive).
    pub fn get(&self, id: &str) -> Vec<&Resource> {
        self.resources.iter().filter(|r| r.id == id).collect()
    }

    /// Where `id` is active in a running role (`Started`, `Promoted` or
    /// `Unpromoted`).
    pub fn running_on(&self, id: &str) -> Vec<Node> {
        self.get(id)
            .into_iter()
            .filter(|r| {
                r.active && matches!(r.role.as_str(), "Started" | "Promoted" | "Unpromoted")
            })
            .flat_map(|r| r.nodes.iter().copied())
            .collect()
    }

    /// Where `id` (a promotable clone's primitive) is Promoted.
    pub fn promoted_on(&self, id: &str) -> Vec<Node> {
        self.get(id)
            .into_iter()
            .filter(|r| r.active && matches!(r.role.as_str(), "Promoted" | "Master"))
            .flat_map(|r| r.nodes.iter().copied())
            .collect()
    }

    /// Resources marked failed, as `id@nodes`.
    pub fn failed(&self) -> Vec<String> {
        self.resources
            .iter()
            .filter(|r| r.failed)
            .map(|r| format!("{}@{:?}", r.id, r.nodes))
            .collect()
    }
}

/// A Pacemaker + Corosync cluster on the lab's nodeA and nodeB. Dropping
/// it stops the cluster at once (`pcmk-down.sh --kill`) and removes
/// `/usr/sbin/fence_lab`.
#[derive(Debug)]
pub struct Pacemaker<'a> {
    lab: &'a Lab,
    token: Token,
    up_time: Duration,
    seq: std::cell::Cell<u32>,
    down: bool,
}

impl<'a> Pacemaker<'a> {
    /// The host dir whose `<provider>/<agent>` files the guests see as
    /// `/usr/lib/ocf/resource.d/<provider>/<agent>` (fill it before
    /// [`Pacemaker::up`]).
    pub fn ocf_dir(lab: &Lab) -> PathBuf {
        lab.dir().join("ocf/resource.d")
    }

    /// Starts Corosync and Pacemaker in nodeA and nodeB (`pcmk-up.sh`,
    /// which installs missing packages first) and waits until both are
    /// Online with a DC. The lab must run both nodes with [`MEM`].
    pub fn up(lab: &'a Lab, token: Token) -> Result<Pacemaker<'a>, LabError> {
        let mut p = Pacemaker {
            lab,
            token,
            up_time: Duration::ZERO,
            seq: std::cell::Cell::new(0),
            down: false,
        };
        p.up_time = p.rejoin()?;
        Ok(p)
    }

    /// How long [`Pacemaker::up`] took.
    pub fn up_time(&self) -> Duration {
        self.up_time
    }

    /// `pcmk-up.sh` again: a node booted after a power cut (with
    /// [`Lab::boot`], or powered on) starts Corosync and Pacemaker and
    /// rejoins; running nodes are left alone. Returns how long it took.
    pub fn rejoin(&self) -> Result<Duration, LabError> {
        let t = Instant::now();
        let out = self
            .lab
            .script("pacemaker/pcmk-up.sh", &[self.token.arg()], UP_TIMEOUT)?;
        must(&format!("pcmk-up.sh {}", self.token.arg()), out)?;
        Ok(t.elapsed())
    }

    /// Loads a `<configuration>` fragment (`<resources>`, `<constraints>`,
    /// ...) in one `cibadmin --replace`, with `stonith-enabled=true` and
    /// `stonith-action=off` (`pcmk-load.sh`); fails if `crm_verify -L`
    /// finds errors. Returns the script's output.
    pub fn load(&self, xml: &str) -> Result<String, LabError> {
        self.seq.set(self.seq.get() + 1);
        let dir = self.lab.dir().join("pacemaker");
        let file = dir.join(format!("fragment-{}.xml", self.seq.get()));
        fs::create_dir_all(&dir)
            .and_then(|()| fs::write(&file, xml))
            .map_err(|source| LabError::Io {
                what: format!("write {}", file.display()),
                source,
            })?;
        let path = file.display().to_string();
        let mut extra = Vec::new();
        if let Some(n) = self.any_up() {
            extra.push(("PCMK_NODE", n.name().to_owned()));
        }
        let out = self
            .lab
            .script_env("pacemaker/pcmk-load.sh", &[&path], &extra, UP_TIMEOUT)?;
        must(&format!("pcmk-load.sh {path}"), out).map(|o| o.stdout)
    }

    /// A node of the pair that is up (nodeA first), for cluster queries.
    pub fn any_up(&self) -> Option<Node> {
        [Node::A, Node::B].into_iter().find(|&n| self.lab.is_up(n))
    }

    fn query_node(&self) -> Result<Node, LabError> {
        self.any_up().ok_or_else(|| LabError::NodeDown {
            node: Node::A,
            cmd: "crm_mon".into(),
            output: "neither nodeA nor nodeB is up".into(),
        })
    }

    /// `crm_mon -1 --output-as=xml` in `node`.
    pub fn crm_mon_xml(&self, node: Node) -> Result<String, LabError> {
        self.lab.run_ok(node, "crm_mon -1 --output-as=xml")
    }

    /// `crm_mon -1` (text, with inactive resources and fail counts) from a
    /// node that is up, for messages; errors are returned as text.
    pub fn crm_mon_text(&self) -> String {
        match self.query_node() {
            Ok(n) => match self.lab.run(n, "crm_mon -1 -r -f 2>&1") {
                Ok(o) => o.stdout,
                Err(e) => format!("crm_mon: {e}"),
            },
            Err(e) => e.to_string(),
        }
    }

    /// The cluster as `node` sees it.
    pub fn status_on(&self, node: Node) -> Result<ClusterStatus, LabError> {
        let xml = self.crm_mon_xml(node)?;
        ClusterStatus::parse(&xml).map_err(|e| LabError::Failed {
            cmd: format!("{node}# crm_mon -1 --output-as=xml"),
            output: Output {
                rc: 0,
                stdout: xml,
                stderr: e,
            },
        })
    }

    /// The cluster as a node that is up sees it.
    pub fn status(&self) -> Result<ClusterStatus, LabError> {
        self.status_on(self.query_node()?)
    }

    /// Polls [`Pacemaker::status`] every 0.5 s until `pred` holds; on
    /// timeout the error holds `crm_mon -1` and `what`.
    pub fn wait(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&ClusterStatus) -> bool,
    ) -> Result<ClusterStatus, LabError> {
        let start = Instant::now();
        loop {
            let last = match self.status() {
                Ok(st) if pred(&st) => return Ok(st),
                Ok(st) => format!("{st:?}"),
                // a node dying under the query, or crm_mon before the
                // cluster has settled: try again
                Err(e) => e.to_string(),
            };
            if start.elapsed() >= timeout {
                return Err(LabError::Timeout {
                    cmd: format!("wait for {what}"),
                    after: timeout,
                    output: format!("{}\nlast: {last}", self.crm_mon_text()),
                });
            }
            thread::sleep(Duration::from_millis(500));
        }
    }

    /// Waits until resource `id` runs (Started/Promoted) on exactly one
    /// node, and on `on` if given; returns the node.
    pub fn wait_started(
        &self,
        id: &str,
        on: Option<Node>,
        timeout: Duration,
    ) -> Result<Node, LabError> {
        let st = self.wait(
            &format!(
                "{id} started{}",
                on.map(|n| format!(" on {n}")).unwrap_or_default()
            ),
            timeout,
            |st| {
                let r = st.running_on(id);
                r.len() == 1 && on.is_none_or(|n| r[0] == n)
            },
        )?;
        Ok(st.running_on(id)[0])
    }

    /// A clean stop (`pcmk-down.sh`: every resource stopped by its agent,
    /// then Corosync); removes `/usr/sbin/fence_lab`. The lab stays up.
    pub fn down(mut self) -> Result<(), LabError> {
        self.stop(false)
    }

    /// Stops at once (`pcmk-down.sh --kill`, SIGKILL to Pacemaker and
    /// Corosync, resources left as they are) and removes
    /// `/usr/sbin/fence_lab`: for a lab that is torn down next.
    pub fn kill(mut self) -> Result<(), LabError> {
        self.stop(true)
    }

    fn stop(&mut self, kill: bool) -> Result<(), LabError> {
        if self.down {
            return Ok(());
        }
        self.down = true;
        let args: &[&str] = if kill { &["--kill"] } else { &[] };
        let out = self
            .lab
            .script("pacemaker/pcmk-down.sh", args, DOWN_TIMEOUT)?;
        must("pcmk-down.sh", out).map(|_| ())
    }
}

impl Drop for Pacemaker<'_> {
    fn drop(&mut self) {
        if !self.down {
            if let Err(e) = self.stop(true) {
                eprintln!("hwtest: pcmk-down.sh --kill failed: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Trimmed from Pacemaker 2.1.5's `crm_mon -1 --output-as=xml`.
    const SAMPLE: &str = r#"<pacemaker-result api-version="2.25" request="crm_mon -1 --output-as=xml">
  <summary>
    <current_dc present="true" version="2.1.5" name="nodeB" id="2" with_quorum="true"/>
  </summary>
  <nodes>
    <node name="nodeA" id="1" online="false" standby="false" unclean="true" type="member"/>
    <node name="nodeB" id="2" online="true" standby="false" unclean="false" type="member"/>
  </nodes>
  <resources>
    <resource id="fence-lab" resource_agent="stonith:fence_lab" role="Started" active="true" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="1">
      <node name="nodeB" id="2" cached="true"/>
    </resource>
    <resource id="lease" resource_agent="ocf:hapair:sfex" role="Started" active="true" orphaned="false" blocked="false" managed="false" failed="false" failure_ignored="false" nodes_running_on="1">
      <node name="nodeB" id="2" cached="true"/>
    </resource>
    <clone id="drbd-r0-clone" multi_state="true" unique="false" maintenance="false" managed="true" disabled="false" failed="false" failure_ignored="false">
      <resource id="drbd-r0" resource_agent="ocf:linbit:drbd" role="Promoted" active="true" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="1">
        <node name="nodeB" id="2" cached="true"/>
      </resource>
      <resource id="drbd-r0" resource_agent="ocf:linbit:drbd" role="Stopped" active="false" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="0"/>
    </clone>
    <group id="g-svc" number_resources="2" maintenance="false" managed="true" disabled="false">
      <resource id="fs-r0" resource_agent="ocf:heartbeat:Filesystem" role="Started" active="true" orphaned="false" blocked="false" managed="true" failed="true" failure_ignored="false" nodes_running_on="1">
        <node name="nodeB" id="2" cached="true"/>
      </resource>
      <resource id="ip-svc" resource_agent="ocf:heartbeat:IPaddr2" role="Stopped" active="false" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="0"/>
    </group>
  </resources>
  <status code="0" message="OK"/>
</pacemaker-result>
"#;

    #[test]
    fn parses_nodes_dc_roles_and_parents() {
        let st = ClusterStatus::parse(SAMPLE).unwrap();
        assert_eq!(st.dc, Some(Node::B));
        assert_eq!(st.online, vec![Node::B]);
        assert_eq!(st.unclean, vec![Node::A]);
        assert_eq!(st.running_on("fence-lab"), vec![Node::B]);
        assert_eq!(st.promoted_on("drbd-r0"), vec![Node::B]);
        assert_eq!(st.running_on("drbd-r0"), vec![Node::B]);
        assert_eq!(st.get("drbd-r0").len(), 2);
        assert_eq!(
            st.get("drbd-r0")[0].parent.as_deref(),
            Some("drbd-r0-clone")
        );
        let lease = st.get("lease")[0];
        assert_eq!(lease.agent, "ocf:hapair:sfex");
        assert!(!lease.managed);
        assert_eq!(lease.parent, None);
        assert_eq!(st.get("fs-r0")[0].parent.as_deref(), Some("g-svc"));
        assert!(st.running_on("ip-svc").is_empty());
        assert_eq!(st.failed(), vec!["fs-r0@[B]".to_string()]);
    }

    #[test]
    fn refuses_what_is_not_crm_mon_output() {
        assert!(
            ClusterStatus::parse("crm_mon: Error: cluster is not available on this node").is_err()
        );
        assert!(ClusterStatus::parse("<a><b></a>").is_err());
    }
}
