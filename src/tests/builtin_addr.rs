//! The built-in `address` type for real, as root, in two network
//! namespaces joined by a veth pair (`netns::Topology`: side A has
//! 10.201.0.1/24, side B 10.201.0.2/24). The operations run on a thread
//! inside A; B plays the other host on the segment (answers the duplicate
//! check, sees the announcements). Nothing touches the root namespace:
//! each test checks that the virtual address never appears there.
//!
//! Needs root and iproute2 (`ip`) and nftables (`nft`, for the topology's
//! tables); fails with a message naming what is missing.

use std::collections::BTreeMap;
use std::io::Read;
use std::process::Command;
use std::time::{Duration, Instant};

use super::netns::Topology;
use super::*;
use crate::runtime::builtin::arp;
use crate::runtime::builtin::netlink::{self, Netlink};

const VIP: &str = "10.201.0.100";

fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn addrs(topo: &Topology, s: usize) -> String {
    sh(&["ip", "-n", &topo.ns[s], "-o", "addr", "show"])
}

fn address(kv: &[(&str, &str)]) -> Address {
    let p: BTreeMap<String, String> = kv
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Address::from_params(&p).unwrap()
}

fn run_in(topo: &Topology, s: usize, a: &Address, op: Op) -> BuiltinResult {
    let a = a.clone();
    topo.in_ns(s, move || a.run(op))
}

fn mac_of(topo: &Topology, s: usize) -> String {
    let nic = topo.links[0].ifname[s].clone();
    arp::mac_string(&topo.in_ns(s, move || arp::iface(&nic).unwrap().mac))
}

fn assert_root_untouched() {
    let root = sh(&["ip", "-o", "addr", "show"]);
    assert!(
        !root.contains(VIP),
        "the address leaked into the root namespace"
    );
    assert!(
        !root.contains("2001:db8:201::"),
        "leaked into the root namespace"
    );
}

#[test]
fn start_monitor_stop_and_repeats() {
    let topo = Topology::new(1);
    let nic = topo.links[0].ifname[0].clone();
    let a = address(&[
        ("ip", VIP),
        ("cidr_netmask", "24"),
        ("nic", &nic),
        ("label", "vip"),
        ("arp_count", "2"),
        ("arp_interval", "20ms"),
    ]);
    let r = run_in(&topo, 0, &a, Op::Monitor);
    assert_eq!(r.outcome, Outcome::NotRunning, "{r:?}");

    let r = run_in(&topo, 0, &a, Op::Start);
    assert_eq!(r, ok(None));
    let shown = addrs(&topo, 0);
    // our encoder through the kernel: prefix, broadcast and label as sent
    assert!(
        shown.contains(&format!(
            "inet {VIP}/24 brd 10.201.0.255 scope global secondary {nic}:vip"
        )),
        "{shown}"
    );
    assert_eq!(run_in(&topo, 0, &a, Op::Monitor), ok(None));

    // start again: Ok, says so, nothing duplicated
    let r = run_in(&topo, 0, &a, Op::Start);
    assert_eq!(r.outcome, Outcome::Ok);
    assert!(r.reason.unwrap().contains("already on"));
    assert_eq!(addrs(&topo, 0).matches(VIP).count(), 1);
    assert_root_untouched();

    let r = run_in(&topo, 0, &a, Op::Stop);
    assert_eq!(r, ok(None));
    assert!(!addrs(&topo, 0).contains(VIP));
    let r = run_in(&topo, 0, &a, Op::Monitor);
    assert_eq!(r.outcome, Outcome::NotRunning);
    // stop again: Ok
    let r = run_in(&topo, 0, &a, Op::Stop);
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    assert!(r.reason.unwrap().contains("not configured"));
    // the base address is untouched
    assert!(addrs(&topo, 0).contains("10.201.0.1/24"));
}

#[test]
fn nic_and_prefix_default_to_the_connected_route() {
    let topo = Topology::new(1);
    let nic = topo.links[0].ifname[0].clone();
    let a = address(&[("ip", VIP), ("arp_count", "1")]);
    assert_eq!(run_in(&topo, 0, &a, Op::Start), ok(None));
    let shown = addrs(&topo, 0);
    assert!(
        shown.contains(&format!("inet {VIP}/24 brd 10.201.0.255")),
        "{shown}"
    );
    assert!(
        shown.lines().any(|l| l.contains(VIP) && l.contains(&nic)),
        "{shown}"
    );
    assert_eq!(run_in(&topo, 0, &a, Op::Monitor), ok(None));
    assert_eq!(run_in(&topo, 0, &a, Op::Stop), ok(None));
    assert!(!addrs(&topo, 0).contains(VIP));

    // an address no connected route covers: start fails hard, naming why
    let far = address(&[("ip", "10.202.0.5")]);
    let r = run_in(&topo, 0, &far, Op::Start);
    assert_eq!(r.outcome, Outcome::Failed(FailClass::Hard));
    assert!(r.reason.unwrap().contains("no connected route"));
    assert_root_untouched();
}

#[test]
fn duplicate_check_fails_hard_naming_the_mac_then_passes_when_free() {
    let topo = Topology::new(1);
    let nic = topo.links[0].ifname[0].clone();
    let b_nic = topo.links[0].ifname[1].clone();
    // B already has the address
    sh(&[
        "ip",
        "-n",
        &topo.ns[1],
        "addr",
        "add",
        &format!("{VIP}/24"),
        "dev",
        &b_nic,
    ]);
    let a = address(&[("ip", VIP), ("cidr_netmask", "24"), ("nic", &nic)]);
    let t = Instant::now();
    let r = run_in(&topo, 0, &a, Op::Start);
    let took = t.elapsed();
    assert_eq!(r.outcome, Outcome::Failed(FailClass::Hard), "{r:?}");
    let reason = r.reason.unwrap();
    let b_mac = mac_of(&topo, 1);
    assert!(reason.contains(&b_mac), "{reason} should name {b_mac}");
    assert!(
        !addrs(&topo, 0).contains(VIP),
        "added despite the duplicate"
    );
    assert!(took < Duration::from_secs(2), "{took:?}");

    // B gives it up: start passes the check
    sh(&[
        "ip",
        "-n",
        &topo.ns[1],
        "addr",
        "del",
        &format!("{VIP}/24"),
        "dev",
        &b_nic,
    ]);
    let t = Instant::now();
    assert_eq!(run_in(&topo, 0, &a, Op::Start), ok(None));
    // the check listened for dad_timeout (200ms by default)
    assert!(
        t.elapsed() >= Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );
    assert!(addrs(&topo, 0).contains(VIP));

    // dad_timeout 0: no check, so B's claim goes unnoticed
    assert_eq!(run_in(&topo, 0, &a, Op::Stop), ok(None));
    sh(&[
        "ip",
        "-n",
        &topo.ns[1],
        "addr",
        "add",
        &format!("{VIP}/24"),
        "dev",
        &b_nic,
    ]);
    let unchecked = address(&[
        ("ip", VIP),
        ("cidr_netmask", "24"),
        ("nic", &nic),
        ("dad_timeout", "0"),
    ]);
    assert_eq!(run_in(&topo, 0, &unchecked, Op::Start).outcome, Outcome::Ok);
    assert_root_untouched();
}

#[test]
fn gratuitous_arp_reaches_the_other_namespace() {
    let topo = Topology::new(1);
    let nic = topo.links[0].ifname[0].clone();
    let b_nic = topo.links[0].ifname[1].clone();
    // B has a stale entry for the address pointing elsewhere (the old
    // primary): the announcement must override it
    sh(&[
        "ip",
        "-n",
        &topo.ns[1],
        "neigh",
        "replace",
        VIP,
        "lladdr",
        "02:00:00:00:00:99",
        "dev",
        &b_nic,
        "nud",
        "stale",
    ]);
    // and a capture of every ARP frame in B
    let cap = topo.in_ns(1, || {
        let proto = socket2::Protocol::from(i32::from(0x0806u16.to_be()));
        socket2::Socket::new(socket2::Domain::PACKET, socket2::Type::RAW, Some(proto)).unwrap()
    });
    cap.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let a = address(&[
        ("ip", VIP),
        ("cidr_netmask", "24"),
        ("nic", &nic),
        ("arp_count", "4"),
        ("arp_interval", "100ms"),
    ]);
    let t = Instant::now();
    assert_eq!(run_in(&topo, 0, &a, Op::Start), ok(None));
    let start_took = t.elapsed();
    // start returned before the background announcements were done
    assert!(start_took < Duration::from_millis(300), "{start_took:?}");

    let a_mac = mac_of(&topo, 0);
    let vip: std::net::Ipv4Addr = VIP.parse().unwrap();
    let mut garps = Vec::new();
    let mut buf = [0u8; 1600];
    while t.elapsed() < Duration::from_millis(1200) {
        if let Ok(n) = (&cap).read(&mut buf) {
            if let Some(p) = arp::parse_arp(&buf[..n]) {
                if p.sender_ip == vip && p.target_ip == vip {
                    garps.push((t.elapsed(), arp::mac_string(&p.sender_mac)));
                }
            }
        }
    }
    assert_eq!(garps.len(), 4, "{garps:?}");
    assert!(garps.iter().all(|(_, m)| *m == a_mac), "{garps:?}");
    // spaced by arp_interval
    let span = garps[3].0 - garps[0].0;
    assert!(span >= Duration::from_millis(290), "{garps:?}");
    let neigh = sh(&["ip", "-n", &topo.ns[1], "neigh", "show", VIP, "dev", &b_nic]);
    assert!(neigh.contains(&a_mac), "B's neighbour table: {neigh}");
    assert_root_untouched();
}

#[test]
fn stop_cancels_pending_announcements() {
    let topo = Topology::new(1);
    let nic = topo.links[0].ifname[0].clone();
    let cap = topo.in_ns(1, || {
        let proto = socket2::Protocol::from(i32::from(0x0806u16.to_be()));
        socket2::Socket::new(socket2::Domain::PACKET, socket2::Type::RAW, Some(proto)).unwrap()
    });
    cap.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let a = address(&[
        ("ip", VIP),
        ("cidr_netmask", "24"),
        ("nic", &nic),
        ("arp_count", "5"),
        ("arp_interval", "200ms"),
        ("dad_timeout", "0"),
    ]);
    assert_eq!(run_in(&topo, 0, &a, Op::Start).outcome, Outcome::Ok);
    assert_eq!(run_in(&topo, 0, &a, Op::Stop), ok(None));
    let t = Instant::now();
    let vip: std::net::Ipv4Addr = VIP.parse().unwrap();
    let mut garps = 0;
    let mut buf = [0u8; 1600];
    while t.elapsed() < Duration::from_millis(1100) {
        if let Ok(n) = (&cap).read(&mut buf) {
            if arp::parse_arp(&buf[..n]).is_some_and(|p| p.sender_ip == vip && p.target_ip == vip) {
                garps += 1;
            }
        }
    }
    // the first went out during start; none of the other four after stop
    assert_eq!(garps, 1);
}

#[test]
fn monitor_fails_soft_when_the_nic_is_down_and_missing_nic_is_hard() {
    let topo = Topology::new(1);
    let nic = topo.links[0].ifname[0].clone();
    let a = address(&[
        ("ip", VIP),
        ("cidr_netmask", "24"),
        ("nic", &nic),
        ("arp_count", "0"),
    ]);
    assert_eq!(run_in(&topo, 0, &a, Op::Start), ok(None));
    // carrier lost (the peer end goes down)
    topo.set_link(1, 0, false);
    let r = run_in(&topo, 0, &a, Op::Monitor);
    assert_eq!(r.outcome, Outcome::Failed(FailClass::Soft), "{r:?}");
    assert!(r.reason.unwrap().contains("no carrier"));
    topo.set_link(1, 0, true);
    // administratively down
    topo.set_link(0, 0, false);
    let r = run_in(&topo, 0, &a, Op::Monitor);
    assert_eq!(r.outcome, Outcome::Failed(FailClass::Soft), "{r:?}");
    assert!(r.reason.unwrap().contains("down"));
    // start on a down nic: this node cannot serve it
    assert_eq!(run_in(&topo, 0, &a, Op::Stop), ok(None));
    let r = run_in(&topo, 0, &a, Op::Start);
    assert_eq!(r.outcome, Outcome::Failed(FailClass::Hard), "{r:?}");
    topo.set_link(0, 0, true);

    let ghost = address(&[("ip", VIP), ("cidr_netmask", "24"), ("nic", "nosuch0")]);
    let r = run_in(&topo, 0, &ghost, Op::Start);
    assert_eq!(r.outcome, Outcome::Failed(FailClass::Hard), "{r:?}");
    assert!(r.reason.unwrap().contains("nosuch0"));
    assert_eq!(
        run_in(&topo, 0, &ghost, Op::Monitor).outcome,
        Outcome::NotRunning
    );
    assert_eq!(run_in(&topo, 0, &ghost, Op::Stop).outcome, Outcome::Ok);
    assert_root_untouched();
}

#[test]
fn ipv6_start_monitor_stop_with_and_without_dad() {
    let topo = Topology::new(1);
    let nic = topo.links[0].ifname[0].clone();
    let b_nic = topo.links[0].ifname[1].clone();
    let v6 = "2001:db8:201::100";
    for dad in ["0", "200ms"] {
        let a = address(&[
            ("ip", v6),
            ("cidr_netmask", "64"),
            ("nic", &nic),
            ("dad_timeout", dad),
            ("arp_count", "2"),
            ("arp_interval", "20ms"),
        ]);
        assert_eq!(
            run_in(&topo, 0, &a, Op::Monitor).outcome,
            Outcome::NotRunning
        );
        assert_eq!(
            run_in(&topo, 0, &a, Op::Start),
            ok(None),
            "dad_timeout {dad}"
        );
        let shown = addrs(&topo, 0);
        assert!(shown.contains(&format!("{v6}/64")), "{shown}");
        assert!(
            shown
                .lines()
                .filter(|l| l.contains(v6))
                .all(|l| !l.contains("tentative")),
            "{shown}"
        );
        assert_eq!(run_in(&topo, 0, &a, Op::Monitor), ok(None));
        assert_eq!(run_in(&topo, 0, &a, Op::Stop), ok(None));
        assert!(!addrs(&topo, 0).contains(v6));
    }
    // B holds it: the kernel's DAD finds it, start fails hard and removes it
    sh(&[
        "ip",
        "-n",
        &topo.ns[1],
        "addr",
        "add",
        &format!("{v6}/64"),
        "dev",
        &b_nic,
        "nodad",
    ]);
    let a = address(&[("ip", v6), ("cidr_netmask", "64"), ("nic", &nic)]);
    let r = run_in(&topo, 0, &a, Op::Start);
    assert_eq!(r.outcome, Outcome::Failed(FailClass::Hard), "{r:?}");
    assert!(r.reason.unwrap().contains("duplicate"));
    assert!(!addrs(&topo, 0).contains(v6));
    assert_root_untouched();
}

#[test]
fn netlink_dumps_decode_what_ip_shows() {
    let topo = Topology::new(1);
    let nic = topo.links[0].ifname[0].clone();
    let (raw, links, routes) = topo.in_ns(0, || {
        let mut nl = Netlink::open(Duration::from_secs(2)).unwrap();
        (
            nl.dump_raw(netlink::RTM_GETADDR, netlink::AF_INET).unwrap(),
            nl.links().unwrap(),
            nl.routes(netlink::AF_INET).unwrap(),
        )
    });
    let link = links
        .iter()
        .find(|l| l.name == nic)
        .expect("veth in the link dump");
    assert_ne!(link.flags & netlink::IFF_UP, 0);
    assert_eq!(link.mac.as_deref().map(|m| m.len()), Some(6));
    assert!(links.iter().any(|l| l.name == "lo"));
    let decoded: Vec<_> = raw
        .iter()
        .filter(|(k, _)| *k == netlink::RTM_NEWADDR)
        .filter_map(|(_, p)| netlink::decode_addr(p).unwrap())
        .collect();
    let ours = decoded
        .iter()
        .find(|a| a.addr.to_string() == "10.201.0.1")
        .expect("the veth address in the dump");
    assert_eq!(ours.index, link.index);
    assert_eq!(ours.prefix, 24);
    // the topology adds it without `brd`
    assert_eq!(ours.broadcast, None);
    assert_eq!(ours.label.as_deref(), Some(nic.as_str()));
    assert!(decoded.iter().any(|a| a.addr.to_string() == "127.0.0.1"));
    // the connected route the defaults come from
    let r = routes
        .iter()
        .find(|r| r.dst.map(|d| d.to_string()).as_deref() == Some("10.201.0.0"))
        .expect("connected route");
    assert_eq!((r.dst_len, r.oif, r.gateway), (24, Some(link.index), None));
    assert_eq!(r.table, netlink::RT_TABLE_MAIN);
    assert_eq!(r.scope, netlink::RT_SCOPE_LINK);

    // refusals come back as typed kernel errors
    let err = topo.in_ns(0, move || {
        let mut nl = Netlink::open(Duration::from_secs(2)).unwrap();
        nl.del_address(&netlink::AddrMsg {
            index: 9999,
            prefix: 24,
            flags: 0,
            scope: 0,
            addr: "10.201.0.77".parse().unwrap(),
            broadcast: None,
            label: None,
        })
        .unwrap_err()
    });
    assert!(err.errno().is_some(), "{err}");
}
