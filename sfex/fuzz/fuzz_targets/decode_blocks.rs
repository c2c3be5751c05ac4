//! Fuzzes the sfex on-disk decoders with arbitrary bytes.
//!
//! Each input is decoded three ways: as given (any length, including too
//! short), and as one 512-byte and one 4096-byte block (zero-padded or
//! truncated). Properties checked on every view:
//! - `decode_control` and `decode_lock` never panic;
//! - a decoded lock block re-encodes (at 512 and 4096 bytes) to a block that
//!   decodes to an equal value, and that encoding is a fixed point;
//! - a decoded control block with version 1 re-encodes (512 and 4096) and
//!   decodes to an equal value;
//! - decoding only depends on the fields, not on the padding: the first 512
//!   bytes of a block decode exactly as the whole block does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sfex::format::{VERSION, decode_control, decode_lock, encode_control, encode_lock};

fn check(buf: &[u8]) {
    let lock = decode_lock(buf);
    if let Ok(lb) = &lock {
        for bs in [512, 4096] {
            let enc = encode_lock(lb, bs);
            assert_eq!(enc.len(), bs);
            let again = decode_lock(&enc)
                .unwrap_or_else(|e| panic!("re-encoded lock block {lb:?} fails to decode: {e}"));
            assert_eq!(
                &again, lb,
                "lock block changed through encode/decode at {bs}"
            );
            assert_eq!(
                encode_lock(&again, bs),
                enc,
                "lock encoding is not a fixed point"
            );
        }
    }
    let control = decode_control(buf);
    if let Ok(cb) = &control {
        assert_eq!(
            cb.version, VERSION,
            "decode_control accepted version {}",
            cb.version
        );
        for bs in [512, 4096] {
            let enc = encode_control(cb, bs);
            assert_eq!(enc.len(), bs);
            assert_eq!(
                decode_control(&enc).as_ref(),
                Ok(cb),
                "control block changed through encode/decode at {bs}"
            );
        }
    }
    if buf.len() > 512 {
        assert_eq!(
            decode_lock(&buf[..512]),
            lock,
            "lock decode depends on padding"
        );
        assert_eq!(
            decode_control(&buf[..512]),
            control,
            "control decode depends on padding"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    for bs in [512usize, 4096] {
        let mut block = vec![0u8; bs];
        let n = data.len().min(bs);
        block[..n].copy_from_slice(&data[..n]);
        check(&block);
    }
});
