//! Drives the membership machine with fuzzer-chosen steps: time passing,
//! raw datagrams, and *authentic* packets whose every field (incarnation,
//! sequence, echoes with their times and holds, link, view) comes from the
//! fuzzer and is signed with the key, so the replay window, the echo and
//! evidence logic, incarnation switches and the conflict path are all
//! reached.
//!
//! Checks, after every step: no panic; the newest evidence of life never
//! lies in the future; the machine's deadline is never in the past by more
//! than the step; a peer seen alive has a link that is up or late.
#![no_main]

use hapair::membership::{Config, Input, LinkState, Membership, Millis, PeerState, Timing};
use hapair::proto::{
    ClusterId, ConfigHash, Echo, Incarnation, Key, KeyId, Keyring, NodeId, NodeView, Packet, seal,
};
use libfuzzer_sys::fuzz_target;

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u64(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for _ in 0..8 {
            v = v << 8 | u64::from(self.u8()?);
        }
        Some(v)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from(self.u8()?) << 8 | u16::from(self.u8()?))
    }
}

fuzz_target!(|data: &[u8]| {
    let id = KeyId::new(1).unwrap();
    let keys = Keyring::new(id, &[(id, Key::new(vec![0x5a; 32]).unwrap())]).unwrap();
    let cluster = ClusterId(7);
    let cfg = Config {
        cluster,
        local: NodeId(1),
        peer: NodeId(2),
        links: 2,
        timing: Timing {
            keepalive: Millis(100),
            warntime: Millis(500),
            deadtime: Millis(900),
            initdead: Millis(3000),
        },
    };
    // our incarnation is small so the fuzzer can echo it
    let ours = Incarnation::new(0x1234).unwrap();
    let mut m =
        Membership::new(cfg, keys.clone(), ours, NodeView::default(), Millis(1000)).unwrap();
    let mut now = 1000u64;
    let mut b = Bytes(data);
    while let Some(op) = b.u8() {
        match op % 4 {
            0 => {
                now += u64::from(b.u16().unwrap_or(0) % 2000);
                let _ = m.handle(Millis(now), Input::Tick);
            }
            1 => {
                let len = usize::from(b.u8().unwrap_or(0));
                let take = len.min(b.0.len());
                let (raw, rest) = b.0.split_at(take);
                b.0 = rest;
                let _ = m.handle(
                    Millis(now),
                    Input::Datagram {
                        link: usize::from(op >> 2) % 3,
                        bytes: raw,
                    },
                );
            }
            2 => {
                let Some(flags) = b.u8() else { break };
                let echo = |b: &mut Bytes, on: bool| -> Option<Option<Echo>> {
                    let inc = b.u64()?;
                    let seq = b.u64()?;
                    let back = b.u16()?;
                    let hold = b.u16()?;
                    Some(if on {
                        Incarnation::new(if inc % 2 == 0 { ours.get() } else { inc }).map(
                            |incarnation| Echo {
                                incarnation,
                                seq: seq.max(1) % 64 + 1,
                                sent_at: now.saturating_sub(u64::from(back)),
                                hold_ms: u32::from(hold),
                            },
                        )
                    } else {
                        None
                    })
                };
                let Some(e1) = echo(&mut b, flags & 1 != 0) else {
                    break;
                };
                let Some(e2) = echo(&mut b, flags & 2 != 0) else {
                    break;
                };
                let (Some(inc), Some(seq), Some(config)) = (b.u8(), b.u16(), b.u8()) else {
                    break;
                };
                let p = Packet {
                    sender: NodeId(if flags & 4 != 0 { 1 } else { 2 }),
                    incarnation: Incarnation::new(u64::from(inc % 4) + 1).unwrap(),
                    seq: u64::from(seq).max(1),
                    sent_at: now,
                    link: (flags >> 3) % 3,
                    sees_peer: flags & 0x40 != 0,
                    echo: e1,
                    candidate: e2,
                    view: NodeView {
                        config: ConfigHash([config % 2; 32]),
                        ..NodeView::default()
                    },
                };
                let bytes = seal(cluster, &p, &keys);
                let _ = m.handle(
                    Millis(now),
                    Input::Datagram {
                        link: usize::from(flags >> 6) % 2,
                        bytes: &bytes,
                    },
                );
            }
            _ => {
                let v = NodeView {
                    config: ConfigHash([b.u8().unwrap_or(0) % 2; 32]),
                    ..NodeView::default()
                };
                let _ = m.handle(Millis(now), Input::View(v));
            }
        }
        let st = m.status();
        if let Some(h) = st.peer.last_heard {
            assert!(h.0 <= now, "evidence {h} in the future of {now}");
        }
        assert!(
            m.next_deadline().0 > now,
            "deadline {} not after now {now}",
            m.next_deadline()
        );
        if st.peer.state == PeerState::Alive {
            assert!(
                st.links
                    .iter()
                    .any(|l| matches!(l.state, LinkState::Up | LinkState::Warn)),
                "alive with every link down: {st:?}"
            );
        }
    }
});
