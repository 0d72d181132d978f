//! Differential tests: the one-pass protobuf decoder against prost's message
//! tree + `convert`, on every captured payload, on generated requests with
//! merges, duplicates, unknown fields, shuffled field order, bad ids and
//! deep values, and on byte-level mutations of all of those. Both must
//! accept and refuse the same bodies and give identical items and reports.
//! Deterministic (a fixed-seed generator), so a failure reproduces exactly.

#![allow(clippy::unwrap_used)] // test helpers may unwrap, like the tests themselves

mod common;

use std::fmt::Debug;

use ashiato_otlp::{
    DecodeError, Decoded, decode_logs_direct, decode_logs_lenient, decode_logs_tree,
    decode_traces_direct, decode_traces_lenient, decode_traces_tree,
};
use prost::encoding::{WireType, encode_key, encode_varint};

/// Both decoders agree on `body`; returns whether it was accepted.
fn assert_agree<T: Debug>(
    body: &[u8],
    direct: fn(&[u8]) -> Option<Decoded<T>>,
    tree: fn(&[u8]) -> Result<Decoded<T>, DecodeError>,
    what: &str,
) -> bool {
    match (direct(body), tree(body)) {
        (Some(ours), Ok(theirs)) => {
            // The memtable keeps the vector as it is: same capacity.
            assert_eq!(
                ours.items.capacity(),
                theirs.items.capacity(),
                "{what}: capacity"
            );
            // Debug text, not PartialEq: NaN doubles must compare equal.
            assert_eq!(
                format!("{ours:?}"),
                format!("{theirs:?}"),
                "{what}: {body:?}"
            );
            true
        }
        (None, Err(_)) => false,
        (ours, theirs) => panic!(
            "{what}: direct accepted {}, tree accepted {}: {body:?}",
            ours.is_some(),
            theirs.is_ok()
        ),
    }
}

fn assert_both_signals_agree(body: &[u8], what: &str) -> (bool, bool) {
    assert_lenient_agrees(body, decode_traces_direct, decode_traces_lenient, what);
    assert_lenient_agrees(body, decode_logs_direct, decode_logs_lenient, what);
    (
        assert_agree(body, decode_traces_direct, decode_traces_tree, what),
        assert_agree(body, decode_logs_direct, decode_logs_tree, what),
    )
}

/// The lenient pass gives exactly the strict result where the strict one
/// accepts; where it refuses, the lenient pass either refuses too or
/// accepted only by rejecting items for their text.
fn assert_lenient_agrees<T: Debug>(
    body: &[u8],
    direct: fn(&[u8]) -> Option<Decoded<T>>,
    lenient: fn(&[u8]) -> Option<Decoded<T>>,
    what: &str,
) {
    match (direct(body), lenient(body)) {
        (Some(strict), Some(lenient)) => assert_eq!(
            format!("{strict:?}"),
            format!("{lenient:?}"),
            "{what}: lenient differs: {body:?}"
        ),
        (Some(_), None) => panic!("{what}: lenient refused what strict accepts: {body:?}"),
        (None, Some(lenient)) => {
            // it differs from the strict pass only by rejecting items for
            // their text, so at least one item was (the reasons list may
            // be summarised: "and 2 more")
            assert!(lenient.rejected > 0, "{what}: {body:?}");
            let message = lenient.error_message.unwrap_or_default();
            assert!(
                message.contains("not valid unicode") || message.contains(" more"),
                "{what}: {message}"
            );
        }
        (None, None) => {}
    }
}

#[test]
fn test_captured_payloads_decode_identically() {
    let mut accepted = 0;
    for (name, body) in common::all_fixtures() {
        if name.starts_with("otel_json") {
            continue;
        }
        let (traces, logs) = assert_both_signals_agree(&body, &name);
        accepted += usize::from(traces) + usize::from(logs);
    }
    assert!(accepted >= 4, "fixtures were not decoded: {accepted}");
}

#[test]
fn test_captured_payloads_mutated_decode_identically() {
    for (name, body) in common::all_fixtures() {
        if name.starts_with("otel_json") {
            continue;
        }
        let mut rng = Rng(body.len() as u64);
        for round in 0..300 {
            let mutated = mutate(&mut rng, &body);
            assert_both_signals_agree(&mutated, &format!("{name} mutation {round}"));
        }
    }
}

#[test]
fn test_generated_trace_requests_decode_identically() {
    generated_requests_decode_identically(
        42,
        trace_request,
        decode_traces_direct,
        decode_traces_tree,
    );
}

#[test]
fn test_generated_logs_requests_decode_identically() {
    generated_requests_decode_identically(7, logs_request, decode_logs_direct, decode_logs_tree);
}

/// 3 000 generated requests of one signal, each with three mutations: both
/// decoders agree on every one.
fn generated_requests_decode_identically<T: Debug>(
    seed: u64,
    request: fn(&mut Rng) -> Vec<u8>,
    direct: fn(&[u8]) -> Option<Decoded<T>>,
    tree: fn(&[u8]) -> Result<Decoded<T>, DecodeError>,
) {
    let mut rng = Rng(seed);
    let mut accepted = 0;
    for round in 0..3_000 {
        let body = request(&mut rng);
        if assert_agree(&body, direct, tree, &format!("round {round}")) {
            accepted += 1;
        }
        for mutation in 0..3 {
            let mutated = mutate(&mut rng, &body);
            assert_both_signals_agree(&mutated, &format!("round {round} mutation {mutation}"));
        }
    }
    // The generator must mostly produce valid requests to test the values.
    assert!(
        accepted > 2_500,
        "only {accepted} generated requests were valid"
    );
}

/// Deep values: prost's recursion limit (100 nested messages) refuses a
/// span attribute nested more than 47 arrays deep (request, resource
/// group, scope group, span, key-value, then two messages per array level),
/// so over protobuf the `MAX_VALUE_DEPTH` (64) truncation is never reached;
/// both decoders must draw the line at the same place, with a kept or a
/// rejected span, and with a replaced oneof variant.
#[test]
fn test_deep_values_hit_the_recursion_limit_identically() {
    let mut rng = Rng(3);
    for levels in [1, 30, 46, 47, 48, 49, 63, 64, 65, 120] {
        let value = nested_arrays(levels);
        for bad_id in [false, true] {
            let mut kv = field_bytes(1, b"deep");
            kv.extend(field_bytes(2, &value));
            if bad_id {
                // a second variant replaces the array
                kv.extend(field_bytes(2, &field_bytes(1, b"replaced")));
            }
            let mut span = span_ids(&mut rng, bad_id);
            span.extend(field_bytes(9, &kv));
            let request = wrap_spans(&[span]);
            let accepted = assert_agree(
                &request,
                decode_traces_direct,
                decode_traces_tree,
                &format!("{levels} levels, bad id {bad_id}"),
            );
            assert_eq!(accepted, levels <= 47, "{levels} levels");
        }
    }
}

// ---------------------------------------------------------------------------
// Generator: raw protobuf built field by field, so that fields can repeat,
// come in any order and include unknown ones.

/// splitmix64: small, deterministic, good enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Fields of one message, shuffled before encoding.
struct Fields(Vec<Vec<u8>>);

impl Fields {
    fn new() -> Fields {
        Fields(Vec::new())
    }

    fn push(&mut self, field: Vec<u8>) {
        self.0.push(field);
    }

    /// Encodes the fields in a random order (prost accepts any order),
    /// sometimes with an unknown field in between.
    fn encode(mut self, rng: &mut Rng) -> Vec<u8> {
        if rng.chance(10) {
            self.push(unknown_field(rng));
        }
        if rng.chance(30) {
            for index in (1..self.0.len()).rev() {
                let other = rng.below(index as u64 + 1) as usize;
                self.0.swap(index, other);
            }
        }
        self.0.concat()
    }
}

fn field_bytes(tag: u32, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_key(tag, WireType::LengthDelimited, &mut out);
    encode_varint(bytes.len() as u64, &mut out);
    out.extend_from_slice(bytes);
    out
}

fn field_varint(tag: u32, value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    encode_key(tag, WireType::Varint, &mut out);
    encode_varint(value, &mut out);
    out
}

fn field_fixed64(tag: u32, value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    encode_key(tag, WireType::SixtyFourBit, &mut out);
    out.extend_from_slice(&value.to_le_bytes());
    out
}

fn field_fixed32(tag: u32, value: u32) -> Vec<u8> {
    let mut out = Vec::new();
    encode_key(tag, WireType::ThirtyTwoBit, &mut out);
    out.extend_from_slice(&value.to_le_bytes());
    out
}

fn unknown_field(rng: &mut Rng) -> Vec<u8> {
    let tag = 20 + rng.below(100) as u32;
    match rng.below(5) {
        0 => field_varint(tag, rng.next()),
        1 => field_fixed64(tag, rng.next()),
        2 => field_fixed32(tag, rng.next() as u32),
        3 => field_bytes(tag, b"unknown"),
        _ => {
            let mut out = Vec::new();
            encode_key(tag, WireType::StartGroup, &mut out);
            out.extend(field_varint(1, 5));
            encode_key(tag, WireType::EndGroup, &mut out);
            out
        }
    }
}

const TEXTS: &[&str] = &[
    "",
    "GET /api/orders",
    "frontend",
    "service.name",
    "http.route",
    "ünïcødé ✓ 日本",
    "a name that is rather long, longer than sixty-four characters for sure, to be quoted short",
];

fn text(rng: &mut Rng) -> &'static [u8] {
    rng.pick(TEXTS).as_bytes()
}

/// Random-length ids: mostly valid, sometimes empty, zero or the wrong length.
fn id(rng: &mut Rng, length: usize) -> Vec<u8> {
    match rng.below(20) {
        0 => Vec::new(),
        1 => vec![0; length],
        2 => vec![7; length - 1],
        3 => vec![9; length + 1],
        _ => (0..length).map(|_| rng.next() as u8 | 1).collect(),
    }
}

fn any_value(rng: &mut Rng, depth: usize) -> Vec<u8> {
    let mut fields = Fields::new();
    let variants = if rng.chance(10) { 2 } else { 1 };
    for _ in 0..variants {
        let nest = depth < 4;
        let field = match rng.below(if nest { 9 } else { 7 }) {
            0 => field_varint(2, rng.below(2)),
            1 => field_varint(3, rng.next()),
            2 => field_fixed64(4, rng.next()),
            3 => field_bytes(7, &id(rng, 4)),
            4 => field_varint(8, rng.below(3)),
            5 | 6 => field_bytes(1, text(rng)),
            7 => {
                let elements: Vec<u8> = (0..rng.below(4))
                    .flat_map(|_| field_bytes(1, &any_value(rng, depth + 1)))
                    .collect();
                field_bytes(5, &elements)
            }
            _ => {
                let entries: Vec<u8> = (0..rng.below(4))
                    .flat_map(|_| field_bytes(1, &key_value(rng, depth + 1)))
                    .collect();
                field_bytes(6, &entries)
            }
        };
        fields.push(field);
    }
    fields.encode(rng)
}

fn key_value(rng: &mut Rng, depth: usize) -> Vec<u8> {
    let mut fields = Fields::new();
    fields.push(field_bytes(1, text(rng)));
    let values = if rng.chance(10) { 2 } else { 1 };
    for _ in 0..values {
        if rng.chance(95) {
            fields.push(field_bytes(2, &any_value(rng, depth)));
        }
    }
    if rng.chance(5) {
        fields.push(field_varint(3, rng.below(10)));
    }
    fields.encode(rng)
}

fn attributes(rng: &mut Rng, tag: u32, fields: &mut Fields) {
    for _ in 0..rng.below(5) {
        fields.push(field_bytes(tag, &key_value(rng, 0)));
    }
}

fn resource(rng: &mut Rng) -> Vec<u8> {
    let mut fields = Fields::new();
    if rng.chance(70) {
        let mut service = field_bytes(1, b"service.name");
        service.extend(field_bytes(2, &field_bytes(1, text(rng))));
        fields.push(field_bytes(1, &service));
    }
    attributes(rng, 1, &mut fields);
    if rng.chance(10) {
        fields.push(field_varint(2, rng.below(5)));
    }
    if rng.chance(10) {
        let mut entity = field_bytes(2, b"service");
        entity.extend(field_bytes(3, b"service.name"));
        entity.extend(field_bytes(3, b"service.instance.id"));
        entity.extend(field_bytes(4, b"host.name"));
        fields.push(field_bytes(3, &entity));
    }
    fields.encode(rng)
}

fn scope(rng: &mut Rng) -> Vec<u8> {
    let mut fields = Fields::new();
    fields.push(field_bytes(1, text(rng)));
    if rng.chance(50) {
        fields.push(field_bytes(2, b"1.0.0"));
    }
    attributes(rng, 3, &mut fields);
    if rng.chance(10) {
        fields.push(field_varint(4, 1));
    }
    fields.encode(rng)
}

/// A span's id fields: valid unless `bad`, where the span id is too short.
fn span_ids(rng: &mut Rng, bad: bool) -> Vec<u8> {
    let mut out = field_bytes(1, &[5; 16]);
    out.extend(field_bytes(2, if bad { &[1; 7] } else { &[2; 8] }));
    out.extend(field_varint(6, rng.below(6)));
    out
}

fn span(rng: &mut Rng) -> Vec<u8> {
    let mut fields = Fields::new();
    fields.push(field_bytes(1, &id(rng, 16)));
    fields.push(field_bytes(2, &id(rng, 8)));
    if rng.chance(60) {
        fields.push(field_bytes(4, &id(rng, 8)));
    }
    if rng.chance(20) {
        fields.push(field_bytes(3, b"rojo=00f067aa0ba902b7"));
    }
    fields.push(field_bytes(5, text(rng)));
    if rng.chance(5) {
        fields.push(field_bytes(5, text(rng)));
    }
    fields.push(field_varint(6, rng.below(8)));
    fields.push(field_fixed64(7, rng.next()));
    fields.push(field_fixed64(8, rng.next()));
    if rng.chance(50) {
        fields.push(field_fixed32(16, rng.next() as u32));
    }
    attributes(rng, 9, &mut fields);
    for tag in [10, 12, 14] {
        if rng.chance(5) {
            fields.push(field_varint(tag, rng.below(4)));
        }
    }
    for _ in 0..rng.below(3) {
        let mut event = Fields::new();
        event.push(field_fixed64(1, rng.next()));
        event.push(field_bytes(2, text(rng)));
        attributes(rng, 3, &mut event);
        fields.push(field_bytes(11, &event.encode(rng)));
    }
    for _ in 0..rng.below(3) {
        let mut link = Fields::new();
        link.push(field_bytes(1, &id(rng, 16)));
        link.push(field_bytes(2, &id(rng, 8)));
        attributes(rng, 4, &mut link);
        if rng.chance(50) {
            link.push(field_fixed32(6, 1));
        }
        fields.push(field_bytes(13, &link.encode(rng)));
    }
    for _ in 0..rng.below(3) {
        let mut status = Fields::new();
        if rng.chance(70) {
            status.push(field_varint(3, rng.below(4)));
        }
        if rng.chance(50) {
            status.push(field_bytes(2, text(rng)));
        }
        fields.push(field_bytes(15, &status.encode(rng)));
    }
    fields.encode(rng)
}

fn log_record(rng: &mut Rng) -> Vec<u8> {
    let mut fields = Fields::new();
    if rng.chance(80) {
        fields.push(field_fixed64(1, rng.next()));
    }
    if rng.chance(50) {
        fields.push(field_fixed64(11, rng.next()));
    }
    fields.push(field_varint(2, rng.below(30)));
    if rng.chance(50) {
        fields.push(field_bytes(3, b"WARN"));
    }
    for _ in 0..rng.below(3) {
        fields.push(field_bytes(5, &any_value(rng, 0)));
    }
    attributes(rng, 6, &mut fields);
    if rng.chance(10) {
        fields.push(field_varint(7, 2));
    }
    if rng.chance(50) {
        fields.push(field_fixed32(8, 1));
    }
    if rng.chance(60) {
        fields.push(field_bytes(9, &id(rng, 16)));
    }
    if rng.chance(60) {
        fields.push(field_bytes(10, &id(rng, 8)));
    }
    if rng.chance(20) {
        fields.push(field_bytes(12, b"checkout.done"));
    }
    fields.encode(rng)
}

/// A request: resource groups of scope groups of items, each level with
/// its resource/scope sometimes missing, repeated or after the items.
fn request(rng: &mut Rng, item: fn(&mut Rng) -> Vec<u8>) -> Vec<u8> {
    let mut groups = Fields::new();
    for _ in 0..rng.below(4) {
        let mut group = Fields::new();
        for _ in 0..rng.below(3) {
            group.push(field_bytes(1, &resource(rng)));
        }
        for _ in 0..rng.below(4) {
            let mut scope_group = Fields::new();
            for _ in 0..rng.below(3) {
                scope_group.push(field_bytes(1, &scope(rng)));
            }
            for _ in 0..rng.below(6) {
                scope_group.push(field_bytes(2, &item(rng)));
            }
            if rng.chance(20) {
                scope_group.push(field_bytes(3, b"https://opentelemetry.io/schemas/1.21.0"));
            }
            group.push(field_bytes(2, &scope_group.encode(rng)));
        }
        if rng.chance(20) {
            group.push(field_bytes(3, b"https://opentelemetry.io/schemas/1.21.0"));
        }
        groups.push(field_bytes(1, &group.encode(rng)));
    }
    groups.encode(rng)
}

fn trace_request(rng: &mut Rng) -> Vec<u8> {
    request(rng, span)
}

fn logs_request(rng: &mut Rng) -> Vec<u8> {
    request(rng, log_record)
}

fn wrap_spans(spans: &[Vec<u8>]) -> Vec<u8> {
    let scope_group: Vec<u8> = spans.iter().flat_map(|span| field_bytes(2, span)).collect();
    let group = field_bytes(2, &scope_group);
    field_bytes(1, &group)
}

/// An `AnyValue` that is an array holding an array … `levels` deep.
fn nested_arrays(levels: usize) -> Vec<u8> {
    let mut value = field_varint(3, 1);
    for _ in 0..levels {
        let array = field_bytes(1, &value);
        value = field_bytes(5, &array);
    }
    value
}

/// One random byte-level change: a flip, a cut, an insertion or a splice.
fn mutate(rng: &mut Rng, body: &[u8]) -> Vec<u8> {
    let mut out = body.to_vec();
    if out.is_empty() {
        return vec![rng.next() as u8];
    }
    let at = rng.below(out.len() as u64) as usize;
    match rng.below(5) {
        0 => out[at] ^= 1 << rng.below(8),
        1 => out.truncate(at),
        2 => out.insert(at, rng.next() as u8),
        3 => out[at] = *rng.pick(&[0x00, 0x08, 0x0a, 0x0b, 0x0c, 0x7f, 0x80, 0xff]),
        _ => {
            let from = rng.below(out.len() as u64) as usize;
            let piece: Vec<u8> = out[from..].iter().take(8).copied().collect();
            out.splice(at..at, piece);
        }
    }
    out
}
