//! The environment an agent gets. Pure: a [`Request`] and the runner's
//! fixed settings in, the complete environment out.
//!
//! The child's environment is cleared and this is *all* it gets: the base
//! variables (`PATH`, `LC_ALL` and whatever the operator configured, never
//! `NOTIFY_SOCKET` nor anything in the reserved `OCF_` namespace) and, for
//! OCF agents, what Pacemaker's executor passes (ocf.md 2.4):
//!
//! - `OCF_ROOT`, `OCF_RA_VERSION_MAJOR=1`, `OCF_RA_VERSION_MINOR=1`,
//!   `OCF_RESOURCE_INSTANCE`, `OCF_RESOURCE_TYPE`, `OCF_RESOURCE_PROVIDER`,
//!   `OCF_EXIT_REASON_PREFIX=ocf-exit-reason:`;
//! - `OCF_RESKEY_<param>` per instance parameter;
//! - `OCF_RESKEY_CRM_meta_<attr>` per meta attribute (`-` → `_`), then the
//!   computed ones: `interval` and `timeout` in milliseconds, `name` (the
//!   action), `on_node`, the clone attributes (`clone`, `clone_max`,
//!   `clone_node_max`, `globally_unique`, `notify`, `promotable`,
//!   `promoted_max`/`promoted_node_max` and the legacy
//!   `master_max`/`master_node_max`);
//! - `OCF_CHECK_LEVEL` (Pacemaker passes it under that name, not as a
//!   `RESKEY`);
//! - for `notify`: `notify_type`, `notify_operation` and the lists
//!   `notify_{start,stop,active,promote,demote,promoted,unpromoted}_{resource,uname}`,
//!   the legacy `notify_{master,slave}_{resource,uname}`,
//!   `notify_inactive_resource`, `notify_available_uname`,
//!   `notify_all_uname`, `notify_all_hosts`; space-separated, an empty list
//!   being a single space, as Pacemaker passes them.
//!
//! LSB scripts and `systemctl` get the base variables only.

use std::collections::BTreeMap;
use std::path::Path;

use crate::Error;
use crate::agent::Agent;
use crate::capture::EXIT_REASON_PREFIX;
use crate::request::{Instance, Notify, NotifyOp, NotifyType, Request, millis};

/// The environment, sorted by name.
pub type Env = BTreeMap<String, String>;

/// A name usable as a shell variable: `[A-Za-z_][A-Za-z0-9_]*`.
fn is_shell_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

fn check_value(name: &str, value: &str) -> Result<(), Error> {
    if value.contains('\0') {
        return Err(Error::InvalidParam {
            name: name.to_string(),
            reason: "the value contains a NUL byte".into(),
        });
    }
    Ok(())
}

/// Checks the runner's base variables: shell names, not `NOTIFY_SOCKET`,
/// nothing in the `OCF_` namespace, no NUL.
pub fn check_base(base: &Env) -> Result<(), Error> {
    for (k, v) in base {
        let reason = if !is_shell_name(k) {
            Some("not a valid variable name")
        } else if k == "NOTIFY_SOCKET" {
            Some("agents must never talk to systemd as if they were hapair")
        } else if k.starts_with("OCF_") {
            Some("the OCF_ namespace is set by the runner only")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(Error::InvalidParam {
                name: k.clone(),
                reason: format!("base environment: {reason}"),
            });
        }
        check_value(k, v)?;
    }
    Ok(())
}

fn list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let s = items.collect::<Vec<_>>().join(" ");
    if s.is_empty() { " ".to_string() } else { s }
}

fn resources(l: &[Instance]) -> String {
    list(l.iter().map(|i| i.resource.as_str()))
}

fn unames(l: &[Instance]) -> String {
    list(l.iter().map(|i| i.uname.as_str()))
}

fn add_notify(env: &mut Env, n: &Notify) {
    let mut set = |k: &str, v: String| {
        env.insert(format!("OCF_RESKEY_CRM_meta_notify_{k}"), v);
    };
    set(
        "type",
        match n.kind {
            NotifyType::Pre => "pre",
            NotifyType::Post => "post",
        }
        .to_string(),
    );
    set(
        "operation",
        match n.operation {
            NotifyOp::Start => "start",
            NotifyOp::Stop => "stop",
            NotifyOp::Promote => "promote",
            NotifyOp::Demote => "demote",
        }
        .to_string(),
    );
    let lists: [(&str, &[Instance]); 9] = [
        ("start", &n.start),
        ("stop", &n.stop),
        ("active", &n.active),
        ("promote", &n.promote),
        ("demote", &n.demote),
        ("promoted", &n.promoted),
        ("unpromoted", &n.unpromoted),
        ("master", &n.promoted),
        ("slave", &n.unpromoted),
    ];
    for (name, l) in lists {
        set(&format!("{name}_resource"), resources(l));
        set(&format!("{name}_uname"), unames(l));
    }
    set(
        "inactive_resource",
        list(n.inactive.iter().map(String::as_str)),
    );
    set(
        "available_uname",
        list(n.available_unames.iter().map(String::as_str)),
    );
    set("all_uname", list(n.all_unames.iter().map(String::as_str)));
    set("all_hosts", list(n.all_hosts.iter().map(String::as_str)));
}

/// The complete environment for `req`. `base` must have passed
/// [`check_base`]; `node` is this node's name (`on_node`).
pub fn build(req: &Request, base: &Env, ocf_root: &Path, node: &str) -> Result<Env, Error> {
    let mut env = base.clone();
    let Agent::Ocf { provider, kind } = &req.agent else {
        return Ok(env);
    };
    for (k, v) in &req.params {
        if !is_shell_name(k) {
            return Err(Error::InvalidParam {
                name: k.clone(),
                reason: "parameter names are [A-Za-z_][A-Za-z0-9_]*".into(),
            });
        }
        check_value(k, v)?;
        env.insert(format!("OCF_RESKEY_{k}"), v.clone());
    }
    for (k, v) in &req.meta {
        let name = k.replace('-', "_");
        if !is_shell_name(&name) {
            return Err(Error::InvalidParam {
                name: k.clone(),
                reason: "meta attribute names are [A-Za-z_][A-Za-z0-9_-]*".into(),
            });
        }
        check_value(k, v)?;
        env.insert(format!("OCF_RESKEY_CRM_meta_{name}"), v.clone());
    }
    let mut set = |k: &str, v: String| {
        env.insert(k.to_string(), v);
    };
    set("OCF_ROOT", ocf_root.display().to_string());
    set("OCF_RA_VERSION_MAJOR", "1".into());
    set("OCF_RA_VERSION_MINOR", "1".into());
    set("OCF_RESOURCE_INSTANCE", req.resource.clone());
    set("OCF_RESOURCE_TYPE", kind.clone());
    set("OCF_RESOURCE_PROVIDER", provider.clone());
    set("OCF_EXIT_REASON_PREFIX", EXIT_REASON_PREFIX.into());
    set(
        "OCF_RESKEY_CRM_meta_interval",
        millis(req.interval).to_string(),
    );
    set(
        "OCF_RESKEY_CRM_meta_timeout",
        millis(req.timeout).to_string(),
    );
    set("OCF_RESKEY_CRM_meta_name", req.action.as_str().into());
    set("OCF_RESKEY_CRM_meta_on_node", node.into());
    if let Some(level) = req.check_level {
        set("OCF_CHECK_LEVEL", level.to_string());
    }
    if let Some(c) = &req.clone {
        set("OCF_RESKEY_CRM_meta_clone", c.instance.to_string());
        set("OCF_RESKEY_CRM_meta_clone_max", c.clone_max.to_string());
        set(
            "OCF_RESKEY_CRM_meta_clone_node_max",
            c.clone_node_max.to_string(),
        );
        set(
            "OCF_RESKEY_CRM_meta_globally_unique",
            c.globally_unique.to_string(),
        );
        set("OCF_RESKEY_CRM_meta_notify", c.notify.to_string());
        if let Some((max, node_max)) = c.promotable {
            set("OCF_RESKEY_CRM_meta_promotable", "true".into());
            for prefix in ["promoted", "master"] {
                set(
                    &format!("OCF_RESKEY_CRM_meta_{prefix}_max"),
                    max.to_string(),
                );
                set(
                    &format!("OCF_RESKEY_CRM_meta_{prefix}_node_max"),
                    node_max.to_string(),
                );
            }
        }
    }
    if let Some(n) = &req.notify {
        add_notify(&mut env, n);
    }
    if req.resource.is_empty() || req.resource.contains('\0') {
        return Err(Error::InvalidParam {
            name: "OCF_RESOURCE_INSTANCE".into(),
            reason: "the resource name must be non-empty and free of NUL bytes".into(),
        });
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::agent::Action;
    use crate::request::CloneMeta;

    fn base() -> Env {
        [("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), ("LC_ALL", "C")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn dummy(action: Action) -> Request {
        Request::new(
            "r1",
            "ocf:heartbeat:Dummy".parse().unwrap(),
            action,
            Duration::from_secs(20),
        )
    }

    #[test]
    fn plain_ocf_environment() {
        let req = dummy(Action::Monitor)
            .interval(Duration::from_secs(10))
            .param("state", "/run/x.state")
            .param("fake", "a b 'c'")
            .meta("target-role", "Started")
            .check_level(10);
        let env = build(&req, &base(), Path::new("/usr/lib/ocf"), "alpha").unwrap();
        let expect: Env = [
            ("LC_ALL", "C"),
            ("OCF_CHECK_LEVEL", "10"),
            ("OCF_EXIT_REASON_PREFIX", "ocf-exit-reason:"),
            ("OCF_RA_VERSION_MAJOR", "1"),
            ("OCF_RA_VERSION_MINOR", "1"),
            ("OCF_RESKEY_CRM_meta_interval", "10000"),
            ("OCF_RESKEY_CRM_meta_name", "monitor"),
            ("OCF_RESKEY_CRM_meta_on_node", "alpha"),
            ("OCF_RESKEY_CRM_meta_target_role", "Started"),
            ("OCF_RESKEY_CRM_meta_timeout", "20000"),
            ("OCF_RESKEY_fake", "a b 'c'"),
            ("OCF_RESKEY_state", "/run/x.state"),
            ("OCF_RESOURCE_INSTANCE", "r1"),
            ("OCF_RESOURCE_PROVIDER", "heartbeat"),
            ("OCF_RESOURCE_TYPE", "Dummy"),
            ("OCF_ROOT", "/usr/lib/ocf"),
            ("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(env, expect);
    }

    #[test]
    fn computed_meta_wins_over_configured() {
        let req = dummy(Action::Start)
            .meta("timeout", "1")
            .meta("interval", "5");
        let env = build(&req, &base(), Path::new("/x"), "n").unwrap();
        assert_eq!(env["OCF_RESKEY_CRM_meta_timeout"], "20000");
        assert_eq!(env["OCF_RESKEY_CRM_meta_interval"], "0");
    }

    #[test]
    fn lsb_and_systemd_get_the_base_only() {
        for agent in ["lsb:postgresql", "systemd:nfs-server"] {
            let mut req = dummy(Action::Start).param("x", "y");
            req.agent = agent.parse().unwrap();
            assert_eq!(build(&req, &base(), Path::new("/x"), "n").unwrap(), base());
        }
    }

    #[test]
    fn promotable_clone_and_notify_variables() {
        let mut n = Notify::new(NotifyType::Post, NotifyOp::Promote);
        n.promote = vec![Instance::new("drbd0:1", "beta")];
        n.promoted = vec![Instance::new("drbd0:1", "beta")];
        n.unpromoted = vec![Instance::new("drbd0:0", "alpha")];
        n.active = vec![
            Instance::new("drbd0:0", "alpha"),
            Instance::new("drbd0:1", "beta"),
        ];
        n.all_unames = vec!["alpha".into(), "beta".into()];
        n.available_unames = n.all_unames.clone();
        n.all_hosts = n.all_unames.clone();
        let req = dummy(Action::Notify)
            .clone_meta(CloneMeta::promotable_pair(0))
            .notify(n);
        let env = build(&req, &base(), Path::new("/x"), "alpha").unwrap();
        let m = |k: &str| env[&format!("OCF_RESKEY_CRM_meta_{k}")].as_str();
        assert_eq!(m("clone"), "0");
        assert_eq!(m("clone_max"), "2");
        assert_eq!(m("clone_node_max"), "1");
        assert_eq!(m("promotable"), "true");
        assert_eq!(m("promoted_max"), "1");
        assert_eq!(m("master_max"), "1");
        assert_eq!(m("promoted_node_max"), "1");
        assert_eq!(m("master_node_max"), "1");
        assert_eq!(m("notify"), "true");
        assert_eq!(m("globally_unique"), "false");
        assert_eq!(m("notify_type"), "post");
        assert_eq!(m("notify_operation"), "promote");
        assert_eq!(m("notify_promote_resource"), "drbd0:1");
        assert_eq!(m("notify_promote_uname"), "beta");
        assert_eq!(m("notify_promoted_resource"), "drbd0:1");
        assert_eq!(m("notify_master_resource"), "drbd0:1");
        assert_eq!(m("notify_master_uname"), "beta");
        assert_eq!(m("notify_unpromoted_uname"), "alpha");
        assert_eq!(m("notify_slave_resource"), "drbd0:0");
        assert_eq!(m("notify_slave_uname"), "alpha");
        assert_eq!(m("notify_active_resource"), "drbd0:0 drbd0:1");
        assert_eq!(m("notify_active_uname"), "alpha beta");
        // Empty lists are a single space, as Pacemaker passes them.
        assert_eq!(m("notify_start_resource"), " ");
        assert_eq!(m("notify_stop_uname"), " ");
        assert_eq!(m("notify_demote_resource"), " ");
        assert_eq!(m("notify_inactive_resource"), " ");
        assert_eq!(m("notify_all_uname"), "alpha beta");
        assert_eq!(m("notify_available_uname"), "alpha beta");
        assert_eq!(m("notify_all_hosts"), "alpha beta");
        let notify_vars = env
            .keys()
            .filter(|k| k.starts_with("OCF_RESKEY_CRM_meta_notify_"))
            .count();
        // type, operation, 9 lists x 2, inactive, available, all, all_hosts
        assert_eq!(notify_vars, 2 + 18 + 4);
    }

    #[test]
    fn bad_names_and_values_are_refused() {
        for name in ["", "1abc", "a-b", "a b", "a=b", "é"] {
            let req = dummy(Action::Start).param(name, "v");
            assert!(
                matches!(
                    build(&req, &base(), Path::new("/x"), "n"),
                    Err(Error::InvalidParam { .. })
                ),
                "{name:?}"
            );
        }
        let req = dummy(Action::Start).param("ok", "a\0b");
        assert!(build(&req, &base(), Path::new("/x"), "n").is_err());
        let req = dummy(Action::Start).meta("a b", "v");
        assert!(build(&req, &base(), Path::new("/x"), "n").is_err());
        let mut req = dummy(Action::Start);
        req.resource = String::new();
        assert!(build(&req, &base(), Path::new("/x"), "n").is_err());

        let mut b = base();
        b.insert("NOTIFY_SOCKET".into(), "/run/systemd/notify".into());
        assert!(check_base(&b).is_err());
        let mut b = base();
        b.insert("OCF_ROOT".into(), "/elsewhere".into());
        assert!(check_base(&b).is_err());
        assert!(check_base(&base()).is_ok());
    }
}
