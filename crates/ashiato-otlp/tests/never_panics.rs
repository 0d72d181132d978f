//! Robustness: truncated and bit-flipped versions of every captured payload
//! go through every decoder. Results may be errors; nothing may panic.
//! Deterministic (no randomness), so a failure reproduces exactly.

#![allow(clippy::unwrap_used)] // test helpers may unwrap, like the tests themselves

mod common;

use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};

use ashiato_otlp::{
    Compression, Format, count_metric_points, decode_logs, decode_traces, decompress,
};

/// Runs every decoder on `body`; returns a description of the first panic.
fn run_all_decoders(body: &[u8]) -> Option<String> {
    for format in [Format::Protobuf, Format::Json] {
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let _ = decode_traces(body, format);
            let _ = decode_logs(body, format);
            let _ = count_metric_points(body, format);
        }));
        if outcome.is_err() {
            return Some(format!("decoders panicked with {format:?}"));
        }
    }
    for compression in [
        Compression::Identity,
        Compression::Gzip,
        Compression::Deflate,
        Compression::Zstd,
    ] {
        if catch_unwind(|| decompress(compression, body, 64 * 1024)).is_err() {
            return Some(format!("decompress panicked with {compression:?}"));
        }
    }
    None
}

/// Every prefix, then every byte with one bit flipped, then every byte
/// replaced by characters that matter to the JSON and protobuf grammars.
fn mutations(body: &[u8]) -> impl Iterator<Item = (String, Vec<u8>)> + '_ {
    let truncations = (0..body.len())
        .map(move |length| (format!("truncated to {length}"), body[..length].to_vec()));
    let bit_flips = (0..body.len()).map(move |index| {
        let mut mutated = body.to_vec();
        mutated[index] ^= 1 << (index % 8);
        (format!("bit flipped at {index}"), mutated)
    });
    let replacements = (0..body.len()).flat_map(move |index| {
        [b'"', b'}', 0xff].into_iter().map(move |byte| {
            let mut mutated = body.to_vec();
            mutated[index] = byte;
            (format!("byte {index} set to {byte:#04x}"), mutated)
        })
    });
    truncations.chain(bit_flips).chain(replacements)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn test_mutated_fixtures_never_panic() {
    let mut checked = 0usize;
    for (path, body) in common::all_fixtures() {
        for (mutation, mutated) in mutations(&body) {
            if let Some(panic) = run_all_decoders(&mutated) {
                panic!("{path}, {mutation}: {panic}");
            }
            checked += 1;
        }
    }
    assert!(checked > 10_000, "only {checked} mutations ran");
}

#[test]
fn test_mutated_compressed_fixtures_never_panic() {
    for (path, body) in common::all_fixtures() {
        let compressed = gzip(&body);
        for (mutation, mutated) in mutations(&compressed) {
            for compression in [Compression::Gzip, Compression::Deflate] {
                let outcome = catch_unwind(|| decompress(compression, &mutated, 1024 * 1024));
                assert!(
                    outcome.is_ok(),
                    "{path} gzipped, {mutation}: decompress panicked with {compression:?}"
                );
                if let Ok(Ok(inflated)) = outcome {
                    assert!(
                        run_all_decoders(&inflated).is_none(),
                        "{path} gzipped, {mutation}"
                    );
                }
            }
        }
    }
}
