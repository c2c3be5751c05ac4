//! ARP and IPv6 neighbour advertisement on the wire, for the `address`
//! built-in: the duplicate check (an ARP probe, as `arping -D` sends) and
//! gratuitous ARP / unsolicited neighbour advertisement after adding an
//! address.
//!
//! No `unsafe`: the link-layer address a packet socket sends to
//! (`sockaddr_ll`) comes from `getifaddrs(3)` (nix's safe wrapper), whose
//! `AF_PACKET` entry for the interface carries its index and MAC; a raw
//! `AF_PACKET` socket sends whole Ethernet frames to it with `sendto` and
//! keeps only that interface's ARP frames (`recvfrom` names the interface). The IPv6
//! advertisement goes through a raw ICMPv6 socket (the kernel fills in the
//! checksum), addressed with an ordinary `SocketAddrV6`.
//!
//! Frame building and parsing are pure functions, tested on their own.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use nix::sys::socket::LinkAddr;

const ETH_P_ARP: u16 = 0x0806;
const ARPOP_REQUEST: u16 = 1;
#[cfg(test)]
const ARPOP_REPLY: u16 = 2;

/// A MAC address.
pub type Mac = [u8; 6];

/// Formats a MAC as `aa:bb:cc:dd:ee:ff`.
pub fn mac_string(m: &Mac) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// An Ethernet ARP frame for IPv4 over Ethernet: `op`, sender and target.
pub fn arp_frame(
    dst: Mac,
    op: u16,
    sender_mac: Mac,
    sender_ip: Ipv4Addr,
    target_mac: Mac,
    target_ip: Ipv4Addr,
) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&sender_mac);
    f.extend_from_slice(&ETH_P_ARP.to_be_bytes());
    f.extend_from_slice(&1u16.to_be_bytes()); // hardware: Ethernet
    f.extend_from_slice(&0x0800u16.to_be_bytes()); // protocol: IPv4
    f.extend_from_slice(&[6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&sender_mac);
    f.extend_from_slice(&sender_ip.octets());
    f.extend_from_slice(&target_mac);
    f.extend_from_slice(&target_ip.octets());
    f.resize(60, 0); // minimum Ethernet payload
    f
}

/// The gratuitous ARP `arping -U` sends: a broadcast request whose sender
/// and target are both `ip`.
pub fn gratuitous_arp(mac: Mac, ip: Ipv4Addr) -> Vec<u8> {
    arp_frame([0xff; 6], ARPOP_REQUEST, mac, ip, [0; 6], ip)
}

/// The probe of RFC 5227 (`arping -D`): a broadcast request for `ip` from
/// sender address 0.0.0.0, so that nobody's cache learns anything.
pub fn arp_probe(mac: Mac, ip: Ipv4Addr) -> Vec<u8> {
    arp_frame(
        [0xff; 6],
        ARPOP_REQUEST,
        mac,
        Ipv4Addr::UNSPECIFIED,
        [0; 6],
        ip,
    )
}

/// The fields of a received ARP packet (IPv4 over Ethernet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arp {
    /// Request or reply.
    pub op: u16,
    /// Sender hardware address.
    pub sender_mac: Mac,
    /// Sender protocol address.
    pub sender_ip: Ipv4Addr,
    /// Target protocol address.
    pub target_ip: Ipv4Addr,
}

/// Parses an Ethernet frame; `None` unless it is IPv4-over-Ethernet ARP.
pub fn parse_arp(frame: &[u8]) -> Option<Arp> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    if ethertype != ETH_P_ARP {
        return None;
    }
    let a = frame.get(14..42)?;
    if a[0..2] != [0, 1] || a[2..4] != [8, 0] || a[4] != 6 || a[5] != 4 {
        return None;
    }
    Some(Arp {
        op: u16::from_be_bytes([a[6], a[7]]),
        sender_mac: a[8..14].try_into().ok()?,
        sender_ip: Ipv4Addr::new(a[14], a[15], a[16], a[17]),
        target_ip: Ipv4Addr::new(a[24], a[25], a[26], a[27]),
    })
}

/// Does `a` say that another host (not `ours`) uses `ip`? A reply from
/// `ip`, or another host's probe or announcement for `ip` (RFC 5227 2.1.1).
pub fn conflicts(a: &Arp, ip: Ipv4Addr, ours: Mac) -> bool {
    if a.sender_mac == ours {
        return false;
    }
    a.sender_ip == ip
        || (a.op == ARPOP_REQUEST && a.sender_ip.is_unspecified() && a.target_ip == ip)
}

/// An unsolicited neighbour advertisement (RFC 4861 4.4, override flag set)
/// for `target`, with the target link-layer address option; the checksum is
/// left 0 for the kernel.
pub fn neighbour_advert(target: Ipv6Addr, mac: Mac) -> Vec<u8> {
    let mut p = Vec::with_capacity(32);
    p.extend_from_slice(&[136, 0, 0, 0]); // type NA, code, checksum
    p.extend_from_slice(&0x2000_0000u32.to_be_bytes()); // O (override)
    p.extend_from_slice(&target.octets());
    p.extend_from_slice(&[2, 1]); // target link-layer address, 8 bytes
    p.extend_from_slice(&mac);
    p
}

/// Where to send on one interface: its packet-socket address and MAC.
#[derive(Debug, Clone, Copy)]
pub struct Iface {
    /// From `getifaddrs`: family `AF_PACKET`, the index, the MAC.
    pub link: LinkAddr,
    /// The interface's MAC.
    pub mac: Mac,
    /// The interface's index.
    pub index: u32,
}

/// Finds `nic`'s link-layer address (in the calling thread's namespace).
pub fn iface(nic: &str) -> std::io::Result<Iface> {
    let list = nix::ifaddrs::getifaddrs().map_err(std::io::Error::from)?;
    for ifa in list {
        if ifa.interface_name != nic {
            continue;
        }
        if let Some(link) = ifa.address.as_ref().and_then(|a| a.as_link_addr()) {
            let index = u32::try_from(link.ifindex()).unwrap_or(0);
            let mac = link.addr().unwrap_or([0; 6]);
            return Ok(Iface {
                link: *link,
                mac,
                index,
            });
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::NotFound,
        format!("{nic}: no link-layer address (no such interface?)"),
    ))
}

/// A raw `AF_PACKET` socket for ARP frames on one interface.
///
/// Not bound: binding a packet socket that already has a protocol waits
/// for an RCU grace period (`synchronize_net`, ~10 ms here), so the socket
/// gets its protocol (ARP) at creation, sends with `sendto` to the
/// interface's `sockaddr_ll` and drops frames from other interfaces on
/// receipt. Closing one waits for a grace period too: callers drop it off
/// their hot path (see `Address::announce`).
#[derive(Debug)]
pub struct ArpSocket {
    sock: socket2::Socket,
    /// The interface.
    pub iface: Iface,
}

impl ArpSocket {
    /// Opens the socket for `iface`.
    pub fn open(iface: Iface) -> std::io::Result<ArpSocket> {
        let proto = socket2::Protocol::from(i32::from(ETH_P_ARP.to_be()));
        let sock = socket2::Socket::new(socket2::Domain::PACKET, socket2::Type::RAW, Some(proto))?;
        Ok(ArpSocket { sock, iface })
    }

    /// Sends one whole Ethernet frame out of the interface (the address
    /// carries protocol 0, so the kernel reads it from the frame).
    pub fn send(&self, frame: &[u8]) -> std::io::Result<()> {
        nix::sys::socket::sendto(
            self.sock.as_raw_fd(),
            frame,
            &self.iface.link,
            nix::sys::socket::MsgFlags::empty(),
        )
        .map(drop)
        .map_err(std::io::Error::from)
    }

    /// Sends an ARP probe for `ip` and listens until `wait` has passed;
    /// returns the MAC of the first other host that claims `ip`.
    pub fn probe(&self, ip: Ipv4Addr, wait: Duration) -> std::io::Result<Option<Mac>> {
        let start = Instant::now();
        // a second probe half-way, in case the first crossed a busy link
        let mut sent = 0;
        let mut buf = [0u8; 1514];
        loop {
            let elapsed = start.elapsed();
            if sent == 0 || (sent == 1 && elapsed >= wait / 2) {
                self.send(&arp_probe(self.iface.mac, ip))?;
                sent += 1;
            }
            let Some(left) = wait.checked_sub(elapsed).filter(|d| !d.is_zero()) else {
                return Ok(None);
            };
            let slice = if sent == 1 { left.min(wait / 2) } else { left };
            self.sock
                .set_read_timeout(Some(slice.max(Duration::from_millis(1))))?;
            match nix::sys::socket::recvfrom::<LinkAddr>(self.sock.as_raw_fd(), &mut buf) {
                Ok((_, Some(from))) if from.ifindex() != self.iface.index as usize => {}
                Ok((n, _)) => {
                    if let Some(a) = parse_arp(&buf[..n.min(buf.len())]) {
                        if conflicts(&a, ip, self.iface.mac) {
                            return Ok(Some(a.sender_mac));
                        }
                    }
                }
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// A raw ICMPv6 socket that sends unsolicited neighbour advertisements.
#[derive(Debug)]
pub struct NaSocket {
    sock: socket2::Socket,
    index: u32,
    mac: Mac,
}

impl NaSocket {
    /// Opens the socket for `iface`, with hop limit 255 (RFC 4861 7.1.2).
    pub fn open(iface: &Iface) -> std::io::Result<NaSocket> {
        let sock = socket2::Socket::new(
            socket2::Domain::IPV6,
            socket2::Type::RAW,
            Some(socket2::Protocol::ICMPV6),
        )?;
        sock.set_multicast_hops_v6(255)?;
        sock.set_unicast_hops_v6(255)?;
        sock.set_multicast_if_v6(iface.index)?;
        Ok(NaSocket {
            sock,
            index: iface.index,
            mac: iface.mac,
        })
    }

    /// Advertises `target` to all nodes (ff02::1) on the interface.
    pub fn advertise(&self, target: Ipv6Addr) -> std::io::Result<()> {
        let dst = SocketAddrV6::new(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1), 0, 0, self.index);
        self.sock
            .send_to(&neighbour_advert(target, self.mac), &dst.into())
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: Mac = [0x02, 0, 0, 0, 0, 0x0a];
    const OTHER: Mac = [0x02, 0, 0, 0, 0, 0x0b];

    #[test]
    fn gratuitous_arp_is_what_arping_u_sends() {
        let ip = Ipv4Addr::new(10, 201, 0, 100);
        let f = gratuitous_arp(MAC, ip);
        assert_eq!(f.len(), 60);
        assert_eq!(&f[0..6], &[0xff; 6]);
        assert_eq!(&f[6..12], &MAC);
        assert_eq!(&f[12..22], &[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
        let a = parse_arp(&f).unwrap();
        assert_eq!(
            a,
            Arp {
                op: ARPOP_REQUEST,
                sender_mac: MAC,
                sender_ip: ip,
                target_ip: ip
            }
        );
    }

    #[test]
    fn probe_has_no_sender_address_and_conflicts_are_recognised() {
        let ip = Ipv4Addr::new(10, 201, 0, 100);
        let p = parse_arp(&arp_probe(MAC, ip)).unwrap();
        assert_eq!(p.sender_ip, Ipv4Addr::UNSPECIFIED);
        assert_eq!(p.target_ip, ip);
        // our own probe, looped back, is no conflict
        assert!(!conflicts(&p, ip, MAC));
        // another host probing for the same address is
        assert!(conflicts(&p, ip, OTHER));
        // a reply from the address is
        let reply = parse_arp(&arp_frame(
            MAC,
            ARPOP_REPLY,
            OTHER,
            ip,
            MAC,
            Ipv4Addr::UNSPECIFIED,
        ))
        .unwrap();
        assert!(conflicts(&reply, ip, MAC));
        // traffic about other addresses is not
        let other = parse_arp(&gratuitous_arp(OTHER, Ipv4Addr::new(10, 201, 0, 2))).unwrap();
        assert!(!conflicts(&other, ip, MAC));
    }

    #[test]
    fn parse_rejects_other_frames() {
        assert_eq!(parse_arp(&[]), None);
        let mut f = gratuitous_arp(MAC, Ipv4Addr::LOCALHOST);
        f[13] = 0x00; // IPv4 ethertype
        assert_eq!(parse_arp(&f), None);
        let f = gratuitous_arp(MAC, Ipv4Addr::LOCALHOST);
        assert_eq!(parse_arp(&f[..30]), None);
    }

    #[test]
    fn neighbour_advert_layout() {
        let t: Ipv6Addr = "2001:db8::10".parse().unwrap();
        let p = neighbour_advert(t, MAC);
        assert_eq!(p.len(), 32);
        assert_eq!(p[0], 136);
        assert_eq!(p[4], 0x20);
        assert_eq!(&p[8..24], &t.octets());
        assert_eq!(&p[24..26], &[2, 1]);
        assert_eq!(&p[26..32], &MAC);
    }

    #[test]
    fn mac_formatting() {
        assert_eq!(mac_string(&OTHER), "02:00:00:00:00:0b");
    }
}
