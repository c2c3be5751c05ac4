//! Per-resource state built by applying events2 lines in order.
//!
//! Change lines are partial: absent keys keep their old value. `destroy`
//! drops the object and its children. `exists -` marks the initial dump
//! complete ([`Cluster::ready`]); no decision should be made before it.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::events::{ConnState, DiskState, Event, Fields, Object, ReplState, Role, Verb};

/// Local state of one volume.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Device {
    /// Minor number.
    pub minor: Option<u32>,
    /// Local disk state.
    pub disk: Option<DiskState>,
    /// Backing device path or `none`.
    pub backing_dev: Option<String>,
    /// Intentionally diskless.
    pub client: Option<bool>,
    /// Held open.
    pub open: Option<bool>,
    /// Quorum (DRBD 9).
    pub quorum: Option<bool>,
}

/// Per-peer state of one volume.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PeerDevice {
    /// Replication state.
    pub replication: Option<ReplState>,
    /// Peer's disk state.
    pub peer_disk: Option<DiskState>,
    /// Peer is intentionally diskless.
    pub peer_client: Option<bool>,
    /// `resync-suspended:` value.
    pub resync_suspended: Option<String>,
    /// Resync progress in percent (`done:`), cleared when not syncing.
    pub done: Option<f64>,
    /// `out-of-sync:` KiB.
    pub out_of_sync: Option<u64>,
}

/// Connection to one peer.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Connection {
    /// `conn-name:`.
    pub conn_name: Option<String>,
    /// Connection state.
    pub state: Option<ConnState>,
    /// The peer's role.
    pub peer_role: Option<Role>,
    /// Peer devices by volume.
    pub peer_devices: BTreeMap<u32, PeerDevice>,
    /// Paths: (local, peer) → established.
    pub paths: BTreeMap<String, Option<bool>>,
}

/// One resource.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Resource {
    /// Local role.
    pub role: Option<Role>,
    /// `suspended:` (`no` or a comma list such as `fencing`).
    pub suspended: Option<String>,
    /// `force-io-failures:`.
    pub force_io_failures: Option<bool>,
    /// `may_promote:` (DRBD 9 only).
    pub may_promote: Option<bool>,
    /// `promotion_score:` (DRBD 9 only).
    pub promotion_score: Option<u64>,
    /// Devices by volume.
    pub devices: BTreeMap<u32, Device>,
    /// Connections by peer node id.
    pub connections: BTreeMap<u32, Connection>,
}

impl Resource {
    /// True when `suspended:` is anything but `no` (drbd-reactor semantics).
    pub fn is_suspended(&self) -> bool {
        self.suspended.as_deref().is_some_and(|s| s != "no")
    }
}

/// A change the model saw, for logs and replays. `old` is `None` when the
/// object or key was not known before.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Transition {
    /// The initial dump ended (`exists -`).
    Ready,
    /// Local role changed.
    Role {
        /// Resource.
        resource: String,
        /// Before.
        old: Option<Role>,
        /// After.
        new: Role,
    },
    /// Local disk state of a volume changed.
    Disk {
        /// Resource.
        resource: String,
        /// Volume.
        volume: u32,
        /// Before.
        old: Option<DiskState>,
        /// After.
        new: DiskState,
    },
    /// Connection state changed.
    Connection {
        /// Resource.
        resource: String,
        /// Peer node id.
        peer: u32,
        /// Before.
        old: Option<ConnState>,
        /// After.
        new: ConnState,
    },
    /// The peer's role changed.
    PeerRole {
        /// Resource.
        resource: String,
        /// Peer node id.
        peer: u32,
        /// Before.
        old: Option<Role>,
        /// After.
        new: Role,
    },
    /// The peer's disk state changed.
    PeerDisk {
        /// Resource.
        resource: String,
        /// Peer node id.
        peer: u32,
        /// Volume.
        volume: u32,
        /// Before.
        old: Option<DiskState>,
        /// After.
        new: DiskState,
    },
    /// Replication state changed.
    Replication {
        /// Resource.
        resource: String,
        /// Peer node id.
        peer: u32,
        /// Volume.
        volume: u32,
        /// Before.
        old: Option<ReplState>,
        /// After.
        new: ReplState,
    },
    /// A handler was called or returned (`call`/`response helper`).
    Helper {
        /// Resource.
        resource: String,
        /// Handler name.
        helper: String,
        /// Exit status on `response`, `None` on `call`.
        status: Option<i32>,
    },
    /// An object was destroyed.
    Destroyed {
        /// Resource.
        resource: String,
        /// Which object (`resource`, `connection`, ...).
        object: String,
    },
    /// Netlink messages were lost (8.4 `- skipped`): re-read the full state.
    Skipped {
        /// How many.
        count: u64,
    },
}

/// Why an event could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// An identity key the object needs is absent.
    #[error("{object} line without {key}:")]
    MissingIdentity {
        /// The object.
        object: &'static str,
        /// The missing key.
        key: &'static str,
    },
}

/// All resources seen on the stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Cluster {
    ready: bool,
    /// Resources by name.
    pub resources: BTreeMap<String, Resource>,
}

fn need<T: Clone>(v: &Option<T>, object: &'static str, key: &'static str) -> Result<T, ApplyError> {
    v.clone().ok_or(ApplyError::MissingIdentity { object, key })
}

fn merge<T: Clone + PartialEq>(slot: &mut Option<T>, new: &Option<T>) -> Option<(Option<T>, T)> {
    let n = new.as_ref()?;
    if slot.as_ref() == Some(n) {
        return None;
    }
    let old = slot.replace(n.clone());
    Some((old, n.clone()))
}

fn set<T: Clone>(slot: &mut Option<T>, new: &Option<T>) {
    if let Some(n) = new {
        *slot = Some(n.clone());
    }
}

impl Cluster {
    /// An empty model (not ready).
    pub fn new() -> Self {
        Self::default()
    }

    /// True once `exists -` was seen: the model is complete.
    pub fn ready(&self) -> bool {
        self.ready
    }

    /// Resource by name.
    pub fn resource(&self, name: &str) -> Option<&Resource> {
        self.resources.get(name)
    }

    /// Apply one event; returns the transitions it caused.
    pub fn apply(&mut self, ev: &Event) -> Result<Vec<Transition>, ApplyError> {
        let mut out = Vec::new();
        let Some(verb) = &ev.verb else {
            out.push(Transition::Skipped {
                count: ev.skipped.unwrap_or(0),
            });
            return Ok(out);
        };
        let f = &ev.fields;
        if ev.object == Object::Marker {
            if *verb == Verb::Exists && !self.ready {
                self.ready = true;
                out.push(Transition::Ready);
            }
            return Ok(out);
        }
        let obj: &'static str = match ev.object {
            Object::Resource => "resource",
            Object::Device | Object::Minor => "device",
            Object::Connection => "connection",
            Object::PeerDevice => "peer-device",
            Object::Path => "path",
            Object::Helper => "helper",
            // Objects `parse_line` never produces (hand-built events): ignore.
            Object::Marker | Object::Other(_) => return Ok(out),
        };
        let name = need(&f.name, obj, "name")?;
        match verb {
            Verb::Call | Verb::Response => {
                out.push(Transition::Helper {
                    resource: name,
                    helper: f.helper.clone().unwrap_or_default(),
                    status: f.status,
                });
                return Ok(out);
            }
            Verb::Rename => {
                if let Some(new) = &f.new_name
                    && let Some(r) = self.resources.remove(&name)
                {
                    self.resources.insert(new.clone(), r);
                }
                return Ok(out);
            }
            Verb::Destroy => {
                self.destroy(&name, obj, f)?;
                out.push(Transition::Destroyed {
                    resource: name,
                    object: obj.to_owned(),
                });
                return Ok(out);
            }
            _ => {}
        }
        // exists / create / change (and unknown-but-accepted verbs): merge.
        match obj {
            "resource" => {
                let r = self.resources.entry(name.clone()).or_default();
                if let Some((old, new)) = merge(&mut r.role, &f.role) {
                    out.push(Transition::Role {
                        resource: name,
                        old,
                        new,
                    });
                }
                set(&mut r.suspended, &f.suspended);
                set(&mut r.force_io_failures, &f.force_io_failures);
                set(&mut r.may_promote, &f.may_promote);
                set(&mut r.promotion_score, &f.promotion_score);
            }
            "device" => {
                let vol = need(&f.volume, obj, "volume")?;
                let r = self.resources.entry(name.clone()).or_default();
                let d = r.devices.entry(vol).or_default();
                set(&mut d.minor, &f.minor);
                if let Some((old, new)) = merge(&mut d.disk, &f.disk) {
                    out.push(Transition::Disk {
                        resource: name,
                        volume: vol,
                        old,
                        new,
                    });
                }
                set(&mut d.backing_dev, &f.backing_dev);
                set(&mut d.client, &f.client);
                set(&mut d.open, &f.open);
                set(&mut d.quorum, &f.quorum);
            }
            "connection" | "peer-device" | "path" => {
                let peer = need(&f.peer_node_id, obj, "peer-node-id")?;
                let vol = if obj == "peer-device" {
                    Some(need(&f.volume, obj, "volume")?)
                } else {
                    None
                };
                let r = self.resources.entry(name.clone()).or_default();
                let c = r.connections.entry(peer).or_default();
                set(&mut c.conn_name, &f.conn_name);
                if obj == "connection" {
                    if let Some((old, new)) = merge(&mut c.state, &f.connection) {
                        out.push(Transition::Connection {
                            resource: name.clone(),
                            peer,
                            old,
                            new,
                        });
                    }
                    if let Some((old, new)) = merge(&mut c.peer_role, &f.role) {
                        out.push(Transition::PeerRole {
                            resource: name,
                            peer,
                            old,
                            new,
                        });
                    }
                } else if let Some(volume) = vol {
                    let p = c.peer_devices.entry(volume).or_default();
                    if let Some((old, new)) = merge(&mut p.replication, &f.replication) {
                        out.push(Transition::Replication {
                            resource: name.clone(),
                            peer,
                            volume,
                            old,
                            new,
                        });
                    }
                    if let Some((old, new)) = merge(&mut p.peer_disk, &f.peer_disk) {
                        out.push(Transition::PeerDisk {
                            resource: name,
                            peer,
                            volume,
                            old,
                            new,
                        });
                    }
                    set(&mut p.peer_client, &f.peer_client);
                    set(&mut p.resync_suspended, &f.resync_suspended);
                    set(&mut p.out_of_sync, &f.out_of_sync);
                    let syncing = matches!(
                        p.replication,
                        Some(
                            ReplState::SyncSource
                                | ReplState::SyncTarget
                                | ReplState::PausedSyncS
                                | ReplState::PausedSyncT
                                | ReplState::VerifyS
                                | ReplState::VerifyT
                        )
                    );
                    if f.done.is_some() {
                        p.done = f.done;
                    } else if !syncing {
                        p.done = None;
                    }
                } else {
                    let key = path_key(f);
                    let e = c.paths.entry(key).or_default();
                    set(e, &f.established);
                }
            }
            _ => {} // helper with exists/create/change: not state
        }
        Ok(out)
    }

    fn destroy(&mut self, name: &str, obj: &'static str, f: &Fields) -> Result<(), ApplyError> {
        match obj {
            "resource" => {
                self.resources.remove(name);
            }
            "device" => {
                let vol = need(&f.volume, obj, "volume")?;
                if let Some(r) = self.resources.get_mut(name) {
                    r.devices.remove(&vol);
                    for c in r.connections.values_mut() {
                        c.peer_devices.remove(&vol);
                    }
                }
            }
            "connection" | "peer-device" | "path" => {
                let peer = need(&f.peer_node_id, obj, "peer-node-id")?;
                let vol = if obj == "peer-device" {
                    Some(need(&f.volume, obj, "volume")?)
                } else {
                    None
                };
                if let Some(r) = self.resources.get_mut(name) {
                    match (obj, vol) {
                        ("connection", _) => {
                            r.connections.remove(&peer);
                        }
                        (_, Some(v)) => {
                            if let Some(c) = r.connections.get_mut(&peer) {
                                c.peer_devices.remove(&v);
                            }
                        }
                        _ => {
                            if let Some(c) = r.connections.get_mut(&peer) {
                                c.paths.remove(&path_key(f));
                            }
                        }
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn path_key(f: &Fields) -> String {
    format!(
        "{} {}",
        f.local.as_deref().unwrap_or("?"),
        f.peer.as_deref().unwrap_or("?")
    )
}
