//! Fuzz target: arbitrary bytes as a Datadog trace payload, the first byte
//! choosing the endpoint version and body format. Decoding may fail; it
//! must not panic.

#![no_main]

use ashiato_datadog::{BodyFormat, TraceIdHighCache, TraceVersion, TracerInfo, decode_traces};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((selector, body)) = data.split_first() else {
        return;
    };
    let version = match selector % 3 {
        0 => TraceVersion::V03,
        1 => TraceVersion::V04,
        _ => TraceVersion::V05,
    };
    let format = if selector & 0x80 == 0 {
        BodyFormat::Msgpack
    } else {
        BodyFormat::Json
    };
    let mut cache = TraceIdHighCache::with_capacity(16);
    let _ = decode_traces(body, version, format, &TracerInfo::default(), &mut cache);
});
