//! The heartbeat wire format, version 1: pure encode ([`seal`]) and decode
//! ([`open`]) of one authenticated UDP datagram.
//!
//! **Authentication.** Every packet ends in an HMAC-SHA256 tag (32 bytes, not
//! truncated) over everything before it, keyed by a shared key chosen by the
//! key id in the header. Contents are not secret (roles, lease view, counts,
//! a config hash), so the packet is authenticated, not encrypted: the same
//! choice as Heartbeat's `authkeys` and keepalived's `auth_hmac`. HMAC has no
//! nonce that could be reused across restarts or between the two nodes (an
//! AEAD such as ChaCha20-Poly1305 fails open on nonce reuse; we would have to
//! build the nonce from node id, incarnation and sequence and get it right
//! forever), and it needs no crate beyond `hmac` + `sha2`. Verification is
//! constant time (`Mac::verify_slice`).
//!
//! **What is read before the tag verifies.** Only the fixed 16-byte
//! [`Header`]: magic, version, key id, total length, cluster id and sender
//! id, each a fixed-width integer at a fixed offset. The length must be the
//! one fixed length of this version; nothing else is looked at until the tag
//! over the whole packet has verified, and only then is the body decoded,
//! strictly (unknown enum values, reserved bits or non-zero padding are
//! [`DecodeError::Malformed`]). The cluster id is compared before the tag so
//! that a neighbouring cluster shows up as "wrong cluster", not as an attack.
//!
//! **Layout** (big-endian integers; offsets in bytes):
//!
//! ```text
//!   0  4  magic "HAHB"               |  60 28  echo: last packet accepted from the
//!   4  1  version (1)                |         peer's current incarnation:
//!   5  1  key id (1..=255)           |           incarnation u64 (0 = none), seq u64,
//!   6  2  total length (180)         |           sent_at u64 (peer's clock, ms),
//!   8  4  cluster id                 |           hold u32 (ms from receiving it to
//!  12  4  sender node id             |           sending this packet)
//!  ---------- end of header ---------|  88 28  candidate echo: last packet from another
//!  16  8  incarnation (random, != 0) |         incarnation of the peer (handshake)
//!  24  8  sequence (from 1)          | 116 32  config hash (SHA-256)
//!  32  8  sent_at (sender's ms)      | 148 32  HMAC-SHA256 tag over bytes 0..148
//!  40  1  link index                 |
//!  41  1  flags (bit 0: sender sees the receiver alive; others 0)
//!  42  1  role          43 1 lease holder      44 8 lease counter
//!  52  1  stack state   53 1 peer request      54 2 resources  56 2 running  58 2 failed
//! ```
//!
//! **Peer request** (byte 53): an operator request the sender forwards to
//! the receiver (`hapair standby beta` typed on alpha): high nibble the kind
//! ([`RequestKind`], 0 = none), low nibble a sequence number 1..=15 that
//! changes with each new request (0 with kind 0). The sender repeats the
//! byte in every packet; the receiver acts once per new sequence number
//! within one incarnation of the sender (see `runtime::daemon`).
//!
//! How incarnation, sequence and the echoes give replay protection without a
//! persisted generation file is the business of [`crate::membership`]; this
//! module only carries the fields.
//!
//! The module does no I/O and reads no clock.

#[cfg(test)]
mod tests;

use std::fmt;
use std::num::NonZeroU64;

use hmac::{Hmac, KeyInit, Mac};
use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};

/// Magic number at offset 0 ("HAHB": hapair heartbeat).
pub const MAGIC: [u8; 4] = *b"HAHB";
/// The protocol version this module encodes and accepts.
pub const VERSION: u8 = 1;
/// Length of the fixed header read before authentication.
pub const HEADER_LEN: usize = 16;
/// Length of the authenticated body of a version-1 packet.
pub const BODY_LEN: usize = 132;
/// Length of the HMAC-SHA256 tag.
pub const TAG_LEN: usize = 32;
/// Total length of a version-1 packet.
pub const PACKET_LEN: usize = HEADER_LEN + BODY_LEN + TAG_LEN;
/// Most keys a [`Keyring`] holds at once (the old and the new during rotation).
pub const MAX_KEYS: usize = 2;
/// Shortest accepted key (256 bits).
pub const MIN_KEY_LEN: usize = 32;
/// Longest accepted key (one SHA-256 block; longer keys would be hashed).
pub const MAX_KEY_LEN: usize = 64;

const ECHO_LEN: usize = 28;
const OFF_INCARNATION: usize = 16;
const OFF_SEQ: usize = 24;
const OFF_SENT_AT: usize = 32;
const OFF_LINK: usize = 40;
const OFF_FLAGS: usize = 41;
const OFF_ROLE: usize = 42;
const OFF_HOLDER: usize = 43;
const OFF_LEASE_COUNTER: usize = 44;
const OFF_STACK_STATE: usize = 52;
const OFF_REQUEST: usize = 53;
const OFF_RESOURCES: usize = 54;
const OFF_RUNNING: usize = 56;
const OFF_FAILED: usize = 58;
const OFF_ECHO: usize = 60;
const OFF_CANDIDATE: usize = OFF_ECHO + ECHO_LEN;
const OFF_CONFIG: usize = OFF_CANDIDATE + ECHO_LEN;
const OFF_TAG: usize = OFF_CONFIG + 32;
const FLAG_SEES_PEER: u8 = 0x01;

const _: () = assert!(OFF_TAG == HEADER_LEN + BODY_LEN);

/// Identifies one pair; packets of another cluster are dropped and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ClusterId(pub u32);

impl ClusterId {
    /// A cluster id derived from a cluster name (first 4 bytes of its SHA-256).
    pub fn from_name(name: &str) -> ClusterId {
        ClusterId(u32_prefix(name))
    }
}

/// Identifies a node within the pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct NodeId(pub u32);

impl NodeId {
    /// A node id derived from a node name (first 4 bytes of its SHA-256).
    pub fn from_name(name: &str) -> NodeId {
        NodeId(u32_prefix(name))
    }
}

fn u32_prefix(name: &str) -> u32 {
    let d = Sha256::digest(name.as_bytes());
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// A random, non-zero 64-bit value picked at every daemon start.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Incarnation(NonZeroU64);

impl Incarnation {
    /// `None` for 0, which the wire format uses for "no echo".
    pub fn new(v: u64) -> Option<Incarnation> {
        NonZeroU64::new(v).map(Incarnation)
    }
    /// The raw value.
    pub fn get(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Debug for Incarnation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Display for Incarnation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl Serialize for Incarnation {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// SHA-256 of the node's effective configuration; both nodes must agree.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ConfigHash(pub [u8; 32]);

impl ConfigHash {
    /// The hash of some configuration bytes.
    pub fn of(config: &[u8]) -> ConfigHash {
        ConfigHash(Sha256::digest(config).into())
    }
}

impl fmt::Display for ConfigHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ConfigHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // the first 8 bytes are enough to tell two configs apart in logs
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        f.write_str("…")
    }
}

impl Serialize for ConfigHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $n:literal,)+ }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
        #[serde(rename_all = "kebab-case")]
        #[repr(u8)]
        pub enum $name {
            $($(#[$vm])* $v = $n,)+
        }
        impl $name {
            /// Every value, in wire order.
            pub const ALL: &'static [$name] = &[$($name::$v,)+];
            fn from_wire(b: u8) -> Option<$name> {
                match b {
                    $($n => Some($name::$v),)+
                    _ => None,
                }
            }
        }
    };
}

wire_enum! {
    /// The sender's role in the pair, as its engine sees it.
    Role {
        /// Not reported yet.
        #[default]
        Unknown = 0,
        /// The daemon is starting and has not decided anything.
        Starting = 1,
        /// Standing by, ready to take over.
        Secondary = 2,
        /// Starting the stack to become primary.
        Promoting = 3,
        /// Running the stack.
        Primary = 4,
        /// Stopping the stack.
        Demoting = 5,
        /// Put in standby by the operator: will not take over.
        Standby = 6,
        /// The pair is in maintenance: nothing is started or stopped.
        Maintenance = 7,
        /// The daemon is shutting down.
        Stopping = 8,
        /// The stack failed past its limits here.
        Failed = 9,
    }
}

wire_enum! {
    /// Who holds the shared-disk lease, as the sender last read it.
    LeaseHolder {
        /// Not read yet.
        #[default]
        Unknown = 0,
        /// Nobody holds it.
        Free = 1,
        /// The sender holds it.
        Sender = 2,
        /// The receiver of the packet holds it.
        Receiver = 3,
        /// A node outside the pair holds it.
        Other = 4,
    }
}

wire_enum! {
    /// The state of the sender's resource stack as a whole.
    StackState {
        /// Not reported yet.
        #[default]
        Unknown = 0,
        /// Nothing runs.
        Stopped = 1,
        /// Starting, bottom to top.
        Starting = 2,
        /// Everything runs.
        Running = 3,
        /// Stopping, top to bottom.
        Stopping = 4,
        /// Some resources run, some do not.
        Partial = 5,
        /// A resource failed and is not recovered.
        Failed = 6,
    }
}

/// The sender's lease view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
pub struct LeaseView {
    /// Who holds the lease.
    pub holder: LeaseHolder,
    /// The lease counter last read (sfex count).
    pub counter: u64,
}

/// A summary of the sender's resource stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
pub struct StackSummary {
    /// The stack as a whole.
    pub state: StackState,
    /// Configured resources.
    pub resources: u16,
    /// Resources running.
    pub running: u16,
    /// Resources failed.
    pub failed: u16,
}

/// What a node tells its peer about itself in every packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
pub struct NodeView {
    /// Its role.
    pub role: Role,
    /// Its view of the lease.
    pub lease: LeaseView,
    /// Its stack.
    pub stack: StackSummary,
    /// Hash of its configuration.
    pub config: ConfigHash,
    /// An operator request forwarded to the receiver.
    pub request: Option<PeerRequest>,
}

wire_enum! {
    /// What an operator asked of the receiving node, through the sender.
    RequestKind {
        /// No request (never sent inside a [`PeerRequest`]).
        #[default]
        None = 0,
        /// Go to standby.
        Standby = 1,
        /// Leave standby.
        Online = 2,
        /// Prefer the sender: the stack moves there.
        MoveToSender = 3,
        /// Prefer the receiver: the stack moves there.
        MoveToReceiver = 4,
        /// Forget the move.
        Unmove = 5,
        /// The pair enters maintenance.
        MaintenanceOn = 6,
        /// The pair leaves maintenance.
        MaintenanceOff = 7,
        /// Clear the receiver's fail counts (all resources).
        Cleanup = 8,
        /// DRBD fencing: the sender's fence-peer handler asks the receiver
        /// to run `drbdadm outdate` on the DRBD resource (it must be
        /// Secondary and disconnected).
        Outdate = 9,
        /// Answer to [`RequestKind::Outdate`]: the receiver's data is now
        /// marked Outdated.
        Outdated = 10,
        /// Answer to [`RequestKind::Outdate`]: the receiver could not or
        /// would not outdate itself.
        OutdateRefused = 11,
    }
}

/// A forwarded operator request: its kind and a sequence number (1..=15)
/// that tells a new request from the repeat of the last one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct PeerRequest {
    /// What is asked.
    pub kind: RequestKind,
    /// 1..=15.
    pub seq: u8,
}

impl PeerRequest {
    /// A request; `None` for kind `None` or a sequence outside 1..=15.
    pub fn new(kind: RequestKind, seq: u8) -> Option<PeerRequest> {
        (kind != RequestKind::None && (1..=15).contains(&seq)).then_some(PeerRequest { kind, seq })
    }

    fn to_wire(r: Option<PeerRequest>) -> u8 {
        r.map_or(0, |r| ((r.kind as u8) << 4) | r.seq)
    }

    fn from_wire(b: u8) -> Result<Option<PeerRequest>, DecodeError> {
        if b == 0 {
            return Ok(None);
        }
        let kind =
            RequestKind::from_wire(b >> 4).ok_or(DecodeError::Malformed("unknown peer request"))?;
        PeerRequest::new(kind, b & 0x0f)
            .map(Some)
            .ok_or(DecodeError::Malformed("bad peer request"))
    }
}

/// Echo of one packet received from the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Echo {
    /// The peer's incarnation in that packet.
    pub incarnation: Incarnation,
    /// Its sequence number.
    pub seq: u64,
    /// Its `sent_at` (the peer's own clock).
    pub sent_at: u64,
    /// Milliseconds from receiving it to sending the packet carrying this echo.
    pub hold_ms: u32,
}

/// One heartbeat packet, decoded (everything but the key id and cluster id,
/// which [`open`] returns or checks beside it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Packet {
    /// The sending node.
    pub sender: NodeId,
    /// The sender's incarnation (random per daemon start).
    pub incarnation: Incarnation,
    /// The sender's sequence number, one per packet, across all links.
    pub seq: u64,
    /// The sender's monotonic clock when it sent this, in ms.
    pub sent_at: u64,
    /// Index of the link the sender sent this on.
    pub link: u8,
    /// The sender currently considers the receiver alive.
    pub sees_peer: bool,
    /// The last packet the sender accepted from the receiver's current incarnation.
    pub echo: Option<Echo>,
    /// The last packet the sender got from an incarnation it has not accepted yet.
    pub candidate: Option<Echo>,
    /// The sender's state.
    pub view: NodeView,
}

/// The fixed-size header, the only part read before the tag is verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Protocol version.
    pub version: u8,
    /// Key id.
    pub key_id: u8,
    /// Declared total length.
    pub len: u16,
    /// Cluster id.
    pub cluster: ClusterId,
    /// Sender node id (not authenticated until the tag verifies).
    pub sender: NodeId,
}

/// Why a datagram was not accepted as a packet. Each variant is one drop
/// counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than the header or than the length it declares.
    #[error("truncated: {len} bytes")]
    Truncated {
        /// Bytes received.
        len: usize,
    },
    /// Not a hapair heartbeat (wrong magic).
    #[error("not a hapair heartbeat packet")]
    NotHapair,
    /// A protocol version this build does not speak.
    #[error("unsupported protocol version {0}")]
    BadVersion(u8),
    /// The declared length is not the length of this version, or bytes trail it.
    #[error("bad length: declared {declared}, received {len}")]
    BadLength {
        /// Length in the header.
        declared: u16,
        /// Bytes received.
        len: usize,
    },
    /// Another cluster's packet.
    #[error("packet of cluster {0}")]
    WrongCluster(u32),
    /// A key id not in our key file.
    #[error("unknown key id {0}")]
    UnknownKey(u8),
    /// The tag does not verify: wrong key, or the packet was altered.
    #[error("authentication tag does not verify")]
    BadTag,
    /// Authentic, but the body breaks the format (a bug, or a newer peer).
    #[error("malformed body: {0}")]
    Malformed(&'static str),
}

/// A shared key's id (1..=255, as in Heartbeat's authkeys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct KeyId(u8);

impl KeyId {
    /// `None` for 0, which is reserved.
    pub fn new(id: u8) -> Option<KeyId> {
        (id != 0).then_some(KeyId(id))
    }
    /// The raw id.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Key material. Its `Debug` never prints the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(Vec<u8>);

impl Key {
    /// A key from raw bytes; [`MIN_KEY_LEN`]..=[`MAX_KEY_LEN`] bytes.
    pub fn new(bytes: Vec<u8>) -> Result<Key, KeyringError> {
        if (MIN_KEY_LEN..=MAX_KEY_LEN).contains(&bytes.len()) {
            Ok(Key(bytes))
        } else {
            Err(KeyringError::KeyLength(bytes.len()))
        }
    }
    /// The raw bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({} bytes)", self.0.len())
    }
}

/// A key set that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    /// Key of the wrong size.
    #[error("a key must be {MIN_KEY_LEN} to {MAX_KEY_LEN} bytes, this one has {0}")]
    KeyLength(usize),
    /// No keys.
    #[error("no keys")]
    Empty,
    /// More than [`MAX_KEYS`].
    #[error("{0} keys: at most {MAX_KEYS} may be active at once (the old and the new)")]
    TooMany(usize),
    /// Two keys with one id.
    #[error("key id {0} appears twice")]
    Duplicate(KeyId),
    /// The active key is not in the set.
    #[error("the active key id {0} is not among the keys")]
    NoActive(KeyId),
}

/// The keys a node accepts, and the one it sends with.
#[derive(Clone)]
pub struct Keyring {
    active: KeyId,
    keys: Vec<(KeyId, Hmac<Sha256>)>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("active", &self.active)
            .field("ids", &self.ids())
            .finish()
    }
}

impl Keyring {
    /// A keyring sending with `active` and accepting every key in `keys`.
    pub fn new(active: KeyId, keys: &[(KeyId, Key)]) -> Result<Keyring, KeyringError> {
        if keys.is_empty() {
            return Err(KeyringError::Empty);
        }
        if keys.len() > MAX_KEYS {
            return Err(KeyringError::TooMany(keys.len()));
        }
        let mut ring = Vec::with_capacity(keys.len());
        for (id, key) in keys {
            if ring.iter().any(|(i, _)| i == id) {
                return Err(KeyringError::Duplicate(*id));
            }
            let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.bytes())
                .map_err(|_| KeyringError::KeyLength(key.bytes().len()))?;
            ring.push((*id, mac));
        }
        if !ring.iter().any(|(i, _)| *i == active) {
            return Err(KeyringError::NoActive(active));
        }
        Ok(Keyring { active, keys: ring })
    }
    /// The key id packets are sent with.
    pub fn active(&self) -> KeyId {
        self.active
    }
    /// Every key id accepted.
    pub fn ids(&self) -> Vec<KeyId> {
        self.keys.iter().map(|(i, _)| *i).collect()
    }
    fn mac(&self, id: u8) -> Option<&Hmac<Sha256>> {
        self.keys.iter().find(|(i, _)| i.0 == id).map(|(_, m)| m)
    }
}

/// A packet that verified, with the key id that verified it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// The key that authenticated it.
    pub key_id: KeyId,
    /// The packet.
    pub packet: Packet,
}

/// Reads the fixed header. Never looks past [`HEADER_LEN`].
pub fn peek_header(buf: &[u8]) -> Result<Header, DecodeError> {
    let Some(h) = buf.get(..HEADER_LEN) else {
        return Err(DecodeError::Truncated { len: buf.len() });
    };
    if h[0..4] != MAGIC {
        return Err(DecodeError::NotHapair);
    }
    Ok(Header {
        version: h[4],
        key_id: h[5],
        len: u16::from_be_bytes([h[6], h[7]]),
        cluster: ClusterId(u32::from_be_bytes([h[8], h[9], h[10], h[11]])),
        sender: NodeId(u32::from_be_bytes([h[12], h[13], h[14], h[15]])),
    })
}

/// Encodes and authenticates `p` for `cluster` with the keyring's active key.
pub fn seal(cluster: ClusterId, p: &Packet, keys: &Keyring) -> [u8; PACKET_LEN] {
    let mut b = [0u8; PACKET_LEN];
    b[0..4].copy_from_slice(&MAGIC);
    b[4] = VERSION;
    b[5] = keys.active.0;
    b[6..8].copy_from_slice(&PACKET_LEN_U16.to_be_bytes());
    b[8..12].copy_from_slice(&cluster.0.to_be_bytes());
    b[12..16].copy_from_slice(&p.sender.0.to_be_bytes());
    put_u64(&mut b, OFF_INCARNATION, p.incarnation.get());
    put_u64(&mut b, OFF_SEQ, p.seq);
    put_u64(&mut b, OFF_SENT_AT, p.sent_at);
    b[OFF_LINK] = p.link;
    b[OFF_FLAGS] = if p.sees_peer { FLAG_SEES_PEER } else { 0 };
    b[OFF_ROLE] = p.view.role as u8;
    b[OFF_HOLDER] = p.view.lease.holder as u8;
    put_u64(&mut b, OFF_LEASE_COUNTER, p.view.lease.counter);
    b[OFF_STACK_STATE] = p.view.stack.state as u8;
    b[OFF_REQUEST] = PeerRequest::to_wire(p.view.request);
    put_u16(&mut b, OFF_RESOURCES, p.view.stack.resources);
    put_u16(&mut b, OFF_RUNNING, p.view.stack.running);
    put_u16(&mut b, OFF_FAILED, p.view.stack.failed);
    put_echo(&mut b, OFF_ECHO, p.echo);
    put_echo(&mut b, OFF_CANDIDATE, p.candidate);
    b[OFF_CONFIG..OFF_TAG].copy_from_slice(&p.view.config.0);
    let mac = keys
        .mac(keys.active.0)
        .expect("Keyring::new guarantees the active key is present");
    let tag = mac
        .clone()
        .chain_update(&b[..OFF_TAG])
        .finalize()
        .into_bytes();
    b[OFF_TAG..].copy_from_slice(&tag);
    b
}

const PACKET_LEN_U16: u16 = 180;
const _: () = assert!(PACKET_LEN_U16 as usize == PACKET_LEN);

/// Checks and decodes one datagram: header, cluster, key, tag, then body.
pub fn open(buf: &[u8], cluster: ClusterId, keys: &Keyring) -> Result<Opened, DecodeError> {
    let h = peek_header(buf)?;
    if h.version != VERSION {
        return Err(DecodeError::BadVersion(h.version));
    }
    if h.len != PACKET_LEN_U16 {
        return Err(DecodeError::BadLength {
            declared: h.len,
            len: buf.len(),
        });
    }
    if buf.len() < PACKET_LEN {
        return Err(DecodeError::Truncated { len: buf.len() });
    }
    if buf.len() > PACKET_LEN {
        return Err(DecodeError::BadLength {
            declared: h.len,
            len: buf.len(),
        });
    }
    if h.cluster != cluster {
        return Err(DecodeError::WrongCluster(h.cluster.0));
    }
    let key_id = KeyId::new(h.key_id).ok_or(DecodeError::UnknownKey(h.key_id))?;
    let mac = keys
        .mac(h.key_id)
        .ok_or(DecodeError::UnknownKey(h.key_id))?;
    mac.clone()
        .chain_update(&buf[..OFF_TAG])
        .verify_slice(&buf[OFF_TAG..PACKET_LEN])
        .map_err(|_| DecodeError::BadTag)?;
    // Authentic from here on.
    let packet = decode_body(h.sender, buf)?;
    Ok(Opened { key_id, packet })
}

fn decode_body(sender: NodeId, b: &[u8]) -> Result<Packet, DecodeError> {
    let incarnation = Incarnation::new(get_u64(b, OFF_INCARNATION))
        .ok_or(DecodeError::Malformed("incarnation 0"))?;
    let seq = get_u64(b, OFF_SEQ);
    if seq == 0 {
        return Err(DecodeError::Malformed("sequence 0"));
    }
    let flags = b[OFF_FLAGS];
    if flags & !FLAG_SEES_PEER != 0 {
        return Err(DecodeError::Malformed("unknown flags"));
    }
    let request = PeerRequest::from_wire(b[OFF_REQUEST])?;
    let role = Role::from_wire(b[OFF_ROLE]).ok_or(DecodeError::Malformed("unknown role"))?;
    let holder = LeaseHolder::from_wire(b[OFF_HOLDER])
        .ok_or(DecodeError::Malformed("unknown lease holder"))?;
    let state = StackState::from_wire(b[OFF_STACK_STATE])
        .ok_or(DecodeError::Malformed("unknown stack state"))?;
    let mut config = [0u8; 32];
    config.copy_from_slice(&b[OFF_CONFIG..OFF_TAG]);
    Ok(Packet {
        sender,
        incarnation,
        seq,
        sent_at: get_u64(b, OFF_SENT_AT),
        link: b[OFF_LINK],
        sees_peer: flags & FLAG_SEES_PEER != 0,
        echo: get_echo(b, OFF_ECHO)?,
        candidate: get_echo(b, OFF_CANDIDATE)?,
        view: NodeView {
            role,
            lease: LeaseView {
                holder,
                counter: get_u64(b, OFF_LEASE_COUNTER),
            },
            stack: StackSummary {
                state,
                resources: get_u16(b, OFF_RESOURCES),
                running: get_u16(b, OFF_RUNNING),
                failed: get_u16(b, OFF_FAILED),
            },
            config: ConfigHash(config),
            request,
        },
    })
}

fn put_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_be_bytes());
}

fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_be_bytes());
}

fn put_u16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_be_bytes());
}

fn get_u64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_be_bytes(a)
}

fn get_u32(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_be_bytes(a)
}

fn get_u16(b: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([b[off], b[off + 1]])
}

fn put_echo(b: &mut [u8], off: usize, e: Option<Echo>) {
    // None is all zeros (the buffer starts zeroed)
    if let Some(e) = e {
        put_u64(b, off, e.incarnation.get());
        put_u64(b, off + 8, e.seq);
        put_u64(b, off + 16, e.sent_at);
        put_u32(b, off + 24, e.hold_ms);
    }
}

fn get_echo(b: &[u8], off: usize) -> Result<Option<Echo>, DecodeError> {
    match Incarnation::new(get_u64(b, off)) {
        None if b[off..off + ECHO_LEN].iter().all(|&x| x == 0) => Ok(None),
        None => Err(DecodeError::Malformed("empty echo with non-zero fields")),
        Some(incarnation) => {
            let seq = get_u64(b, off + 8);
            if seq == 0 {
                return Err(DecodeError::Malformed("echo of sequence 0"));
            }
            Ok(Some(Echo {
                incarnation,
                seq,
                sent_at: get_u64(b, off + 16),
                hold_ms: get_u32(b, off + 24),
            }))
        }
    }
}
