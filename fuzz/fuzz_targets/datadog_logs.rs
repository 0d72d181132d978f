//! Fuzz target: arbitrary bytes as a Datadog logs intake body (JSON or
//! text by the first byte). Decoding may fail; it must not panic.

#![no_main]

use ashiato_datadog::{LogDefaults, LogsFormat, decode_logs};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((selector, body)) = data.split_first() else {
        return;
    };
    let format = if selector & 1 == 0 {
        LogsFormat::Json
    } else {
        LogsFormat::Text
    };
    let _ = decode_logs(body, format, &LogDefaults::default(), 1, None);
});
