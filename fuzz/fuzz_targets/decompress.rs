//! Fuzz target: bounded decompression. The first byte picks the encoding;
//! the rest is the body. Output must never exceed the limit, and whatever
//! inflates is fed to the decoders as well.

#![no_main]

use ashiato_otlp::{Compression, Format, decode_logs, decode_traces, decompress};
use libfuzzer_sys::fuzz_target;

const LIMIT: usize = 1024 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((selector, body)) = data.split_first() else {
        return;
    };
    let compression = match selector % 4 {
        0 => Compression::Identity,
        1 => Compression::Gzip,
        2 => Compression::Deflate,
        _ => Compression::Zstd,
    };
    if let Ok(inflated) = decompress(compression, body, LIMIT) {
        assert!(inflated.len() <= LIMIT, "decompress returned more than the limit");
        let format = if selector & 4 == 0 { Format::Protobuf } else { Format::Json };
        let _ = decode_traces(&inflated, format);
        let _ = decode_logs(&inflated, format);
    }
});
