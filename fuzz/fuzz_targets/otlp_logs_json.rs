//! Fuzz target: arbitrary bytes as an OTLP/HTTP logs body in json.
//! Decoding may fail; it must not panic, and the partial-success response
//! built from the result must be encodable.

#![no_main]

use ashiato_otlp::{Format, Signal, decode_logs, encode_export_response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Ok(decoded) = decode_logs(body, Format::Json) {
        let _ = encode_export_response(
            Signal::Logs,
            Format::Json,
            decoded.rejected,
            decoded.error_message.as_deref(),
        );
    }
});
