//! Robustness: truncated and bit-flipped versions of every captured trace
//! payload go through every decoder (all versions, both formats, and the
//! logs decoder). Results may be errors; nothing may panic. Deterministic,
//! so a failure reproduces exactly.

#![allow(clippy::unwrap_used)] // test helpers may unwrap, like the tests themselves

use std::panic::{AssertUnwindSafe, catch_unwind};

use ashiato_datadog::{
    BodyFormat, LogDefaults, LogsFormat, TraceIdHighCache, TraceVersion, TracerInfo, decode_logs,
    decode_traces,
};

fn run_all_decoders(body: &[u8], cache: &mut TraceIdHighCache) -> bool {
    catch_unwind(AssertUnwindSafe(|| {
        for version in [TraceVersion::V03, TraceVersion::V04, TraceVersion::V05] {
            for format in [BodyFormat::Msgpack, BodyFormat::Json] {
                let _ = decode_traces(body, version, format, &TracerInfo::default(), cache);
            }
        }
        for format in [LogsFormat::Json, LogsFormat::Text] {
            let _ = decode_logs(body, format, &LogDefaults::default(), 1, None);
        }
    }))
    .is_ok()
}

#[test]
fn test_mutated_captures_never_panic() {
    let mut cache = TraceIdHighCache::with_capacity(64);
    for name in [
        "v04_python.msgpack",
        "v04_python_native.msgpack",
        "v05_python.msgpack",
    ] {
        let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
        let body = std::fs::read(path).unwrap();
        for cut in 0..body.len() {
            assert!(
                run_all_decoders(&body[..cut], &mut cache),
                "{name} cut at {cut}"
            );
        }
        for index in 0..body.len() {
            for bit in [0x01u8, 0x10, 0x80] {
                let mut mutated = body.clone();
                mutated[index] ^= bit;
                assert!(
                    run_all_decoders(&mutated, &mut cache),
                    "{name} byte {index} ^ {bit:#x}"
                );
            }
        }
    }
}
