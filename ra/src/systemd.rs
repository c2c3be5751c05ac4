//! Reading `systemctl` output. Pure; the runner ([`crate::Runner`]) runs
//! `systemctl start|stop|is-active|show` and hands the text here.
//!
//! Mapping, as Pacemaker's systemd class does it: `active` and `reloading`
//! are running; `inactive`, `failed` and an unknown unit are stopped;
//! `activating`/`deactivating` are still pending, reported as a generic
//! error with that reason (Pacemaker would wait and re-check).

use std::collections::BTreeMap;
use std::path::Path;

use crate::exit::OcfExit;

/// Whether systemd is the running init system, the way `sd_booted()`
/// decides: its runtime unit directory exists.
pub fn booted(runtime_dir: &Path) -> bool {
    runtime_dir.is_dir()
}

/// The OCF code for the first line of `systemctl is-active UNIT`, and a
/// reason when the state is not a plain running/stopped.
pub fn active_state_to_ocf(state: &str) -> (OcfExit, Option<String>) {
    match state.trim() {
        "active" | "reloading" | "refreshing" => (OcfExit::Success, None),
        "inactive" | "failed" | "dead" | "unknown" | "" => (OcfExit::NotRunning, None),
        s @ ("activating" | "deactivating") => {
            (OcfExit::ErrGeneric, Some(format!("unit is still {s}")))
        }
        s => (
            OcfExit::ErrGeneric,
            Some(format!("unexpected unit state {s:?}")),
        ),
    }
}

/// Parses `systemctl show --property=...` output (`Key=Value` lines).
pub fn parse_show(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// A one-line summary of a unit's state for an exit reason:
/// `LoadState=loaded ActiveState=failed SubState=failed Result=exit-code`.
pub fn summary(props: &BTreeMap<String, String>) -> String {
    ["LoadState", "ActiveState", "SubState", "Result"]
        .iter()
        .filter_map(|k| props.get(*k).map(|v| format!("{k}={v}")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The properties `summary` shows, for `systemctl show --property=`.
pub const SHOW_PROPERTIES: &str = "LoadState,ActiveState,SubState,Result";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states() {
        assert_eq!(active_state_to_ocf("active\n").0, OcfExit::Success);
        assert_eq!(active_state_to_ocf("reloading").0, OcfExit::Success);
        assert_eq!(active_state_to_ocf("inactive").0, OcfExit::NotRunning);
        assert_eq!(active_state_to_ocf("failed").0, OcfExit::NotRunning);
        assert_eq!(active_state_to_ocf("").0, OcfExit::NotRunning);
        let (rc, why) = active_state_to_ocf("activating");
        assert_eq!(rc, OcfExit::ErrGeneric);
        assert_eq!(why.as_deref(), Some("unit is still activating"));
        assert_eq!(active_state_to_ocf("weird").0, OcfExit::ErrGeneric);
    }

    #[test]
    fn show_output() {
        let p =
            parse_show("LoadState=loaded\nActiveState=failed\nSubState=failed\nResult=exit-code\n");
        assert_eq!(
            summary(&p),
            "LoadState=loaded ActiveState=failed SubState=failed Result=exit-code"
        );
        assert_eq!(summary(&parse_show("garbage\n")), "");
        assert!(!booted(Path::new("/nonexistent/systemd/system")));
    }
}
