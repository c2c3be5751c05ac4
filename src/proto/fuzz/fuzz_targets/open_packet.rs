//! Feeds arbitrary bytes to the heartbeat decoder.
//!
//! Checks that `peek_header` and `open` never panic, that `open` never
//! accepts anything the fuzzer makes up without the key (an accepted input
//! would have to carry a valid HMAC-SHA256 tag), and that when it does
//! accept (the corpus may hold real packets) the packet re-encodes to
//! exactly the input bytes.
#![no_main]

use hapair::proto::{ClusterId, Key, KeyId, Keyring, open, peek_header, seal};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let id = KeyId::new(1).unwrap();
    let keys = Keyring::new(id, &[(id, Key::new(vec![0x5a; 32]).unwrap())]).unwrap();
    let cluster = ClusterId(0x0102_0304);
    let _ = peek_header(data);
    if let Ok(o) = open(data, cluster, &keys) {
        assert_eq!(
            &seal(cluster, &o.packet, &keys)[..],
            data,
            "accepted bytes are not canonical"
        );
    }
});
