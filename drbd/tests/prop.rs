//! Property tests: random lines never panic; format/parse round-trips.

use drbd::{Cluster, parse_line};
use proptest::prelude::*;

const KEYS: &[&str] = &[
    "name",
    "volume",
    "minor",
    "peer-node-id",
    "conn-name",
    "role",
    "suspended",
    "force-io-failures",
    "may_promote",
    "promotion_score",
    "backing_dev",
    "disk",
    "client",
    "open",
    "quorum",
    "connection",
    "replication",
    "peer-disk",
    "peer-client",
    "resync-suspended",
    "done",
    "out-of-sync",
    "local",
    "peer",
    "established",
    "helper",
    "status",
    "new_name",
    "size",
    "tls",
    "eta",
];
const VALUES: &[&str] = &[
    "0",
    "1",
    "7",
    "-3",
    "42.5",
    "yes",
    "no",
    "unknown",
    "Primary",
    "Secondary",
    "UpToDate",
    "Outdated",
    "Connected",
    "SyncSource",
    "r0",
    "ipv4:1.2.3.4:7789",
    "",
    "a->b",
    "NaN",
];
const VERBS: &[&str] = &[
    "exists", "create", "change", "destroy", "call", "response", "rename",
];
const OBJECTS: &[&str] = &[
    "resource",
    "device",
    "connection",
    "peer-device",
    "path",
    "helper",
    "-",
];

fn kv() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            prop::sample::select(KEYS).prop_map(str::to_owned),
            "[a-z_-]{1,8}"
        ],
        prop_oneof![
            prop::sample::select(VALUES).prop_map(str::to_owned),
            "[!-~]{0,12}"
        ],
    )
        .prop_map(|(k, v)| format!("{k}:{v}"))
}

proptest! {
    #[test]
    fn random_lines_never_panic(
        verb in prop::sample::select(VERBS),
        obj in prop::sample::select(OBJECTS),
        kvs in prop::collection::vec(kv(), 0..12),
        noise in "[ -~]{0,40}",
    ) {
        let line = format!("{verb} {obj} {}", kvs.join(" "));
        let mut m = Cluster::new();
        for l in [line.as_str(), noise.as_str()] {
            if let Ok(ev) = parse_line(l) {
                let _ = m.apply(&ev);
                // re-parsing the printed form never fails
                prop_assert!(parse_line(&ev.to_string()).is_ok(), "{}", ev);
            }
        }
    }

    #[test]
    fn format_parse_round_trip(
        verb in prop::sample::select(VERBS),
        obj in prop::sample::select(OBJECTS),
        keys in prop::sample::subsequence(KEYS, 0..KEYS.len()),
        vals in prop::collection::vec(prop::sample::select(&VALUES[..VALUES.len() - 2]), KEYS.len()),
    ) {
        let kvs: Vec<String> =
            keys.iter().zip(&vals).map(|(k, v)| format!("{k}:{v}")).collect();
        let line = format!("{verb} {obj} {}", kvs.join(" "));
        if let Ok(ev) = parse_line(&line) {
            prop_assert_eq!(parse_line(&ev.to_string()).unwrap(), ev);
        }
    }
}
