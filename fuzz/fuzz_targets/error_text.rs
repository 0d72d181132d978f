//! Fuzz target: error text from clients (stacks and messages). Stack
//! parsing, message normalization and fingerprinting must never panic,
//! whatever the bytes.

#![no_main]

use ashiato_errors::fingerprint::{Fingerprint, FingerprintInput};
use ashiato_errors::normalize::normalize_message;
use ashiato_errors::stack::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let frames = parse(&text);
    let normalized = normalize_message(&text);
    let fingerprint = Fingerprint::compute(&FingerprintInput {
        service: "fuzz",
        environment: "",
        error_type: "Fuzz",
        message: &text,
        operation: "op",
        frames: &frames,
        custom: None,
    });
    assert_eq!(fingerprint.hash.len(), 32);
    assert!(normalized.len() <= text.len() * 7 + 16);
});
