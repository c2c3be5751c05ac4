//! The built-in `address` resource: a virtual IP the daemon adds and
//! removes itself over rtnetlink, instead of running `ocf:heartbeat:IPaddr2`
//! (a shell agent that forks dozens of times per operation). IPaddr2 stays
//! usable for the same job.
//!
//! Parameters (IPaddr2's names where they exist):
//! - `ip` (required): the IPv4 or IPv6 address.
//! - `cidr_netmask`: prefix length (IPv4 also as a dotted netmask). Default:
//!   the prefix of the connected route that covers `ip` (what IPaddr2's
//!   `findif` does), looked up at each start; start fails (hard) when no
//!   connected route covers `ip`.
//! - `nic`: the interface. Default: the interface of the connected route
//!   (no gateway, main table) with the longest prefix covering `ip`. Stop
//!   and monitor without `nic` look for the address on every interface.
//! - `label` (alias `iflabel`): IPv4 label suffix; the address is labelled
//!   `NIC:LABEL` (15 bytes at most, as the kernel demands).
//! - `arp_count` (default 5, 0 = none): gratuitous ARPs (IPv4) or
//!   unsolicited neighbour advertisements (IPv6) after start.
//! - `arp_interval` (default 200ms): between them; humantime, or a bare
//!   number of milliseconds as IPaddr2 takes it.
//! - `dad_timeout` (default 200ms, "0" disables): how long the duplicate
//!   check listens (IPv4: an RFC 5227 ARP probe, twice; any other host
//!   answering for or probing `ip` fails start, naming its MAC).
//!
//! Operations:
//! - start: idempotent (already on `nic`: no check, no add, still
//!   announced); duplicate check; add (with the broadcast address for
//!   IPv4 prefixes up to /30, like `ip addr add … brd +`); verify it is
//!   there; announce. The first announcement is sent before start
//!   returns, the other `arp_count - 1` from a short-lived thread at
//!   `arp_interval` (IPaddr2 backgrounds its `send_arp` too); a stop of
//!   the same address cancels the rest.
//! - stop: remove it wherever it is (on `nic` if given); Ok when absent.
//! - monitor: Ok when it is on `nic`, NotRunning when not, Failed(Soft)
//!   when it is but `nic` is down (not up, or no carrier).
//! - promote/demote: Failed(Fatal): an address has no roles.
//!
//! IPv6: the duplicate check is the kernel's own DAD (the address is added
//! without `nodad` and start waits, up to 5 s, for it to leave the
//! tentative state; `dadfailed` removes it again and fails hard, without a
//! MAC, which the kernel does not report); with `dad_timeout` "0" the
//! address is added `nodad`. Announcements are unsolicited neighbour
//! advertisements (override flag) to ff02::1.
//!
//! Failure classes: problems of this node's setup (no such `nic`, no route
//! covering `ip`, `nic` down at start, a duplicate) are Hard, so the pair
//! moves the address; netlink or socket trouble is Soft.
//!
//! Everything runs in the calling thread's network namespace; `run` blocks
//! (a few system calls plus up to `dad_timeout`), the daemon calls it on a
//! blocking thread under its own timeout.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::arp::{self, ArpSocket, Iface, NaSocket};
use super::netlink::{
    self, AddrMsg, IFA_F_DADFAILED, IFA_F_NODAD, IFA_F_TENTATIVE, IFF_LOWER_UP, IFF_UP, Link,
    Netlink, NetlinkError, RT_SCOPE_UNIVERSE, RT_TABLE_MAIN, RTN_UNICAST,
};
use super::{BuiltinResult, ParamError};
use crate::engine::{FailClass, Op, Outcome};

/// How long a netlink answer may take.
const NETLINK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long start waits for IPv6 DAD.
const DAD6_LIMIT: Duration = Duration::from_secs(5);
/// Linux's interface name limit (IFNAMSIZ - 1).
const IFNAMSIZ: usize = 15;

/// A virtual IP address resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    ip: IpAddr,
    prefix: Option<u8>,
    nic: Option<String>,
    label: Option<String>,
    arp_count: u32,
    arp_interval: Duration,
    dad_timeout: Duration,
}

fn perr(param: &str, message: impl Into<String>) -> ParamError {
    ParamError {
        param: param.to_owned(),
        message: message.into(),
    }
}

/// "200ms", "1s" or a bare number of milliseconds.
fn parse_millis(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<u64>() {
        return Ok(Duration::from_millis(ms));
    }
    humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e} (e.g. \"200ms\" or 200)"))
}

fn valid_ifname(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > IFNAMSIZ {
        return Err(format!("{s:?}: 1 to {IFNAMSIZ} bytes"));
    }
    if s.chars()
        .any(|c| c == '/' || c.is_whitespace() || c.is_control())
        || s == "."
        || s == ".."
    {
        return Err(format!("{s:?}: not an interface name"));
    }
    Ok(())
}

fn prefix_of(mask: &str, ip: IpAddr) -> Result<u8, String> {
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if let Ok(p) = mask.parse::<u8>() {
        return if p <= max {
            Ok(p)
        } else {
            Err(format!("{p}: a prefix length is 0 to {max}"))
        };
    }
    if ip.is_ipv4() {
        if let Ok(m) = mask.parse::<Ipv4Addr>() {
            let bits = u32::from(m);
            if bits.leading_ones() + bits.trailing_zeros() == 32 {
                return Ok(u8::try_from(bits.leading_ones()).unwrap_or(32));
            }
            return Err(format!("{mask}: not a contiguous netmask"));
        }
    }
    Err(format!(
        "{mask:?}: a prefix length (0 to {max}) or, for IPv4, a netmask"
    ))
}

/// Does the prefix `net/len` contain `ip`?
fn covers(net: IpAddr, len: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

fn broadcast(ip: IpAddr, prefix: u8) -> Option<Ipv4Addr> {
    match ip {
        IpAddr::V4(a) if prefix <= 30 => {
            let host = u32::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
            Some(Ipv4Addr::from(u32::from(a) | host))
        }
        _ => None,
    }
}

fn ok(reason: Option<String>) -> BuiltinResult {
    BuiltinResult {
        outcome: Outcome::Ok,
        reason,
    }
}

fn failed(class: FailClass, reason: impl Into<String>) -> BuiltinResult {
    BuiltinResult {
        outcome: Outcome::Failed(class),
        reason: Some(reason.into()),
    }
}

fn soft(e: NetlinkError) -> BuiltinResult {
    failed(FailClass::Soft, e.to_string())
}

/// The calling thread's network namespace (`net:[inode]`), so that the
/// same address in two namespaces of one process (tests) stays apart.
fn netns_id() -> String {
    std::fs::read_link("/proc/thread-self/ns/net")
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

type GenKey = (String, IpAddr);

/// Announcement generations per address: a stop bumps it, so the rest of
/// a start's background announcements stop.
fn generations() -> &'static Mutex<HashMap<GenKey, u64>> {
    static G: OnceLock<Mutex<HashMap<GenKey, u64>>> = OnceLock::new();
    G.get_or_init(|| Mutex::new(HashMap::new()))
}

fn generation(key: &GenKey) -> u64 {
    generations()
        .lock()
        .map(|g| g.get(key).copied().unwrap_or(0))
        .unwrap_or(0)
}

fn bump_generation(key: GenKey) {
    if let Ok(mut g) = generations().lock() {
        *g.entry(key).or_insert(0) += 1;
    }
}

/// Drops `t` on a short-lived thread: closing a packet socket waits for an
/// RCU grace period (`synchronize_net` in the kernel's `packet_release`,
/// ~10 ms), which start need not wait for.
fn drop_off_path<T: Send + 'static>(t: T) {
    let _ = std::thread::Builder::new()
        .name("hapair-close".into())
        .spawn(move || drop(t));
}

/// Where the address goes: the interface and the prefix.
struct Placement {
    link: Link,
    prefix: u8,
}

impl Address {
    /// Reads and checks the parameters (no system access: `nic` and
    /// `cidr_netmask` defaults are found at start). Every problem is
    /// reported, each naming its parameter; unknown parameters are errors.
    pub fn from_params(params: &BTreeMap<String, String>) -> Result<Address, Vec<ParamError>> {
        let mut errors = Vec::new();
        for k in params.keys() {
            if ![
                "ip",
                "cidr_netmask",
                "nic",
                "label",
                "iflabel",
                "arp_count",
                "arp_interval",
                "dad_timeout",
            ]
            .contains(&k.as_str())
            {
                errors.push(perr(k, "unknown parameter of the address type"));
            }
        }
        let ip = match params.get("ip").map(|s| s.trim()) {
            None | Some("") => {
                errors.push(perr("ip", "required"));
                None
            }
            Some(s) => match s.parse::<IpAddr>() {
                Ok(ip) if ip.is_unspecified() || ip.is_multicast() || ip.is_loopback() => {
                    errors.push(perr("ip", format!("{s}: not a usable unicast address")));
                    None
                }
                Ok(IpAddr::V4(a)) if a.is_broadcast() => {
                    errors.push(perr("ip", format!("{s}: not a usable unicast address")));
                    None
                }
                Ok(ip) => Some(ip),
                Err(_) => {
                    errors.push(perr("ip", format!("{s:?}: not an IPv4 or IPv6 address")));
                    None
                }
            },
        };
        let prefix = match (params.get("cidr_netmask").map(|s| s.trim()), ip) {
            (None | Some(""), _) => None,
            (Some(m), Some(ip)) => match prefix_of(m, ip) {
                Ok(p) => Some(p),
                Err(e) => {
                    errors.push(perr("cidr_netmask", e));
                    None
                }
            },
            (Some(_), None) => None,
        };
        let nic = match params.get("nic").map(|s| s.trim()) {
            None | Some("") => None,
            Some(n) => match valid_ifname(n) {
                Ok(()) => Some(n.to_owned()),
                Err(e) => {
                    errors.push(perr("nic", e));
                    None
                }
            },
        };
        let label = match (params.get("label"), params.get("iflabel")) {
            (Some(_), Some(_)) => {
                errors.push(perr("iflabel", "give label or iflabel, not both"));
                None
            }
            (Some(l), None) | (None, Some(l)) if !l.trim().is_empty() => {
                let param = if params.contains_key("label") {
                    "label"
                } else {
                    "iflabel"
                };
                let l = l.trim();
                if ip.is_some_and(|ip| ip.is_ipv6()) {
                    errors.push(perr(param, "labels exist for IPv4 addresses only"));
                    None
                } else if l
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == '/')
                {
                    errors.push(perr(param, format!("{l:?}: no spaces or slashes")));
                    None
                } else if let Some(n) = &nic
                    && n.len() + 1 + l.len() > IFNAMSIZ
                {
                    errors.push(perr(
                        param,
                        format!("{n}:{l} is longer than the kernel's {IFNAMSIZ} bytes"),
                    ));
                    None
                } else {
                    Some(l.to_owned())
                }
            }
            _ => None,
        };
        let arp_count = match params.get("arp_count").map(|s| s.trim()) {
            None | Some("") => 5,
            Some(s) => match s.parse::<u32>() {
                Ok(n) if n <= 100 => n,
                _ => {
                    errors.push(perr("arp_count", format!("{s:?}: a count from 0 to 100")));
                    5
                }
            },
        };
        let mut duration =
            |name: &str, default: Duration, max: Duration| match params.get(name).map(|s| s.trim())
            {
                None | Some("") => default,
                Some(s) => match parse_millis(s) {
                    Ok(d) if d <= max => d,
                    Ok(_) => {
                        errors.push(perr(
                            name,
                            format!("{s}: at most {}", humantime::format_duration(max)),
                        ));
                        default
                    }
                    Err(e) => {
                        errors.push(perr(name, e));
                        default
                    }
                },
            };
        let arp_interval = duration(
            "arp_interval",
            Duration::from_millis(200),
            Duration::from_secs(10),
        );
        let dad_timeout = duration(
            "dad_timeout",
            Duration::from_millis(200),
            Duration::from_secs(10),
        );
        match ip {
            Some(ip) if errors.is_empty() => Ok(Address {
                ip,
                prefix,
                nic,
                label,
                arp_count,
                arp_interval,
                dad_timeout,
            }),
            _ => Err(errors),
        }
    }

    /// The address.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// The configured interface, if any.
    pub fn nic(&self) -> Option<&str> {
        self.nic.as_deref()
    }

    /// Runs one operation. Blocking: the daemon calls it on a blocking
    /// thread with its own timeout.
    pub fn run(&self, op: Op) -> BuiltinResult {
        match op {
            Op::Start => self.start(),
            Op::Stop => self.stop(),
            Op::Monitor => self.monitor(),
            Op::Promote | Op::Demote => failed(
                FailClass::Fatal,
                format!("the address type has no {op} operation"),
            ),
        }
    }

    /// Finds the interface and prefix for start.
    fn place(&self, nl: &mut Netlink, links: &[Link]) -> Result<Placement, BuiltinResult> {
        let mut connected = || -> Result<Option<(u32, u8)>, BuiltinResult> {
            let family = if self.ip.is_ipv4() {
                netlink::AF_INET
            } else {
                netlink::AF_INET6
            };
            let routes = nl.routes(family).map_err(soft)?;
            Ok(routes
                .iter()
                .filter(|r| {
                    r.table == RT_TABLE_MAIN
                        && r.kind == RTN_UNICAST
                        && r.gateway.is_none()
                        && r.dst_len > 0
                        && r.dst.is_some_and(|d| covers(d, r.dst_len, self.ip))
                })
                .filter_map(|r| Some((r.oif?, r.dst_len)))
                .filter(|(oif, _)| {
                    self.nic
                        .as_ref()
                        .is_none_or(|n| links.iter().any(|l| l.index == *oif && &l.name == n))
                })
                .max_by_key(|(_, len)| *len))
        };
        match &self.nic {
            Some(n) => {
                let Some(link) = links.iter().find(|l| &l.name == n) else {
                    return Err(failed(
                        FailClass::Hard,
                        format!("nic {n}: no such interface on this node"),
                    ));
                };
                let prefix = match self.prefix {
                    Some(p) => p,
                    None => match connected()? {
                        Some((_, len)) => len,
                        None => {
                            return Err(failed(
                                FailClass::Hard,
                                format!(
                                    "cidr_netmask not given and no connected route on {n} covers {}",
                                    self.ip
                                ),
                            ));
                        }
                    },
                };
                Ok(Placement {
                    link: link.clone(),
                    prefix,
                })
            }
            None => {
                let Some((oif, len)) = connected()? else {
                    return Err(failed(
                        FailClass::Hard,
                        format!(
                            "nic not given and no connected route covers {} on this node",
                            self.ip
                        ),
                    ));
                };
                let Some(link) = links.iter().find(|l| l.index == oif) else {
                    return Err(failed(
                        FailClass::Soft,
                        format!("route to {} names interface {oif}, which is gone", self.ip),
                    ));
                };
                Ok(Placement {
                    link: link.clone(),
                    prefix: self.prefix.unwrap_or(len),
                })
            }
        }
    }

    fn ours<'a>(&self, addrs: &'a [AddrMsg]) -> impl Iterator<Item = &'a AddrMsg> {
        let ip = self.ip;
        addrs.iter().filter(move |a| a.addr == ip)
    }

    fn start(&self) -> BuiltinResult {
        let mut nl = match Netlink::open(NETLINK_TIMEOUT) {
            Ok(n) => n,
            Err(e) => return soft(e),
        };
        let links = match nl.links() {
            Ok(l) => l,
            Err(e) => return soft(e),
        };
        let place = match self.place(&mut nl, &links) {
            Ok(p) => p,
            Err(r) => return r,
        };
        let nic = place.link.name.clone();
        if place.link.flags & IFF_UP == 0 {
            return failed(FailClass::Hard, format!("nic {nic} is down"));
        }
        let addrs = match nl.addresses() {
            Ok(a) => a,
            Err(e) => return soft(e),
        };
        if let Some(a) = self.ours(&addrs).find(|a| a.index != place.link.index) {
            let other = links
                .iter()
                .find(|l| l.index == a.index)
                .map_or_else(|| a.index.to_string(), |l| l.name.clone());
            return failed(
                FailClass::Hard,
                format!("{} is already on {other}, not {nic}", self.ip),
            );
        }
        let present = self.ours(&addrs).next().is_some();
        let iface = arp::iface(&nic);
        let mut notes = Vec::new();
        // the probe's socket, kept for the announcements
        let mut arp_sock = None;
        if !present {
            if let IpAddr::V4(v4) = self.ip
                && !self.dad_timeout.is_zero()
            {
                let probe = iface
                    .as_ref()
                    .map_err(|e| std::io::Error::new(e.kind(), e.to_string()))
                    .and_then(|i| ArpSocket::open(*i))
                    .and_then(|s| {
                        let r = s.probe(v4, self.dad_timeout);
                        arp_sock = Some(s);
                        r
                    });
                match probe {
                    Ok(Some(mac)) => {
                        return failed(
                            FailClass::Hard,
                            format!(
                                "{v4} is already in use on {nic}'s network: {} answered",
                                arp::mac_string(&mac)
                            ),
                        );
                    }
                    Ok(None) => {}
                    Err(e) => {
                        return failed(FailClass::Soft, format!("duplicate check on {nic}: {e}"));
                    }
                }
            }
            if let Err(r) = self.add(&mut nl, &place) {
                return r;
            }
        }
        if self.arp_count > 0 {
            match iface {
                Ok(i) => {
                    if let Err(e) = self.announce(i, arp_sock.take()) {
                        notes.push(format!("announcement on {nic} not sent: {e}"));
                    }
                }
                Err(e) => notes.push(format!("announcement on {nic} not sent: {e}")),
            }
        }
        if let Some(s) = arp_sock {
            drop_off_path(s);
        }
        if present {
            notes.insert(0, format!("{} was already on {nic}", self.ip));
        }
        ok(if notes.is_empty() {
            None
        } else {
            Some(notes.join("; "))
        })
    }

    fn add(&self, nl: &mut Netlink, place: &Placement) -> Result<(), BuiltinResult> {
        let nic = &place.link.name;
        let msg = AddrMsg {
            index: place.link.index,
            prefix: place.prefix,
            flags: if self.ip.is_ipv6() && self.dad_timeout.is_zero() {
                IFA_F_NODAD
            } else {
                0
            },
            scope: RT_SCOPE_UNIVERSE,
            addr: self.ip,
            broadcast: broadcast(self.ip, place.prefix),
            label: self.label.as_ref().map(|l| format!("{nic}:{l}")),
        };
        match nl.add_address(&msg) {
            Ok(()) => {}
            Err(e) if e.errno() == Some(nix::libc::EEXIST) => {}
            Err(e) => return Err(failed(FailClass::Soft, format!("on {nic}: {e}"))),
        }
        let deadline = Instant::now() + DAD6_LIMIT;
        loop {
            let addrs = nl.addresses().map_err(soft)?;
            let Some(a) = self.ours(&addrs).find(|a| a.index == place.link.index) else {
                return Err(failed(
                    FailClass::Soft,
                    format!("{} was added to {nic} but is not there", self.ip),
                ));
            };
            if a.flags & IFA_F_DADFAILED != 0 {
                let _ = nl.del_address(a);
                return Err(failed(
                    FailClass::Hard,
                    format!(
                        "{} is already in use on {nic}'s network (IPv6 duplicate address detection failed)",
                        self.ip
                    ),
                ));
            }
            if a.flags & IFA_F_TENTATIVE == 0 {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(failed(
                    FailClass::Soft,
                    format!("{} still tentative on {nic} after {DAD6_LIMIT:?}", self.ip),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends the first announcement now, the others from a thread (which
    /// also closes the socket: see [`drop_off_path`]).
    fn announce(&self, iface: Iface, sock: Option<ArpSocket>) -> std::io::Result<()> {
        let ip = self.ip;
        let send: Box<dyn Fn() -> std::io::Result<()> + Send> = match ip {
            IpAddr::V4(v4) => {
                let s = match sock {
                    Some(s) => s,
                    None => ArpSocket::open(iface)?,
                };
                let frame = arp::gratuitous_arp(iface.mac, v4);
                Box::new(move || s.send(&frame))
            }
            IpAddr::V6(v6) => {
                let s = NaSocket::open(&iface)?;
                Box::new(move || s.advertise(v6))
            }
        };
        send()?;
        if self.arp_count > 1 {
            let (count, interval) = (self.arp_count - 1, self.arp_interval);
            let key = (netns_id(), ip);
            let gen_at_start = generation(&key);
            std::thread::Builder::new()
                .name("hapair-garp".into())
                .spawn(move || {
                    for _ in 0..count {
                        std::thread::sleep(interval);
                        if generation(&key) != gen_at_start {
                            return; // stopped meanwhile
                        }
                        if let Err(e) = send() {
                            tracing::warn!(ip = %ip, cause = %e, "gratuitous ARP/NA failed");
                            return;
                        }
                    }
                })?;
        } else {
            drop_off_path(send);
        }
        Ok(())
    }

    fn stop(&self) -> BuiltinResult {
        bump_generation((netns_id(), self.ip));
        let mut nl = match Netlink::open(NETLINK_TIMEOUT) {
            Ok(n) => n,
            Err(e) => return soft(e),
        };
        let (links, addrs) = match nl.links().and_then(|l| Ok((l, nl.addresses()?))) {
            Ok(x) => x,
            Err(e) => return soft(e),
        };
        let on_nic = |a: &&AddrMsg| {
            self.nic
                .as_ref()
                .is_none_or(|n| links.iter().any(|l| l.index == a.index && &l.name == n))
        };
        let mut removed = 0;
        for a in self.ours(&addrs).filter(on_nic) {
            match nl.del_address(a) {
                Ok(()) => removed += 1,
                Err(e) if e.errno() == Some(nix::libc::EADDRNOTAVAIL) => {}
                Err(e) => return soft(e),
            }
        }
        match nl.addresses() {
            Ok(after)
                if after
                    .iter()
                    .filter(|a| a.addr == self.ip)
                    .any(|a| on_nic(&a)) =>
            {
                failed(
                    FailClass::Soft,
                    format!("{} is still there after removing it", self.ip),
                )
            }
            Ok(_) => ok((removed == 0).then(|| format!("{} was not configured", self.ip))),
            Err(e) => soft(e),
        }
    }

    fn monitor(&self) -> BuiltinResult {
        let mut nl = match Netlink::open(NETLINK_TIMEOUT) {
            Ok(n) => n,
            Err(e) => return soft(e),
        };
        let (links, addrs) = match nl.links().and_then(|l| Ok((l, nl.addresses()?))) {
            Ok(x) => x,
            Err(e) => return soft(e),
        };
        let found = self.ours(&addrs).find_map(|a| {
            links
                .iter()
                .find(|l| l.index == a.index)
                .filter(|l| self.nic.as_ref().is_none_or(|n| &l.name == n))
        });
        match found {
            None => BuiltinResult {
                outcome: Outcome::NotRunning,
                reason: Some(match &self.nic {
                    Some(n) => format!("{} is not on {n}", self.ip),
                    None => format!("{} is not configured", self.ip),
                }),
            },
            Some(l) if l.flags & IFF_UP == 0 => failed(
                FailClass::Soft,
                format!("{} is on {}, which is down", self.ip, l.name),
            ),
            Some(l) if l.flags & IFF_LOWER_UP == 0 => failed(
                FailClass::Soft,
                format!("{} is on {}, which has no carrier", self.ip, l.name),
            ),
            Some(_) => ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn bad(kv: &[(&str, &str)]) -> Vec<String> {
        Address::from_params(&params(kv))
            .unwrap_err()
            .into_iter()
            .map(|e| e.param)
            .collect()
    }

    #[test]
    fn defaults() {
        let a = Address::from_params(&params(&[("ip", "192.0.2.10")])).unwrap();
        assert_eq!(
            a,
            Address {
                ip: "192.0.2.10".parse().unwrap(),
                prefix: None,
                nic: None,
                label: None,
                arp_count: 5,
                arp_interval: Duration::from_millis(200),
                dad_timeout: Duration::from_millis(200),
            }
        );
    }

    #[test]
    fn every_parameter() {
        let a = Address::from_params(&params(&[
            ("ip", "192.0.2.10"),
            ("cidr_netmask", "255.255.255.0"),
            ("nic", "eth0"),
            ("iflabel", "vip"),
            ("arp_count", "3"),
            ("arp_interval", "500"),
            ("dad_timeout", "0"),
        ]))
        .unwrap();
        assert_eq!(a.prefix, Some(24));
        assert_eq!(a.label.as_deref(), Some("vip"));
        assert_eq!(a.arp_interval, Duration::from_millis(500));
        assert!(a.dad_timeout.is_zero());
        let a = Address::from_params(&params(&[
            ("ip", "2001:db8::10"),
            ("cidr_netmask", "64"),
            ("arp_interval", "1s"),
        ]))
        .unwrap();
        assert_eq!(a.prefix, Some(64));
        assert_eq!(a.arp_interval, Duration::from_secs(1));
    }

    #[test]
    fn bad_params_name_the_param() {
        assert_eq!(bad(&[]), ["ip"]);
        assert_eq!(bad(&[("ip", "10.0.0.300")]), ["ip"]);
        assert_eq!(bad(&[("ip", "224.0.0.1")]), ["ip"]);
        assert_eq!(bad(&[("ip", "0.0.0.0")]), ["ip"]);
        assert_eq!(
            bad(&[("ip", "10.0.0.1"), ("cidr_netmask", "33")]),
            ["cidr_netmask"]
        );
        assert_eq!(
            bad(&[("ip", "10.0.0.1"), ("cidr_netmask", "255.0.255.0")]),
            ["cidr_netmask"]
        );
        assert_eq!(
            bad(&[("ip", "2001:db8::1"), ("cidr_netmask", "129")]),
            ["cidr_netmask"]
        );
        assert_eq!(bad(&[("ip", "10.0.0.1"), ("nic", "a/b")]), ["nic"]);
        assert_eq!(
            bad(&[("ip", "10.0.0.1"), ("nic", "averyveryverylongname")]),
            ["nic"]
        );
        assert_eq!(
            bad(&[
                ("ip", "10.0.0.1"),
                ("nic", "eth0123456"),
                ("label", "toolong")
            ]),
            ["label"]
        );
        assert_eq!(bad(&[("ip", "2001:db8::1"), ("label", "x")]), ["label"]);
        assert_eq!(
            bad(&[("ip", "10.0.0.1"), ("label", "x"), ("iflabel", "y")]),
            ["iflabel"]
        );
        assert_eq!(
            bad(&[("ip", "10.0.0.1"), ("arp_count", "-1")]),
            ["arp_count"]
        );
        assert_eq!(
            bad(&[("ip", "10.0.0.1"), ("arp_interval", "soon")]),
            ["arp_interval"]
        );
        assert_eq!(
            bad(&[("ip", "10.0.0.1"), ("dad_timeout", "1h")]),
            ["dad_timeout"]
        );
        assert_eq!(bad(&[("ip", "10.0.0.1"), ("netmask", "24")]), ["netmask"]);
        // all problems at once
        assert_eq!(
            bad(&[
                ("ip", "x"),
                ("nic", ""),
                ("arp_count", "many"),
                ("bogus", "1")
            ]),
            ["bogus", "ip", "arp_count"]
        );
        let e =
            Address::from_params(&params(&[("ip", "10.0.0.1"), ("arp_count", "x")])).unwrap_err();
        assert!(e[0].to_string().starts_with("arp_count: "), "{}", e[0]);
    }

    #[test]
    fn prefix_arithmetic() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(covers(ip("10.1.0.0"), 16, ip("10.1.200.3")));
        assert!(!covers(ip("10.1.0.0"), 16, ip("10.2.0.3")));
        assert!(covers(ip("0.0.0.0"), 0, ip("10.2.0.3")));
        assert!(covers(ip("2001:db8::"), 64, ip("2001:db8::77")));
        assert!(!covers(ip("2001:db8::"), 64, ip("2001:db9::77")));
        assert!(!covers(ip("10.0.0.0"), 8, ip("2001:db8::77")));
        assert_eq!(
            broadcast(ip("10.1.2.3"), 24),
            Some(Ipv4Addr::new(10, 1, 2, 255))
        );
        assert_eq!(broadcast(ip("10.1.2.3"), 0), Some(Ipv4Addr::BROADCAST));
        assert_eq!(broadcast(ip("10.1.2.3"), 31), None);
        assert_eq!(broadcast(ip("2001:db8::1"), 64), None);
    }

    #[test]
    fn promote_and_demote_are_fatal() {
        let a = Address::from_params(&params(&[("ip", "192.0.2.10")])).unwrap();
        for op in [Op::Promote, Op::Demote] {
            assert_eq!(a.run(op).outcome, Outcome::Failed(FailClass::Fatal));
        }
    }
}

// also included by runtime/heartbeat.rs, privately; a second copy keeps
// that file untouched
#[cfg(test)]
#[path = "../../tests/netns.rs"]
#[allow(dead_code, clippy::duplicate_mod)]
mod netns;

#[cfg(test)]
#[path = "../../tests/builtin_addr.rs"]
mod netns_tests;
