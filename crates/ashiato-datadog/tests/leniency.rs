//! Hand-built payloads for each leniency case real tracers need (nil
//! anywhere, str or bin, any int width, signed ids, int/float metrics,
//! missing and unknown keys, nil spans), for what makes a body undecodable,
//! and for the trace-id and link/event mapping.

#![allow(clippy::unwrap_used)] // test helpers may unwrap, like the tests themselves

use ashiato_datadog::{
    BodyFormat, TraceBatch, TraceDecodeError, TraceIdHighCache, TraceVersion, TracerInfo,
    decode_traces,
};
use ashiato_model::{AttrValue, SpanKind, StatusCode, attr_get};

/// A msgpack value to encode, with the exact wire form chosen by the test.
enum M {
    Nil,
    U8(u8),
    U16(u16),
    U32(u32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    S(&'static str),
    Bin(&'static [u8]),
    A(Vec<M>),
    Map(Vec<(M, M)>),
}

fn encode(value: &M, out: &mut Vec<u8>) {
    use rmp::encode as e;
    match value {
        M::Nil => e::write_nil(out).unwrap(),
        M::U8(v) => e::write_u8(out, *v).unwrap(),
        M::U16(v) => e::write_u16(out, *v).unwrap(),
        M::U32(v) => e::write_u32(out, *v).unwrap(),
        M::U64(v) => e::write_u64(out, *v).unwrap(),
        M::I64(v) => e::write_i64(out, *v).unwrap(),
        M::F32(v) => e::write_f32(out, *v).unwrap(),
        M::F64(v) => e::write_f64(out, *v).unwrap(),
        M::S(v) => e::write_str(out, v).unwrap(),
        M::Bin(v) => e::write_bin(out, v).unwrap(),
        M::A(items) => {
            e::write_array_len(out, items.len() as u32).unwrap();
            items.iter().for_each(|item| encode(item, out));
        }
        M::Map(entries) => {
            e::write_map_len(out, entries.len() as u32).unwrap();
            for (key, value) in entries {
                encode(key, out);
                encode(value, out);
            }
        }
    }
}

fn bytes(value: &M) -> Vec<u8> {
    let mut out = Vec::new();
    encode(value, &mut out);
    out
}

fn span(fields: Vec<(&'static str, M)>) -> M {
    M::Map(fields.into_iter().map(|(k, v)| (M::S(k), v)).collect())
}

fn basic(span_id: u64, extra: Vec<(&'static str, M)>) -> M {
    let mut fields = vec![
        ("service", M::S("svc")),
        ("name", M::S("op")),
        ("resource", M::S("GET /x")),
        ("trace_id", M::U64(77)),
        ("span_id", M::U64(span_id)),
        ("start", M::I64(1_700_000_000_000_000_000)),
        ("duration", M::U32(1000)),
    ];
    fields.extend(extra);
    span(fields)
}

fn decode(body: &[u8], version: TraceVersion) -> Result<TraceBatch, TraceDecodeError> {
    decode_traces(
        body,
        version,
        BodyFormat::Msgpack,
        &TracerInfo::default(),
        &mut TraceIdHighCache::default(),
    )
}

fn v04(traces: Vec<Vec<M>>) -> TraceBatch {
    let body = bytes(&M::A(traces.into_iter().map(M::A).collect()));
    decode(&body, TraceVersion::V04).unwrap()
}

#[test]
fn test_nil_anywhere_becomes_zero_values() {
    let batch = v04(vec![vec![basic(
        1,
        vec![
            ("parent_id", M::Nil),
            ("error", M::Nil),
            ("meta", M::Nil),
            ("metrics", M::Nil),
            ("type", M::Nil),
            ("meta_struct", M::Nil),
        ],
    )]]);
    assert_eq!(batch.spans.len(), 1);
    let span = &batch.spans[0];
    assert!(span.is_root());
    assert_eq!(span.status.code, StatusCode::Unset);
    assert_eq!(span.name, "GET /x");
    let nil_service = v04(vec![vec![basic(2, vec![("service", M::Nil)])]]);
    assert_eq!(nil_service.spans[0].service_name(), "unknown_service");
}

#[test]
fn test_bin_strings_and_invalid_utf8_are_repaired() {
    let batch = v04(vec![vec![span(vec![
        ("service", M::Bin(b"bin-svc")),
        ("resource", M::Bin(b"caf\xff")),
        ("trace_id", M::U8(5)),
        ("span_id", M::U8(6)),
        ("start", M::U64(10)),
        ("meta", M::Map(vec![(M::Bin(b"k"), M::Bin(b"v"))])),
    ])]]);
    let span = &batch.spans[0];
    assert_eq!(span.service_name(), "bin-svc");
    assert_eq!(span.name, "caf\u{fffd}");
    assert_eq!(
        attr_get(&span.attributes, "k"),
        Some(&AttrValue::Str("v".into()))
    );
}

#[test]
fn test_any_int_width_and_signed_ids() {
    let batch = v04(vec![vec![span(vec![
        ("trace_id", M::I64(-1)),
        ("span_id", M::U16(300)),
        ("parent_id", M::U32(70_000)),
        ("start", M::U64(1_700_000_000_000_000_000)),
        ("duration", M::U8(9)),
        ("error", M::U8(1)),
    ])]]);
    let span = &batch.spans[0];
    assert_eq!(span.trace_id.low_u64(), u64::MAX);
    assert_eq!(span.span_id.as_u64(), 300);
    assert_eq!(span.parent_span_id.map(|id| id.as_u64()), Some(70_000));
    assert_eq!(span.duration_ns(), 9);
    assert!(span.is_error());
}

#[test]
fn test_int_and_float_metrics_are_typed() {
    let batch = v04(vec![vec![basic(
        1,
        vec![(
            "metrics",
            M::Map(vec![
                (M::S("int"), M::U8(3)),
                (M::S("neg"), M::I64(-4)),
                (M::S("f32"), M::F32(0.5)),
                (M::S("integral"), M::F64(42.0)),
                (M::S("fraction"), M::F64(0.25)),
                (M::S("not-a-number"), M::S("x")),
            ]),
        )],
    )]]);
    let attrs = &batch.spans[0].attributes;
    assert_eq!(attr_get(attrs, "int"), Some(&AttrValue::Int(3)));
    assert_eq!(attr_get(attrs, "neg"), Some(&AttrValue::Int(-4)));
    assert_eq!(attr_get(attrs, "f32"), Some(&AttrValue::Float(0.5)));
    assert_eq!(attr_get(attrs, "integral"), Some(&AttrValue::Int(42)));
    assert_eq!(attr_get(attrs, "fraction"), Some(&AttrValue::Float(0.25)));
    assert_eq!(attr_get(attrs, "not-a-number"), None);
}

#[test]
fn test_missing_and_unknown_keys() {
    let batch = v04(vec![vec![basic(
        1,
        vec![
            (
                "future_field",
                M::Map(vec![(M::S("x"), M::A(vec![M::Nil]))]),
            ),
            (
                "meta_struct",
                M::Map(vec![(M::S("appsec"), M::Bin(b"\x80"))]),
            ),
        ],
    )]]);
    assert_eq!(batch.spans.len(), 1);
    assert_eq!(batch.rejected, 0);
}

#[test]
fn test_nil_spans_skipped_bad_spans_counted_rest_kept() {
    let batch = v04(vec![
        vec![
            M::Nil,
            basic(1, vec![]),
            M::S("not a span"),
            basic(0, vec![]),
        ],
        vec![],
        vec![basic(2, vec![("start", M::I64(-5))]), basic(3, vec![])],
    ]);
    let ids: Vec<u64> = batch.spans.iter().map(|s| s.span_id.as_u64()).collect();
    assert_eq!(ids, [1, 3]);
    // the string entry, span id 0 and the negative start
    assert_eq!(batch.rejected, 3);
    assert_eq!(batch.first_rejection, Some("a span entry is not a map"));
    assert_eq!(batch.chunks, 2);
}

#[test]
fn test_undecodable_bodies_are_errors() {
    let whole = bytes(&M::A(vec![M::A(vec![basic(1, vec![])])]));
    let cases: Vec<(&str, Vec<u8>, TraceVersion)> = vec![
        (
            "truncated",
            whole[..whole.len() - 3].to_vec(),
            TraceVersion::V04,
        ),
        ("not an array", bytes(&M::Map(vec![])), TraceVersion::V04),
        ("garbage", b"\xc1\xc1".to_vec(), TraceVersion::V04),
        ("v0.5 without envelope", whole.clone(), TraceVersion::V05),
        (
            "v0.5 one element",
            bytes(&M::A(vec![M::A(vec![])])),
            TraceVersion::V05,
        ),
    ];
    for (what, body, version) in cases {
        assert!(decode(&body, version).is_err(), "{what}");
    }
    assert!(decode(&bytes(&M::A(vec![])), TraceVersion::V04).is_ok());
    // an empty body is no traces, not an error
    let empty = decode(b"", TraceVersion::V05).unwrap();
    assert_eq!((empty.spans.len(), empty.rejected), (0, 0));
}

fn v05_span(service: u32, trace_id: u64, span_id: u64, meta: Vec<(M, M)>) -> M {
    M::A(vec![
        M::U32(service),
        M::U8(2),
        M::U8(3),
        M::U64(trace_id),
        M::U64(span_id),
        M::U8(0),
        M::U64(1_700_000_000_000_000_000),
        M::U32(5),
        M::U8(0),
        M::Map(meta),
        M::Map(vec![(M::U8(2), M::U8(7))]),
        M::U8(0),
    ])
}

#[test]
fn test_v05_string_table_and_bad_spans() {
    let strings = M::A(vec![M::S(""), M::S("svc"), M::S("op"), M::Nil, M::S("k")]);
    let traces = M::A(vec![M::A(vec![
        v05_span(1, 9, 1, vec![(M::U8(4), M::U8(1))]),
        // out-of-range string index
        v05_span(99, 9, 2, vec![]),
        // eleven elements
        M::A((0..11).map(|_| M::U8(0)).collect()),
        M::Nil,
    ])]);
    let body = bytes(&M::A(vec![strings, traces]));
    let batch = decode(&body, TraceVersion::V05).unwrap();
    assert_eq!(batch.spans.len(), 1);
    assert_eq!(batch.rejected, 2);
    let span = &batch.spans[0];
    assert_eq!(span.service_name(), "svc");
    // resource is the nil table entry: the name falls back to the operation
    assert_eq!(span.name, "op");
    assert_eq!(
        attr_get(&span.attributes, "k"),
        Some(&AttrValue::Str("svc".into()))
    );
    assert_eq!(attr_get(&span.attributes, "op"), Some(&AttrValue::Int(7)));
}

#[test]
fn test_v03_json_body() {
    let body = br#"[[{"service":"js","name":"web.request","resource":"GET /","trace_id":12,
        "span_id":13,"parent_id":null,"start":1700000000000000000,"duration":10,
        "error":1,"meta":{"error.msg":"bad","span.kind":"consumer"},"metrics":{"m":1.5},"type":"web"}]]"#;
    let batch = decode_traces(
        body,
        TraceVersion::V03,
        BodyFormat::Json,
        &TracerInfo::default(),
        &mut TraceIdHighCache::default(),
    )
    .unwrap();
    let span = &batch.spans[0];
    assert_eq!(span.status.message, "bad");
    assert_eq!(span.kind, SpanKind::Consumer);
    assert_eq!(
        attr_get(&span.attributes, "m"),
        Some(&AttrValue::Float(1.5))
    );
}

#[test]
fn test_128_bit_ids_for_every_span_and_across_partial_flushes() {
    let mut cache = TraceIdHighCache::default();
    let tid = || {
        (
            "meta",
            M::Map(vec![(M::S("_dd.p.tid"), M::S("6b012bad00000000"))]),
        )
    };
    let first = bytes(&M::A(vec![M::A(vec![
        basic(1, vec![tid()]),
        basic(2, vec![("parent_id", M::U8(1))]),
    ])]));
    let batch = decode_traces(
        &first,
        TraceVersion::V04,
        BodyFormat::Msgpack,
        &TracerInfo::default(),
        &mut cache,
    )
    .unwrap();
    let expected = "6b012bad00000000000000000000004d";
    assert!(batch.spans.iter().all(|s| s.trace_id.to_hex() == expected));
    // a later partial flush of the same trace whose chunk lacks _dd.p.tid
    let later = bytes(&M::A(vec![M::A(vec![basic(
        3,
        vec![("parent_id", M::U8(1))],
    )])]));
    let batch = decode_traces(
        &later,
        TraceVersion::V04,
        BodyFormat::Msgpack,
        &TracerInfo::default(),
        &mut cache,
    )
    .unwrap();
    assert_eq!(batch.spans[0].trace_id.to_hex(), expected);
    // without the cache it would be a 64-bit id
    let alone = decode(&later, TraceVersion::V04).unwrap();
    assert_eq!(
        alone.spans[0].trace_id.to_hex(),
        "0000000000000000000000000000004d"
    );
}

#[test]
fn test_links_and_events_from_native_fields_and_meta_json() {
    let batch = v04(vec![vec![basic(
        1,
        vec![
            (
                "meta",
                M::Map(vec![
                    (
                        M::S("_dd.span_links"),
                        M::S(
                            r#"[{"trace_id":12,"trace_id_high":1,"span_id":5,"flags":2147483649},
                                 {"trace_id":"0af7651916cd43dd8448eb211c80319c","span_id":"b7ad6b7169203331","attributes":{"k":"v"}},
                                 {"trace_id":"zz","span_id":"1"}]"#,
                        ),
                    ),
                    (
                        M::S("events"),
                        M::S(r#"[{"name":"e","time_unix_nano":5,"attributes":{"n":1,"t":true}}]"#),
                    ),
                    (M::S("span.kind"), M::S("producer")),
                ]),
            ),
            (
                "span_links",
                M::A(vec![span(vec![
                    ("trace_id", M::U64(3)),
                    ("span_id", M::U64(4)),
                    ("attributes", M::Map(vec![(M::S("a"), M::S("b"))])),
                    ("tracestate", M::S("dd=s:1")),
                ])]),
            ),
            (
                "span_events",
                M::A(vec![span(vec![
                    ("name", M::S("native")),
                    ("time_unix_nano", M::U64(9)),
                    (
                        "attributes",
                        M::Map(vec![
                            (
                                M::S("i"),
                                M::Map(vec![
                                    (M::S("type"), M::U8(2)),
                                    (M::S("int_value"), M::U8(7)),
                                ]),
                            ),
                            (
                                M::S("d"),
                                M::Map(vec![
                                    (M::S("type"), M::U8(3)),
                                    (M::S("double_value"), M::F64(0.5)),
                                ]),
                            ),
                            (
                                M::S("arr"),
                                M::Map(vec![
                                    (M::S("type"), M::U8(4)),
                                    (
                                        M::S("array_value"),
                                        M::Map(vec![(
                                            M::S("values"),
                                            M::A(vec![M::Map(vec![
                                                (M::S("type"), M::U8(0)),
                                                (M::S("string_value"), M::S("x")),
                                            ])]),
                                        )]),
                                    ),
                                ]),
                            ),
                        ]),
                    ),
                ])]),
            ),
        ],
    )]]);
    let span = &batch.spans[0];
    assert_eq!(span.kind, SpanKind::Producer);
    let links: Vec<String> = span
        .links
        .iter()
        .map(|l| format!("{}/{}/{}/{}", l.trace_id, l.span_id, l.flags, l.trace_state))
        .collect();
    assert_eq!(
        links,
        [
            "00000000000000000000000000000003/0000000000000004/0/dd=s:1",
            "0000000000000001000000000000000c/0000000000000005/1/",
            "0af7651916cd43dd8448eb211c80319c/b7ad6b7169203331/0/",
        ]
    );
    let native = &span.events[0];
    assert_eq!(native.name, "native");
    assert_eq!(attr_get(&native.attributes, "i"), Some(&AttrValue::Int(7)));
    assert_eq!(
        attr_get(&native.attributes, "d"),
        Some(&AttrValue::Float(0.5))
    );
    assert_eq!(
        attr_get(&native.attributes, "arr"),
        Some(&AttrValue::Array(vec![AttrValue::Str("x".into())]))
    );
    let from_meta = &span.events[1];
    assert_eq!(
        (from_meta.name.as_str(), from_meta.time_unix_nano),
        ("e", 5)
    );
    assert_eq!(
        attr_get(&from_meta.attributes, "t"),
        Some(&AttrValue::Bool(true))
    );
    // folded meta is not repeated as attributes
    assert_eq!(attr_get(&span.attributes, "_dd.span_links"), None);
    assert_eq!(attr_get(&span.attributes, "span.kind"), None);
}

#[test]
fn test_kind_inferred_from_type_and_error_message_fallbacks() {
    let batch = v04(vec![vec![
        basic(1, vec![("type", M::S("web"))]),
        basic(
            2,
            vec![
                ("type", M::S("sql")),
                ("error", M::U8(1)),
                ("meta", M::Map(vec![(M::S("error.type"), M::S("E"))])),
            ],
        ),
        basic(3, vec![("type", M::S("custom"))]),
    ]]);
    let kinds: Vec<SpanKind> = batch.spans.iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        [SpanKind::Server, SpanKind::Client, SpanKind::Unspecified]
    );
    assert_eq!(batch.spans[1].status.message, "E");
}
