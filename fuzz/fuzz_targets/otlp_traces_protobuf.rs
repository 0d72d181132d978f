//! Fuzz target: arbitrary bytes as an OTLP/HTTP traces body in protobuf.
//! Decoding may fail; it must not panic, and the partial-success response
//! built from the result must be encodable.

#![no_main]

use ashiato_otlp::{Format, Signal, decode_traces, encode_export_response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Ok(decoded) = decode_traces(body, Format::Protobuf) {
        let _ = encode_export_response(
            Signal::Traces,
            Format::Protobuf,
            decoded.rejected,
            decoded.error_message.as_deref(),
        );
    }
});
