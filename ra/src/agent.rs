//! Naming an agent (`ocf:PROVIDER:TYPE`, `lsb:NAME`, `systemd:UNIT`) and an
//! action (`start`, `monitor`, …). Pure: parsing and display only; where an
//! agent lives on disk is the runner's business ([`crate::RunnerConfig`]).

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

use crate::Error;

/// Which agent runs a resource, as Pacemaker writes it: the class, then the
/// provider (OCF only), then the type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Agent {
    /// An OCF agent: `$OCF_ROOT/resource.d/PROVIDER/TYPE`.
    Ocf {
        /// The provider directory (`heartbeat`, `linbit`, `hapair`, …).
        provider: String,
        /// The agent's file name (`Filesystem`, `IPaddr2`, …).
        kind: String,
    },
    /// An LSB init script in the init directory (`/etc/init.d/NAME`).
    Lsb {
        /// The script's file name.
        name: String,
    },
    /// A systemd unit, driven through `systemctl`.
    Systemd {
        /// The unit name; `.service` is added when the name has no suffix,
        /// as Pacemaker does.
        unit: String,
    },
}

impl Agent {
    /// An OCF agent from provider and type, checked as [`FromStr`] does.
    pub fn ocf(provider: &str, kind: &str) -> Result<Agent, Error> {
        format!("ocf:{provider}:{kind}").parse()
    }

    /// The resource class: `ocf`, `lsb` or `systemd`.
    pub fn class(&self) -> &'static str {
        match self {
            Agent::Ocf { .. } => "ocf",
            Agent::Lsb { .. } => "lsb",
            Agent::Systemd { .. } => "systemd",
        }
    }

    /// The type (`OCF_RESOURCE_TYPE` for OCF agents, the script or unit name
    /// otherwise).
    pub fn kind(&self) -> &str {
        match self {
            Agent::Ocf { kind, .. } => kind,
            Agent::Lsb { name } => name,
            Agent::Systemd { unit } => unit,
        }
    }
}

/// A path component: not empty, not `.`/`..`, no `/`, no NUL, printable,
/// and (for the parts of an agent name) no `:`.
fn check_component(spec: &str, what: &str, s: &str) -> Result<(), Error> {
    let bad = |reason: String| Error::InvalidAgent {
        spec: spec.to_string(),
        reason,
    };
    if s.is_empty() {
        return Err(bad(format!("the {what} is empty")));
    }
    if s == "." || s == ".." {
        return Err(bad(format!("the {what} cannot be {s:?}")));
    }
    if let Some(c) = s
        .chars()
        .find(|c| *c == '/' || *c == ':' || c.is_control() || c.is_whitespace())
    {
        return Err(bad(format!("the {what} contains {c:?}")));
    }
    Ok(())
}

impl FromStr for Agent {
    type Err = Error;

    fn from_str(spec: &str) -> Result<Agent, Error> {
        let bad = |reason: &str| Error::InvalidAgent {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        let (class, rest) = spec
            .split_once(':')
            .ok_or_else(|| bad("expected ocf:PROVIDER:TYPE, lsb:NAME or systemd:UNIT"))?;
        match class {
            "ocf" => {
                let (provider, kind) = rest
                    .split_once(':')
                    .ok_or_else(|| bad("an OCF agent is ocf:PROVIDER:TYPE"))?;
                check_component(spec, "provider", provider)?;
                check_component(spec, "type", kind)?;
                Ok(Agent::Ocf {
                    provider: provider.to_string(),
                    kind: kind.to_string(),
                })
            }
            "lsb" => {
                check_component(spec, "script name", rest)?;
                Ok(Agent::Lsb {
                    name: rest.to_string(),
                })
            }
            "systemd" | "service" if !rest.is_empty() => {
                check_component(spec, "unit name", rest)?;
                let unit = if rest.contains('.') {
                    rest.to_string()
                } else {
                    format!("{rest}.service")
                };
                Ok(Agent::Systemd { unit })
            }
            "systemd" | "service" => Err(bad("the unit name is empty")),
            _ => Err(bad(
                "unknown class (expected ocf:PROVIDER:TYPE, lsb:NAME or systemd:UNIT)",
            )),
        }
    }
}

impl fmt::Display for Agent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Agent::Ocf { provider, kind } => write!(f, "ocf:{provider}:{kind}"),
            Agent::Lsb { name } => write!(f, "lsb:{name}"),
            Agent::Systemd { unit } => write!(f, "systemd:{unit}"),
        }
    }
}

impl Serialize for Agent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// An agent action. The OCF 1.1 actions plus Pacemaker's migration
/// extension; anything else (an agent's own `methods`, `usage`, …) is
/// [`Action::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// `start`: bring the resource up (unpromoted, if it has roles).
    Start,
    /// `stop`: take it down completely.
    Stop,
    /// `monitor`: report its state; with interval 0 it is a *probe*.
    Monitor,
    /// `promote`: to the promoted role.
    Promote,
    /// `demote`: to the unpromoted role.
    Demote,
    /// `notify`: pre/post notification of a clone's transition.
    Notify,
    /// `reload-agent`: apply changed `reloadable` parameters (OCF 1.1).
    ReloadAgent,
    /// `reload`: reload the service's native config (not used by Pacemaker).
    Reload,
    /// `validate-all`: check the parameters.
    ValidateAll,
    /// `meta-data`: print the agent's XML description.
    MetaData,
    /// `migrate_to` (Pacemaker extension), run on the source node.
    MigrateTo,
    /// `migrate_from` (Pacemaker extension), run on the target node.
    MigrateFrom,
    /// Any other action name (`[a-z0-9_-]+`).
    Other(String),
}

impl Action {
    /// The name passed to the agent as its only argument.
    pub fn as_str(&self) -> &str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Monitor => "monitor",
            Action::Promote => "promote",
            Action::Demote => "demote",
            Action::Notify => "notify",
            Action::ReloadAgent => "reload-agent",
            Action::Reload => "reload",
            Action::ValidateAll => "validate-all",
            Action::MetaData => "meta-data",
            Action::MigrateTo => "migrate_to",
            Action::MigrateFrom => "migrate_from",
            Action::Other(s) => s,
        }
    }
}

impl FromStr for Action {
    type Err = Error;

    fn from_str(s: &str) -> Result<Action, Error> {
        Ok(match s {
            "start" => Action::Start,
            "stop" => Action::Stop,
            "monitor" => Action::Monitor,
            "promote" => Action::Promote,
            "demote" => Action::Demote,
            "notify" => Action::Notify,
            "reload-agent" => Action::ReloadAgent,
            "reload" => Action::Reload,
            "validate-all" => Action::ValidateAll,
            "meta-data" | "metadata" => Action::MetaData,
            "migrate_to" => Action::MigrateTo,
            "migrate_from" => Action::MigrateFrom,
            _ => {
                let ok = !s.is_empty()
                    && s.len() <= 64
                    && s.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                    });
                if !ok {
                    return Err(Error::InvalidAction(s.to_string()));
                }
                Action::Other(s.to_string())
            }
        })
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Action {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_specs_round_trip() {
        for s in [
            "ocf:heartbeat:Dummy",
            "ocf:linbit:drbd",
            "lsb:postgresql",
            "systemd:nfs-server.service",
            "systemd:getty@tty1.service",
        ] {
            let a: Agent = s.parse().unwrap();
            assert_eq!(a.to_string(), s);
        }
        assert_eq!(
            "systemd:sshd".parse::<Agent>().unwrap(),
            Agent::Systemd {
                unit: "sshd.service".into()
            }
        );
        assert_eq!(
            "service:sshd".parse::<Agent>().unwrap().to_string(),
            "systemd:sshd.service"
        );
        let a = Agent::ocf("heartbeat", "IPaddr2").unwrap();
        assert_eq!((a.class(), a.kind()), ("ocf", "IPaddr2"));
    }

    #[test]
    fn bad_agent_specs_are_refused() {
        for s in [
            "",
            "Dummy",
            "ocf:heartbeat",
            "ocf::Dummy",
            "ocf:heartbeat:",
            "ocf:heart/beat:Dummy",
            "ocf:heartbeat:../../bin/sh",
            "ocf:..:Dummy",
            "ocf:heartbeat:Dum:my",
            "lsb:",
            "lsb:a b",
            "systemd:",
            "stonith:fence_ipmilan",
            "lsb:x\ny",
        ] {
            assert!(
                matches!(s.parse::<Agent>(), Err(Error::InvalidAgent { .. })),
                "{s:?} was accepted"
            );
        }
    }

    #[test]
    fn actions_parse() {
        assert_eq!(
            "reload-agent".parse::<Action>().unwrap(),
            Action::ReloadAgent
        );
        assert_eq!("meta-data".parse::<Action>().unwrap(), Action::MetaData);
        assert_eq!(
            "methods".parse::<Action>().unwrap(),
            Action::Other("methods".into())
        );
        for a in [
            "start",
            "stop",
            "monitor",
            "migrate_to",
            "validate-all",
            "notify",
        ] {
            assert_eq!(a.parse::<Action>().unwrap().as_str(), a);
        }
        for a in ["", "Start", "st art", "../x", "a;b"] {
            assert!(a.parse::<Action>().is_err(), "{a:?}");
        }
    }
}
