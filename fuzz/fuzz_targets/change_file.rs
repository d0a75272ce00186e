//! Change-file parsing and verification, as the runner and the bridge read a PR's file.
//!
//! Any text: `from_yaml` never panics, and `verify` against the bridge's key never accepts it
//! (the fuzzer cannot forge an Ed25519 signature; the seeds are signed with another key). A request that parses is then signed, written
//! and read back as the bridge does: that must round-trip exactly and verify, or the bridge
//! could write a change the runner refuses.
#![no_main]

use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;
use slipway_core::change::{ChangeRequest, sign, verify};

fuzz_target!(|text: &str| {
    let key = SigningKey::from_bytes(&[0x22; 32]);
    let keys = [("test".to_string(), key.verifying_key())];
    let Ok(cr) = ChangeRequest::from_yaml(text) else {
        return;
    };
    let now = cr.created_at;
    assert!(
        verify(&cr, &keys, now).is_err(),
        "a fuzzed change file verified"
    );
    let signed = sign(cr, &key, "test");
    let written = signed.to_yaml();
    let read = ChangeRequest::from_yaml(&written).expect("the bridge's own file reads back");
    assert_eq!(read, signed, "round trip changed the request:\n{written}");
    if signed.schema_version == slipway_core::change::SCHEMA_VERSION {
        verify(&read, &keys, signed.expires_at.min(now)).expect("the bridge's own file verifies");
    }
});
