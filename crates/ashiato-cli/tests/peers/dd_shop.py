"""Test peer: the real Datadog tracer (ddtrace) sends one trace to ashiato's
Datadog listener, then prints `{"trace_id": <32 hex>, "root_span_id": <16 hex>}`.

The trace: a `web` server root (resource `GET /users/:id`, tags and int and
float metrics), a `sql` child, a child that raises ValueError (error span
with error.type/error.message/error.stack), and a child with a span link
and a span event.

Environment (set by the test):
  DD_TRACE_AGENT_URL      http://127.0.0.1:PORT
  DD_TRACE_API_VERSION    v0.4 | v0.5
  PEER_TRACEPARENT        optional W3C traceparent to continue (the root
                          then becomes a child of that remote span)
"""
import json
import os
import time

from ddtrace.propagation.http import HTTPPropagator
from ddtrace.trace import tracer

LINKED_TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
LINKED_SPAN_ID = 0xB7AD6B7169203331

traceparent = os.environ.get("PEER_TRACEPARENT")
if traceparent:
    tracer.context_provider.activate(HTTPPropagator.extract({"traceparent": traceparent}))

with tracer.trace("web.request", service="dd-users", resource="GET /users/:id", span_type="web") as root:
    root.set_tag("span.kind", "server")
    root.set_tag("http.method", "GET")
    root.set_tag("http.route", "/users/:id")
    root.set_metric("users.count", 42)
    root.set_metric("cache.ratio", 0.25)
    with tracer.trace("postgres.query", service="dd-users-db", resource="SELECT * FROM users WHERE id = ?", span_type="sql") as query:
        query.set_tag("db.system", "postgresql")
        query.set_tag("span.kind", "client")
    try:
        with tracer.trace("users.validate", resource="validate"):
            raise ValueError("user 42 is not valid")
    except ValueError:
        pass
    with tracer.trace("users.linked", resource="linked") as linked:
        linked.set_link(trace_id=LINKED_TRACE_ID, span_id=LINKED_SPAN_ID, attributes={"k": "v"})
        linked._add_event("cache-miss", {"key": "user:42", "attempt": 1})

tracer.flush()
tracer.shutdown(timeout=10)
print(json.dumps({"trace_id": f"{root.trace_id:032x}", "root_span_id": f"{root.span_id:016x}"}))
