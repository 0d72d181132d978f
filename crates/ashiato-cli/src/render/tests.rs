//! Snapshot tests pinning the terminal layout of traces, trace lists and logs.

use serde_json::{Value, json};

use super::*;

const MS: u64 = 1_000_000;
const T0: u64 = 1_795_238_896_000_000_000;

fn span(id: &str, parent: &str, service: &str, name: &str, start_ms: u64, dur_ms: u64) -> Value {
    json!({
        "span_id": id,
        "parent_span_id": parent,
        "service": service,
        "name": name,
        "kind": "internal",
        "start_time_unix_nano": (T0 + start_ms * MS).to_string(),
        "duration_ns": (dur_ms * MS).to_string(),
        "status": {"code": "unset", "message": ""},
        "attributes": {},
        "resource": {"service.name": service},
        "scope": {"name": "demo", "version": "1.0"},
        "events": [],
        "links": []
    })
}

fn trace(spans: Vec<Value>) -> Value {
    json!({"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "spans": spans})
}

/// The order flow from the issue, sent in a scrambled order to show that
/// children are sorted by start time.
fn order_trace() -> Value {
    let mut root = span("a000000000000001", "", "checkout", "注文作成", 0, 262);
    root["kind"] = json!("server");
    let mut users = span(
        "a000000000000002",
        "a000000000000001",
        "users",
        "ユーザー検証",
        1,
        10,
    );
    users["attributes"] = json!({"user_id": 123});
    let mut inventory = span(
        "a000000000000003",
        "a000000000000001",
        "inventory",
        "在庫確認",
        12,
        50,
    );
    inventory["attributes"] = json!({"product_id": 456});
    inventory["events"] = json!([{
        "name": "在庫レベルが低い",
        "time_unix_nano": (T0 + 40 * MS).to_string(),
        "attributes": {"stock": 3}
    }]);
    let mut payment = span(
        "a000000000000004",
        "a000000000000001",
        "payments",
        "支払い処理",
        62,
        200,
    );
    payment["attributes"] = json!({"amount": 99.99});
    payment["status"] = json!({"code": "error", "message": "残高不足"});
    payment["events"] = json!([{
        "name": "exception",
        "time_unix_nano": (T0 + 261 * MS).to_string(),
        "attributes": {
            "exception.type": "InsufficientFundsError",
            "exception.message": "残高不足",
            "exception.stacktrace": "Traceback (most recent call last):\n  File \"pay.py\", line 3"
        }
    }]);
    trace(vec![payment, users, root, inventory])
}

#[test]
fn test_issue_example_order_flow() {
    let text = render_trace(&order_trace(), TraceRenderOptions::default()).unwrap();
    insta::assert_snapshot!(text);
}

#[test]
fn test_all_attributes_shows_every_attribute_and_exception_event() {
    let options = TraceRenderOptions {
        all_attributes: true,
    };
    let text = render_trace(&order_trace(), options).unwrap();
    insta::assert_snapshot!(text);
}

#[test]
fn test_nested_tree_with_orphan_and_interleaved_events() {
    let mut root = span("b000000000000001", "", "frontend", "GET /checkout", 0, 500);
    root["attributes"] = json!({
        "http.request.method": "GET",
        "http.route": "/checkout",
        "http.response.status_code": 200,
        "internal.noise": "hidden without --attrs"
    });
    root["events"] = json!([
        {"name": "request.received", "time_unix_nano": T0.to_string(), "attributes": {}},
        {"name": "cache.miss", "time_unix_nano": (T0 + 150 * MS).to_string(), "attributes": {}}
    ]);
    let mut db = span(
        "b000000000000002",
        "b000000000000001",
        "frontend",
        "SELECT orders",
        10,
        100,
    );
    db["attributes"] = json!({"db.system": "postgresql"});
    let grandchild = span(
        "b000000000000003",
        "b000000000000002",
        "frontend",
        "connect",
        11,
        2,
    );
    let rpc = span(
        "b000000000000004",
        "b000000000000001",
        "cart",
        "GetCart",
        200,
        250,
    );
    let orphan = span(
        "b000000000000009",
        "ffffffffffffffff",
        "worker",
        "late batch",
        300,
        1500,
    );
    let text = render_trace(
        &trace(vec![orphan, rpc, grandchild, db, root]),
        TraceRenderOptions::default(),
    )
    .unwrap();
    insta::assert_snapshot!(text);
}

#[test]
fn test_error_without_message_uses_exception() {
    let mut failing = span("c000000000000001", "", "py", "fails", 0, 1);
    failing["status"] = json!({"code": "error"});
    failing["events"] = json!([{
        "name": "exception",
        "time_unix_nano": T0.to_string(),
        "attributes": {"exception.type": "ValueError", "exception.message": "boom happened"}
    }]);
    let text = render_trace(&trace(vec![failing]), TraceRenderOptions::default()).unwrap();
    assert_eq!(text, "fails  py  1ms  ERROR boom happened\n");
}

#[test]
fn test_exception_event_on_ok_span_is_shown_with_summary() {
    let mut handled = span("c000000000000002", "", "py", "retry", 0, 3);
    handled["events"] = json!([{
        "name": "exception",
        "time_unix_nano": T0.to_string(),
        "attributes": {"exception.type": "TimeoutError", "exception.message": "slow"}
    }]);
    let text = render_trace(&trace(vec![handled]), TraceRenderOptions::default()).unwrap();
    assert_eq!(
        text,
        "retry  py  3ms\n└── event: exception  TimeoutError: slow\n"
    );
}

#[test]
fn test_hostile_text_is_escaped_and_values_quoted() {
    let mut weird = span("d000000000000001", "", "svc\u{1b}[31m", "line\nbreak", 0, 1);
    weird["attributes"] = json!({"user_id": "a b", "amount": "", "product_id": ["x", 2, true]});
    let text = render_trace(&trace(vec![weird]), TraceRenderOptions::default()).unwrap();
    assert!(!text.contains('\u{1b}'));
    assert_eq!(
        text,
        "line\\nbreak  svc\\u{1b}[31m  1ms  user_id=\"a b\"  product_id=[x,2,true]  amount=\"\"\n"
    );
}

#[test]
fn test_parent_cycle_and_duplicates_render_each_span_once() {
    let a = span("e000000000000001", "e000000000000002", "s", "a", 0, 1);
    let b = span("e000000000000002", "e000000000000001", "s", "b", 1, 1);
    let dup1 = span("e000000000000003", "", "s", "dup", 2, 1);
    let dup2 = span("e000000000000003", "", "s", "dup", 3, 1);
    let child = span("e000000000000004", "e000000000000003", "s", "child", 4, 1);
    let text = render_trace(
        &trace(vec![a, b, dup1, dup2, child]),
        TraceRenderOptions::default(),
    )
    .unwrap();
    insta::assert_snapshot!(text);
}

#[test]
fn test_lenient_documents() {
    let document = json!({"spans": [{
        "span_id": "f000000000000001",
        "parent_span_id": null,
        "name": "numeric times",
        "start_time_unix_nano": T0,
        "duration_ns": 1_500_000_000u64,
        "status": null,
        "attributes": null,
        "events": null
    }]});
    let text = render_trace(&document, TraceRenderOptions::default()).unwrap();
    assert_eq!(text, "numeric times  -  1.50s\n");
    assert_eq!(
        render_trace(&json!({"spans": []}), TraceRenderOptions::default()).unwrap(),
        ""
    );
    assert!(render_trace(&json!({"spans": "nope"}), TraceRenderOptions::default()).is_err());
}

#[test]
fn test_deep_trace_does_not_overflow() {
    let spans: Vec<Value> = (1..=5000u64)
        .map(|i| {
            let parent = if i == 1 {
                String::new()
            } else {
                format!("{:016x}", i - 1)
            };
            span(&format!("{i:016x}"), &parent, "s", "n", i, 1)
        })
        .collect();
    let text = render_trace(&trace(spans), TraceRenderOptions::default()).unwrap();
    assert_eq!(text.lines().count(), 5000);
}

#[test]
fn test_trace_list_table() {
    let document = json!({"traces": [
        {
            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
            "root_service": "checkout",
            "root_name": "注文作成",
            "start_time_unix_nano": (T0 + 5_000 * MS).to_string(),
            "duration_ns": (262 * MS).to_string(),
            "span_count": 4,
            "error_count": 1,
            "services": ["checkout", "users", "inventory", "payments"]
        },
        {
            "trace_id": "0af7651916cd43dd8448eb211c80319c",
            "root_service": "",
            "root_name": "",
            "start_time_unix_nano": T0.to_string(),
            "duration_ns": "1500000000",
            "span_count": 12,
            "error_count": 0,
            "services": ["batch"]
        }
    ]});
    insta::assert_snapshot!(render_trace_list(&document).unwrap());
}

#[test]
fn test_log_lines() {
    let document = json!({"logs": [
        {
            "time_unix_nano": (T0 + 261 * MS).to_string(),
            "severity_text": "ERROR",
            "severity_number": 17,
            "body": "支払いに失敗しました: 残高不足",
            "service": "payments",
            "attributes": {"exception.type": "InsufficientFundsError"},
            "resource": {},
            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
            "span_id": "a000000000000004"
        },
        {
            "time_unix_nano": T0.to_string(),
            "severity_text": "",
            "severity_number": 9,
            "body": {"structured": true},
            "service": "batch",
            "attributes": {},
            "resource": {},
            "trace_id": "",
            "span_id": ""
        },
        {
            "time_unix_nano": T0.to_string(),
            "severity_text": "warn",
            "severity_number": 13,
            "body": "multi\nline",
            "service": "batch",
            "trace_id": null
        }
    ]});
    insta::assert_snapshot!(render_log_list(&document).unwrap());
}
