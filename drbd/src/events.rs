//! Parser of `drbdsetup events2` lines (DRBD 9 and the 8.4 emulation).
//!
//! [`parse_line`] is pure: one line in, one [`Event`] or a [`ParseError`]
//! naming what is wrong. Known keys are typed; unknown keys and values that do
//! not fit a known key's type are kept in [`Fields::extra`], never fatal.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

macro_rules! state_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $var,)+
            /// A value this parser does not know (kept verbatim).
            Other(String),
        }
        impl FromStr for $name {
            type Err = std::convert::Infallible;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ok(match s { $($s => Self::$var,)+ o => Self::Other(o.to_owned()) })
            }
        }
        impl $name {
            /// The DRBD spelling of this value.
            pub fn as_str(&self) -> &str {
                match self { $(Self::$var => $s,)+ Self::Other(o) => o }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

state_enum!(
    /// Role of a resource (local) or of a peer (`role:` on a connection).
    Role { /// Primary.
        Primary = "Primary", /// Secondary.
        Secondary = "Secondary", /// Unknown (peer not connected).
        Unknown = "Unknown" }
);

state_enum!(
    /// Disk state (`disk:` and `peer-disk:`), in kernel order lowest first.
    DiskState { /// No backing disk.
        Diskless = "Diskless", /// Reading metadata.
        Attaching = "Attaching", /// Going away.
        Detaching = "Detaching", /// I/O error.
        Failed = "Failed", /// Late attach.
        Negotiating = "Negotiating", /// Not usable as a data source.
        Inconsistent = "Inconsistent", /// Consistent but known stale.
        Outdated = "Outdated", /// Peer disk unknown.
        DUnknown = "DUnknown", /// Consistent, freshness unknown.
        Consistent = "Consistent", /// Good data.
        UpToDate = "UpToDate" }
);

impl DiskState {
    /// Rank in the kernel enum order (Diskless = 0 … UpToDate = 9); unknown
    /// values rank below everything.
    pub fn rank(&self) -> i8 {
        match self {
            Self::Other(_) => -1,
            Self::Diskless => 0,
            Self::Attaching => 1,
            Self::Detaching => 2,
            Self::Failed => 3,
            Self::Negotiating => 4,
            Self::Inconsistent => 5,
            Self::Outdated => 6,
            Self::DUnknown => 7,
            Self::Consistent => 8,
            Self::UpToDate => 9,
        }
    }
}

state_enum!(
    /// Connection state (`connection:`); 8.4 spellings are mapped by drbdsetup.
    ConnState { /// No network config or gave up.
        StandAlone = "StandAlone", /// On the way to StandAlone.
        Disconnecting = "Disconnecting", /// Will try to connect.
        Unconnected = "Unconnected", /// Disconnect reason.
        Timeout = "Timeout", /// Disconnect reason.
        BrokenPipe = "BrokenPipe", /// Disconnect reason.
        NetworkFailure = "NetworkFailure", /// Disconnect reason.
        ProtocolError = "ProtocolError", /// Disconnect reason.
        TearDown = "TearDown", /// Waiting for the peer.
        Connecting = "Connecting", /// 8.4 spelling of Connecting.
        WFConnection = "WFConnection", /// 8.4 handshake state.
        WFReportParams = "WFReportParams", /// Handshake done.
        Connected = "Connected" }
);

state_enum!(
    /// Replication state of a peer device (`replication:`).
    ReplState { /// Not connected for this volume.
        Off = "Off", /// Replicating normally.
        Established = "Established", /// Full sync requested (source).
        StartingSyncS = "StartingSyncS", /// Full sync requested (target).
        StartingSyncT = "StartingSyncT", /// Bitmap exchange (source).
        WFBitMapS = "WFBitMapS", /// Bitmap exchange (target).
        WFBitMapT = "WFBitMapT", /// Target waiting for sync UUID.
        WFSyncUUID = "WFSyncUUID", /// Resync, local is source.
        SyncSource = "SyncSource", /// Resync, local is target.
        SyncTarget = "SyncTarget", /// Paused resync (source).
        PausedSyncS = "PausedSyncS", /// Paused resync (target).
        PausedSyncT = "PausedSyncT", /// Online verify (source).
        VerifyS = "VerifyS", /// Online verify (target).
        VerifyT = "VerifyT", /// Pull-ahead.
        Ahead = "Ahead", /// Pull-ahead (peer side).
        Behind = "Behind" }
);

state_enum!(
    /// The verb of an events2 line.
    Verb { /// Initial dump line.
        Exists = "exists", /// Object created.
        Create = "create", /// Object changed.
        Change = "change", /// Object destroyed.
        Destroy = "destroy", /// Helper called.
        Call = "call", /// Helper returned.
        Response = "response", /// Resource renamed.
        Rename = "rename" }
);

state_enum!(
    /// The object of an events2 line; `-` is the end-of-dump marker.
    Object { /// Resource.
        Resource = "resource", /// Device (volume).
        Device = "device", /// Old spelling of device.
        Minor = "minor", /// Connection to a peer.
        Connection = "connection", /// Per-peer, per-volume state.
        PeerDevice = "peer-device", /// Network path.
        Path = "path", /// Handler call/response.
        Helper = "helper", /// End of the initial dump (`exists -`).
        Marker = "-" }
);

/// Typed fields of a line. `None` means the key was absent (partial update).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Fields {
    /// `name:` resource name.
    pub name: Option<String>,
    /// `volume:`.
    pub volume: Option<u32>,
    /// `minor:`.
    pub minor: Option<u32>,
    /// `peer-node-id:`.
    pub peer_node_id: Option<u32>,
    /// `conn-name:`.
    pub conn_name: Option<String>,
    /// `role:` (local on resource lines, the peer's on connection lines).
    pub role: Option<Role>,
    /// `suspended:` (`no` or a comma list).
    pub suspended: Option<String>,
    /// `force-io-failures:`.
    pub force_io_failures: Option<bool>,
    /// `may_promote:` (DRBD 9).
    pub may_promote: Option<bool>,
    /// `promotion_score:` (DRBD 9).
    pub promotion_score: Option<u64>,
    /// `backing_dev:`.
    pub backing_dev: Option<String>,
    /// `disk:`.
    pub disk: Option<DiskState>,
    /// `client:`.
    pub client: Option<bool>,
    /// `open:`.
    pub open: Option<bool>,
    /// `quorum:`.
    pub quorum: Option<bool>,
    /// `connection:`.
    pub connection: Option<ConnState>,
    /// `replication:`.
    pub replication: Option<ReplState>,
    /// `peer-disk:`.
    pub peer_disk: Option<DiskState>,
    /// `peer-client:`.
    pub peer_client: Option<bool>,
    /// `resync-suspended:`.
    pub resync_suspended: Option<String>,
    /// `done:` resync progress in percent.
    pub done: Option<f64>,
    /// `out-of-sync:` KiB (statistics).
    pub out_of_sync: Option<u64>,
    /// `local:` path address.
    pub local: Option<String>,
    /// `peer:` path address.
    pub peer: Option<String>,
    /// `established:` (path).
    pub established: Option<bool>,
    /// `helper:` handler name.
    pub helper: Option<String>,
    /// `status:` handler exit code (response).
    pub status: Option<i32>,
    /// `new_name:` (rename).
    pub new_name: Option<String>,
    /// Keys this parser does not type (statistics counters, new keys) and
    /// known keys whose value did not fit, in line order.
    pub extra: Vec<(String, String)>,
}

/// One parsed events2 line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// The `--timestamps` prefix, verbatim.
    pub timestamp: Option<String>,
    /// The verb; `None` for the 8.4 `- skipped <n>` line.
    pub verb: Option<Verb>,
    /// The object.
    pub object: Object,
    /// `<n>` of a `- skipped <n>` line (lost netlink messages: re-read state).
    pub skipped: Option<u64>,
    /// Key/value fields.
    pub fields: Fields,
}

/// Why a line could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Empty or blank line.
    #[error("empty line")]
    Empty,
    /// A timestamp with nothing after it.
    #[error("missing verb after timestamp")]
    MissingVerb,
    /// First word is not an events2 verb.
    #[error("unknown verb {0:?}")]
    UnknownVerb(String),
    /// Verb without object.
    #[error("missing object after verb {0:?}")]
    MissingObject(String),
    /// Object word not known.
    #[error("unknown object {0:?}")]
    UnknownObject(String),
    /// A token without `:` or with an empty key.
    #[error("malformed key:value token {0:?}")]
    MalformedToken(String),
    /// `- skipped <n>` with a bad count.
    #[error("malformed skipped marker {0:?}")]
    BadSkipped(String),
    /// Identity key with a value of the wrong type (e.g. `volume:x`).
    #[error("key {key:?}: bad value {value:?}")]
    BadValue {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
}

fn looks_like_timestamp(t: &str) -> bool {
    t.as_bytes().first().is_some_and(u8::is_ascii_digit) && t.contains('T')
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    }
}

fn bool_str(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// Parse one events2 line (without its newline; a trailing `\r`/`\n` is ignored).
pub fn parse_line(line: &str) -> Result<Event, ParseError> {
    let mut toks = line.split_ascii_whitespace();
    let mut first = toks.next().ok_or(ParseError::Empty)?;
    let mut timestamp = None;
    if looks_like_timestamp(first) {
        timestamp = Some(first.to_owned());
        first = toks.next().ok_or(ParseError::MissingVerb)?;
    }
    if first == "-" {
        // 8.4: "- skipped <n>"
        let what = toks.next().unwrap_or("");
        let n = toks.next().unwrap_or("");
        if what != "skipped" || toks.next().is_some() {
            return Err(ParseError::BadSkipped(line.trim().to_owned()));
        }
        let n = n
            .parse()
            .map_err(|_| ParseError::BadSkipped(line.trim().to_owned()))?;
        return Ok(Event {
            timestamp,
            verb: None,
            object: Object::Marker,
            skipped: Some(n),
            fields: Fields::default(),
        });
    }
    let verb: Verb = first.parse().unwrap_or_else(|e| match e {});
    if let Verb::Other(v) = verb {
        return Err(ParseError::UnknownVerb(v));
    }
    let obj = toks
        .next()
        .ok_or_else(|| ParseError::MissingObject(first.to_owned()))?;
    let object: Object = obj.parse().unwrap_or_else(|e| match e {});
    if let Object::Other(o) = object {
        return Err(ParseError::UnknownObject(o));
    }
    let mut f = Fields::default();
    for tok in toks {
        let Some((k, v)) = tok.split_once(':') else {
            return Err(ParseError::MalformedToken(tok.to_owned()));
        };
        if k.is_empty() {
            return Err(ParseError::MalformedToken(tok.to_owned()));
        }
        set_field(&mut f, k, v)?;
    }
    Ok(Event {
        timestamp,
        verb: Some(verb),
        object,
        skipped: None,
        fields: f,
    })
}

fn id_num(k: &str, v: &str) -> Result<u32, ParseError> {
    v.parse().map_err(|_| ParseError::BadValue {
        key: k.to_owned(),
        value: v.to_owned(),
    })
}

fn set_field(f: &mut Fields, k: &str, v: &str) -> Result<(), ParseError> {
    // `--diff` prints `old->new`: the model wants the new value.
    let nv = match v.as_bytes().windows(2).position(|w| w == b"->") {
        Some(i) if k != "local" && k != "peer" => &v[i + 2..],
        _ => v,
    };
    let mut keep = false;
    match k {
        "name" => f.name = Some(v.to_owned()),
        "volume" => f.volume = Some(id_num(k, v)?),
        "minor" => f.minor = Some(id_num(k, v)?),
        "peer-node-id" => f.peer_node_id = Some(id_num(k, v)?),
        "conn-name" => f.conn_name = Some(v.to_owned()),
        "role" => f.role = Some(nv.parse().unwrap_or_else(|e| match e {})),
        "suspended" => f.suspended = Some(nv.to_owned()),
        "force-io-failures" => keep = set_opt(&mut f.force_io_failures, parse_bool(nv)),
        "may_promote" => keep = set_opt(&mut f.may_promote, parse_bool(nv)),
        "promotion_score" => keep = set_opt(&mut f.promotion_score, nv.parse().ok()),
        "backing_dev" => f.backing_dev = Some(nv.to_owned()),
        "disk" => f.disk = Some(nv.parse().unwrap_or_else(|e| match e {})),
        "client" => keep = set_opt(&mut f.client, parse_bool(nv)),
        "open" => keep = set_opt(&mut f.open, parse_bool(nv)),
        "quorum" => keep = set_opt(&mut f.quorum, parse_bool(nv)),
        "connection" => f.connection = Some(nv.parse().unwrap_or_else(|e| match e {})),
        "replication" => f.replication = Some(nv.parse().unwrap_or_else(|e| match e {})),
        "peer-disk" => f.peer_disk = Some(nv.parse().unwrap_or_else(|e| match e {})),
        "peer-client" => keep = set_opt(&mut f.peer_client, parse_bool(nv)),
        "resync-suspended" => f.resync_suspended = Some(nv.to_owned()),
        "done" => {
            keep = set_opt(
                &mut f.done,
                nv.parse::<f64>().ok().filter(|d| d.is_finite()),
            );
        }
        "out-of-sync" => keep = set_opt(&mut f.out_of_sync, nv.parse().ok()),
        "local" => f.local = Some(v.to_owned()),
        "peer" => f.peer = Some(v.to_owned()),
        "established" => keep = set_opt(&mut f.established, parse_bool(nv)),
        "helper" => f.helper = Some(v.to_owned()),
        "status" => keep = set_opt(&mut f.status, nv.parse().ok()),
        "new_name" => f.new_name = Some(v.to_owned()),
        _ => keep = true,
    }
    if keep {
        f.extra.push((k.to_owned(), v.to_owned()));
    }
    Ok(())
}

/// Store `val` if it parsed; returns true when it did not (keep it raw).
fn set_opt<T>(slot: &mut Option<T>, val: Option<T>) -> bool {
    match val {
        Some(x) => {
            *slot = Some(x);
            false
        }
        None => true,
    }
}

impl fmt::Display for Event {
    /// Prints the line in drbdsetup's key order; `parse_line` of the output
    /// gives back an equal event (for values without `->`).
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(t) = &self.timestamp {
            write!(out, "{t} ")?;
        }
        match (&self.verb, self.skipped) {
            (None, n) => return write!(out, "- skipped {}", n.unwrap_or(0)),
            (Some(v), _) => write!(out, "{v} {}", self.object)?,
        }
        let f = &self.fields;
        macro_rules! kv {
            ($k:literal, $v:expr) => {
                if let Some(x) = &$v {
                    write!(out, concat!(" ", $k, ":{}"), x)?;
                }
            };
            (bool $k:literal, $v:expr) => {
                if let Some(x) = $v {
                    write!(out, concat!(" ", $k, ":{}"), bool_str(x))?;
                }
            };
        }
        kv!("name", f.name);
        kv!("peer-node-id", f.peer_node_id);
        kv!("conn-name", f.conn_name);
        kv!("volume", f.volume);
        kv!("minor", f.minor);
        kv!("local", f.local);
        kv!("peer", f.peer);
        kv!("new_name", f.new_name);
        kv!("helper", f.helper);
        kv!("status", f.status);
        kv!("role", f.role);
        kv!("suspended", f.suspended);
        kv!(bool "force-io-failures", f.force_io_failures);
        kv!(bool "may_promote", f.may_promote);
        kv!("promotion_score", f.promotion_score);
        kv!("backing_dev", f.backing_dev);
        kv!("disk", f.disk);
        kv!(bool "client", f.client);
        kv!(bool "open", f.open);
        kv!(bool "quorum", f.quorum);
        kv!("connection", f.connection);
        kv!("replication", f.replication);
        kv!("peer-disk", f.peer_disk);
        kv!(bool "peer-client", f.peer_client);
        kv!("resync-suspended", f.resync_suspended);
        kv!("done", f.done);
        kv!("out-of-sync", f.out_of_sync);
        kv!(bool "established", f.established);
        for (k, v) in &f.extra {
            write!(out, " {k}:{v}")?;
        }
        Ok(())
    }
}
