//! Fuzz target: arbitrary bytes through the one-pass protobuf decoders and
//! through prost's message tree + conversion, as traces and as logs. Both
//! must accept and refuse the same bodies and, where they accept, give
//! identical items and reports (compared as Debug text, so NaN equals NaN).
//! The lenient one-pass mode must give the strict result wherever the
//! strict one accepts, and accept more only by rejecting items.

#![no_main]

use ashiato_otlp::{
    decode_logs_direct, decode_logs_lenient, decode_logs_tree, decode_traces_direct,
    decode_traces_lenient, decode_traces_tree,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let direct = decode_traces_direct(body);
    let tree = decode_traces_tree(body);
    assert_eq!(
        direct.is_some(),
        tree.is_ok(),
        "traces: accepted differently"
    );
    match (&direct, decode_traces_lenient(body)) {
        (Some(strict), Some(lenient)) => {
            assert_eq!(
                format!("{strict:?}"),
                format!("{lenient:?}"),
                "traces: lenient differs"
            )
        }
        (Some(_), None) => panic!("traces: lenient refused what strict accepts"),
        (None, Some(lenient)) => assert!(lenient.rejected > 0, "traces: lenient rejected nothing"),
        (None, None) => {}
    }
    if let (Some(direct), Ok(tree)) = (direct, tree) {
        assert_eq!(format!("{direct:?}"), format!("{tree:?}"), "traces differ");
    }
    let direct = decode_logs_direct(body);
    let tree = decode_logs_tree(body);
    assert_eq!(direct.is_some(), tree.is_ok(), "logs: accepted differently");
    match (&direct, decode_logs_lenient(body)) {
        (Some(strict), Some(lenient)) => {
            assert_eq!(
                format!("{strict:?}"),
                format!("{lenient:?}"),
                "logs: lenient differs"
            )
        }
        (Some(_), None) => panic!("logs: lenient refused what strict accepts"),
        (None, Some(lenient)) => assert!(lenient.rejected > 0, "logs: lenient rejected nothing"),
        (None, None) => {}
    }
    if let (Some(direct), Ok(tree)) = (direct, tree) {
        assert_eq!(format!("{direct:?}"), format!("{tree:?}"), "logs differ");
    }
});
