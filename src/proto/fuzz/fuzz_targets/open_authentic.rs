//! Gets the body decoder past the tag: the fuzzer's bytes become a packet
//! body behind a valid header, and the target signs it with the key, so
//! every input reaches the code that runs only on authentic packets.
//!
//! Checks that such a packet is either refused as `Malformed` or decodes to
//! a packet that re-encodes to exactly the same bytes (the format is
//! canonical: one packet, one encoding).
#![no_main]

use hapair::proto::{
    BODY_LEN, ClusterId, DecodeError, HEADER_LEN, Key, KeyId, Keyring, PACKET_LEN, TAG_LEN, open,
    seal,
};
use hmac::{Hmac, KeyInit, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;

fuzz_target!(|data: &[u8]| {
    let id = KeyId::new(1).unwrap();
    let key = [0x5a; 32];
    let keys = Keyring::new(id, &[(id, Key::new(key.to_vec()).unwrap())]).unwrap();
    let cluster = ClusterId(0x0102_0304);
    let mut b = [0u8; PACKET_LEN];
    b[0..4].copy_from_slice(b"HAHB");
    b[4] = 1;
    b[5] = 1;
    b[6..8].copy_from_slice(&u16::try_from(PACKET_LEN).unwrap().to_be_bytes());
    b[8..12].copy_from_slice(&cluster.0.to_be_bytes());
    let n = data.len().min(4 + BODY_LEN);
    // the first 4 bytes are the sender id, the rest the body
    b[12..12 + n].copy_from_slice(&data[..n]);
    let tag = Hmac::<Sha256>::new_from_slice(&key)
        .unwrap()
        .chain_update(&b[..PACKET_LEN - TAG_LEN])
        .finalize()
        .into_bytes();
    b[PACKET_LEN - TAG_LEN..].copy_from_slice(&tag);
    let _ = HEADER_LEN;
    match open(&b, cluster, &keys) {
        Ok(o) => assert_eq!(seal(cluster, &o.packet, &keys), b, "not canonical"),
        Err(DecodeError::Malformed(_)) => {}
        Err(e) => panic!("an authentic packet refused as {e:?}"),
    }
});
