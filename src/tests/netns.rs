//! Test and benchmark harness: two network namespaces joined by veth pairs,
//! an nftables table in each to cut or thin out links, and heartbeat nodes
//! running on their own threads *inside* a namespace (the thread `setns`es
//! before it creates its sockets, so a whole pair runs in one process and
//! shares one clock).
//!
//! Everything it creates is named `hbt-<pid>-<n>-…` and removed when the
//! [`Topology`] is dropped, also when a test panics; namespaces left behind
//! by a killed run (their pid is gone) are removed by the next one. Traffic
//! stays inside the namespaces: addresses are 10.201.<link>.{1,2}/24 on the
//! veth pairs, which exist nowhere else.
//!
//! Needs root, `ip` (iproute2) and `nft` (nftables); fails with a clear
//! message when one is missing.
//!
//! Included by path from two crates: the library's tests
//! (`runtime/heartbeat.rs`) and the benchmark (`hb_bench.rs`, which
//! re-exports `membership`, `proto` and `runtime` at its root so the
//! `crate::` paths below resolve in both).

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::membership::{Event, Status, Timing};
use crate::proto::{ClusterId, Keyring, NodeId, NodeView};
use crate::runtime::heartbeat::{Clock, Heartbeat, HeartbeatConfig, LinkConfig, TimedEvent};

/// UDP port the nodes use on every link.
pub const PORT: u16 = 5407;

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e} (is iproute2/nftables installed?)"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ip(args: &[&str]) -> Result<String, String> {
    run(Command::new("ip").args(args))
}

/// Checks the prerequisites once, with a message that says what to install.
pub fn require() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "the namespace tests need root (network namespaces, veth, nftables)"
    );
    for (tool, pkg) in [("ip", "iproute2"), ("nft", "nftables")] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).exists()))
            .unwrap_or(false)
            || ["/usr/sbin", "/sbin"]
                .iter()
                .any(|d| std::path::Path::new(d).join(tool).exists());
        assert!(
            found,
            "`{tool}` not found: install the `{pkg}` package (apt-get install {pkg})"
        );
    }
}

/// Removes `hbt-<pid>-…` namespaces whose process is gone.
fn sweep_stale() {
    let Ok(list) = ip(&["netns", "list"]) else {
        return;
    };
    for line in list.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix("hbt-") else {
            continue;
        };
        let Some(pid) = rest.split('-').next() else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// One veth pair: interface names and addresses on side 0 (A) and 1 (B).
#[derive(Debug, Clone)]
pub struct VethLink {
    /// Interface name in each namespace.
    pub ifname: [String; 2],
    /// Address of each side.
    pub addr: [Ipv4Addr; 2],
}

/// Two namespaces, `links` veth pairs between them, an nft table in each.
#[derive(Debug)]
pub struct Topology {
    /// Namespace names, side 0 (A) and 1 (B).
    pub ns: [String; 2],
    /// The links.
    pub links: Vec<VethLink>,
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in &self.ns {
            // deleting a namespace deletes its veth ends and nft tables
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

impl Topology {
    /// Creates the namespaces and links.
    pub fn new(links: usize) -> Topology {
        require();
        sweep_stale();
        let pid = std::process::id();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let ns = [format!("hbt-{pid}-{n}-a"), format!("hbt-{pid}-{n}-b")];
        // the guard exists before anything is created, so a failure half-way
        // still cleans up
        let mut topo = Topology {
            ns: ns.clone(),
            links: Vec::new(),
        };
        for name in &ns {
            ip(&["netns", "add", name]).unwrap();
            ip(&["-n", name, "link", "set", "lo", "up"]).unwrap();
        }
        for i in 0..links {
            let tag = format!("{}{}", pid % 100_000, n % 100);
            let ifname = [format!("h{tag}a{i}"), format!("h{tag}b{i}")];
            let link_octet = u8::try_from(i).unwrap();
            let addr = [
                Ipv4Addr::new(10, 201, link_octet, 1),
                Ipv4Addr::new(10, 201, link_octet, 2),
            ];
            ip(&[
                "link", "add", &ifname[0], "netns", &ns[0], "type", "veth", "peer", "name",
                &ifname[1], "netns", &ns[1],
            ])
            .unwrap();
            for s in 0..2 {
                ip(&[
                    "-n",
                    &ns[s],
                    "addr",
                    "add",
                    &format!("{}/24", addr[s]),
                    "dev",
                    &ifname[s],
                ])
                .unwrap();
                ip(&["-n", &ns[s], "link", "set", &ifname[s], "up"]).unwrap();
            }
            topo.links.push(VethLink { ifname, addr });
        }
        for s in 0..2 {
            let mut script = String::from(
                "table inet hbt {\n  chain input {\n    type filter hook input priority 0; policy accept;\n",
            );
            for (i, l) in topo.links.iter().enumerate() {
                script += &format!("    iifname \"{}\" jump link{i}\n", l.ifname[s]);
            }
            script += "  }\n";
            for i in 0..topo.links.len() {
                script += &format!("  chain link{i} {{\n  }}\n");
            }
            script += "}\n";
            topo.nft(s, &script).unwrap();
        }
        topo
    }

    /// Runs an nft script in side `s`'s namespace (one transaction).
    pub fn nft(&self, s: usize, script: &str) -> Result<(), String> {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.ns[s], "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("nft: {e} (install nftables)"))?;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "nft in {}: {}\n{script}",
                self.ns[s],
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// Drops every UDP packet arriving on `links` at side `s`.
    pub fn cut(&self, s: usize, links: &[usize]) {
        let script: String = links
            .iter()
            .map(|i| format!("flush chain inet hbt link{i}\nadd rule inet hbt link{i} meta l4proto udp counter drop\n"))
            .collect();
        self.nft(s, &script).unwrap();
    }

    /// Cuts `links` on both sides (two transactions, A then B).
    pub fn cut_both_sides(&self, links: &[usize]) {
        self.cut(0, links);
        self.cut(1, links);
    }

    /// Drops `pct` % of the UDP packets arriving on `links` at side `s`, at random.
    pub fn loss(&self, s: usize, links: &[usize], pct: u32) {
        let script: String = links
            .iter()
            .map(|i| {
                format!(
                    "flush chain inet hbt link{i}\nadd rule inet hbt link{i} meta l4proto udp numgen random mod 100 < {pct} counter drop\n"
                )
            })
            .collect();
        self.nft(s, &script).unwrap();
    }

    /// Removes the cut or loss rules of `links` at side `s`.
    pub fn heal(&self, s: usize, links: &[usize]) {
        let script: String = links
            .iter()
            .map(|i| format!("flush chain inet hbt link{i}\n"))
            .collect();
        self.nft(s, &script).unwrap();
    }

    /// Packets dropped so far by the rule on `link` at side `s` (0 if none).
    pub fn dropped(&self, s: usize, link: usize) -> u64 {
        let out = run(Command::new("ip").args([
            "netns",
            "exec",
            &self.ns[s],
            "nft",
            "list",
            "chain",
            "inet",
            "hbt",
            &format!("link{link}"),
        ]))
        .unwrap();
        out.split_whitespace()
            .skip_while(|w| *w != "packets")
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// `ip link set <veth> down|up` at side `s`.
    pub fn set_link(&self, s: usize, link: usize, up: bool) {
        ip(&[
            "-n",
            &self.ns[s],
            "link",
            "set",
            &self.links[link].ifname[s],
            if up { "up" } else { "down" },
        ])
        .unwrap();
    }

    /// Adds an extra address on side `s` of `link` (for wrong-source tests).
    pub fn add_addr(&self, s: usize, link: usize, addr: Ipv4Addr) {
        ip(&[
            "-n",
            &self.ns[s],
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            &self.links[link].ifname[s],
        ])
        .unwrap();
    }

    /// The heartbeat config of side `s`.
    pub fn config(&self, s: usize, timing: Timing) -> HeartbeatConfig {
        HeartbeatConfig {
            cluster: ClusterId(0x4842),
            local: NodeId(u32::try_from(s).unwrap() + 1),
            peer: NodeId(2 - u32::try_from(s).unwrap()),
            timing,
            links: self
                .links
                .iter()
                .enumerate()
                .map(|(i, l)| LinkConfig {
                    name: format!("link{i}"),
                    local: SocketAddr::V4(SocketAddrV4::new(l.addr[s], PORT)),
                    peer: SocketAddr::V4(SocketAddrV4::new(l.addr[1 - s], PORT)),
                    interface: Some(l.ifname[s].clone()),
                })
                .collect(),
        }
    }

    /// Runs `f` on a thread inside side `s`'s namespace and returns its result.
    pub fn in_ns<T: Send + 'static>(&self, s: usize, f: impl FnOnce() -> T + Send + 'static) -> T {
        let ns = self.ns[s].clone();
        std::thread::spawn(move || {
            enter(&ns);
            f()
        })
        .join()
        .expect("namespace thread panicked")
    }

    /// A plain UDP socket bound in side `s`'s namespace.
    pub fn udp_socket(&self, s: usize, bind: SocketAddr) -> UdpSocket {
        self.in_ns(s, move || UdpSocket::bind(bind).expect("bind test socket"))
    }

    /// A packet capture socket (AF_PACKET) in side `s`'s namespace.
    pub fn capture(&self, s: usize) -> Capture {
        let sock = self.in_ns(s, || {
            // ETH_P_ALL in network byte order
            let proto = socket2::Protocol::from(i32::from(0x0003u16.to_be()));
            socket2::Socket::new(socket2::Domain::PACKET, socket2::Type::DGRAM, Some(proto))
                .expect("AF_PACKET socket")
        });
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        Capture { sock }
    }
}

/// Moves the calling thread into namespace `ns`.
fn enter(ns: &str) {
    let f = File::open(format!("/run/netns/{ns}"))
        .unwrap_or_else(|e| panic!("open /run/netns/{ns}: {e}"));
    nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
        .unwrap_or_else(|e| panic!("setns {ns}: {e}"));
}

/// Captured UDP datagrams (IPv4), as seen on the wire.
pub struct Capture {
    sock: socket2::Socket,
}

/// One captured datagram.
#[derive(Debug, Clone)]
pub struct Datagram {
    /// Source.
    pub src: SocketAddrV4,
    /// Destination.
    pub dst: SocketAddrV4,
    /// Payload.
    pub payload: Vec<u8>,
}

impl Capture {
    /// Reads for `dur`, keeping UDP datagrams from `src_ip` to `dst_port`.
    pub fn collect(&mut self, dur: Duration, src_ip: Ipv4Addr, dst_port: u16) -> Vec<Datagram> {
        let end = std::time::Instant::now() + dur;
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while std::time::Instant::now() < end {
            let n = match (&self.sock).read(&mut buf) {
                Ok(n) => n,
                Err(_) => continue,
            };
            if let Some(d) = parse_ipv4_udp(&buf[..n]) {
                if *d.src.ip() == src_ip && d.dst.port() == dst_port {
                    got.push(d);
                }
            }
        }
        got
    }
}

fn parse_ipv4_udp(b: &[u8]) -> Option<Datagram> {
    if b.len() < 20 || b[0] >> 4 != 4 || b[9] != 17 {
        return None;
    }
    let ihl = usize::from(b[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([b[2], b[3]]));
    let udp = b.get(ihl..total.min(b.len()))?;
    if udp.len() < 8 {
        return None;
    }
    let src = SocketAddrV4::new(
        Ipv4Addr::new(b[12], b[13], b[14], b[15]),
        u16::from_be_bytes([udp[0], udp[1]]),
    );
    let dst = SocketAddrV4::new(
        Ipv4Addr::new(b[16], b[17], b[18], b[19]),
        u16::from_be_bytes([udp[2], udp[3]]),
    );
    let len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    Some(Datagram {
        src,
        dst,
        payload: udp.get(8..len.min(udp.len()))?.to_vec(),
    })
}

/// A heartbeat node running on its own thread inside a namespace.
pub struct Node {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    join: Option<JoinHandle<Status>>,
    events: mpsc::Receiver<TimedEvent>,
    /// Every event received so far.
    pub history: Vec<TimedEvent>,
    /// The node's latest status.
    pub status: tokio::sync::watch::Receiver<Status>,
    /// Our view (send a new one to change it).
    pub view: tokio::sync::watch::Sender<NodeView>,
    /// Key set.
    pub keys: tokio::sync::watch::Sender<Keyring>,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

impl Node {
    /// Starts a node in namespace `ns`.
    pub fn spawn(
        ns: &str,
        cfg: HeartbeatConfig,
        keys: Keyring,
        view: NodeView,
        clock: Clock,
    ) -> Node {
        let ns = ns.to_owned();
        let (ready_tx, ready_rx) = mpsc::channel();
        let (ev_tx, ev_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let join = std::thread::Builder::new()
            .name(format!("hb-{ns}"))
            .spawn(move || {
                enter(&ns);
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let (hb, mut handle) = match Heartbeat::new(cfg, keys, view, clock) {
                        Ok(x) => x,
                        Err(e) => {
                            ready_tx.send(Err(e.to_string())).unwrap();
                            return None;
                        }
                    };
                    ready_tx
                        .send(Ok((
                            handle.status.clone(),
                            handle.view.clone(),
                            handle.keys.clone(),
                        )))
                        .unwrap();
                    tokio::spawn(async move {
                        while let Some(e) = handle.events.recv().await {
                            if ev_tx.send(e).is_err() {
                                break;
                            }
                        }
                    });
                    Some(
                        hb.run(async {
                            let _ = stop_rx.await;
                        })
                        .await,
                    )
                })
                .unwrap_or_else(|| panic!("heartbeat did not start"))
            })
            .unwrap();
        let (status, view, keys) = ready_rx
            .recv()
            .unwrap()
            .unwrap_or_else(|e| panic!("heartbeat: {e}"));
        Node {
            stop: Some(stop_tx),
            join: Some(join),
            events: ev_rx,
            history: Vec::new(),
            status,
            view,
            keys,
        }
    }

    /// Stops the node (as a crash would: no goodbye) and returns its last status.
    pub fn stop(mut self) -> Status {
        let _ = self.stop.take().unwrap().send(());
        self.join.take().unwrap().join().unwrap()
    }

    /// Waits up to `timeout` for an event matching `f`; every event seen is
    /// kept in `history`.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        f: impl Fn(&Event) -> bool,
    ) -> Option<TimedEvent> {
        let end = std::time::Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(std::time::Instant::now());
            match self.events.recv_timeout(left) {
                Ok(e) => {
                    self.history.push(e.clone());
                    if f(&e.event) {
                        return Some(e);
                    }
                }
                Err(_) => return None,
            }
        }
    }

    /// Collects events for `dur`.
    pub fn drain_for(&mut self, dur: Duration) {
        let _ = self.wait_for(dur, |_| false);
    }

    /// A snapshot of the status.
    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }
}
