"""Test peer: the real OpenTelemetry Python SDK sends one trace and two log
records to an ashiato server, then prints the trace id (32 hex digits).

The trace: a SERVER root with attributes of every type, a CLIENT child with a
link and an event, and a failing span with a recorded exception. The logs: one
from log.exception inside the failing request (trace-correlated, exception.*
attributes) and one INFO record with extra attributes.

Environment:
  PEER_PROTOCOL                  grpc | http/protobuf | http/json
  OTEL_EXPORTER_OTLP_ENDPOINT    http://127.0.0.1:PORT (set by the test)
  OTEL_EXPORTER_OTLP_COMPRESSION gzip | deflate (optional, read by the SDK)

Exits non-zero when any export did not succeed, so a test fails at the
peer rather than later with "trace not found".
"""
import logging
import os
import sys
import time

from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags

protocol = os.environ.get("PEER_PROTOCOL", "grpc")
if protocol == "grpc":
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
elif protocol == "http/protobuf":
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
elif protocol == "http/json":
    from opentelemetry.exporter.otlp.json.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.json.http.trace_exporter import OTLPSpanExporter
else:
    sys.exit(f"unknown PEER_PROTOCOL {protocol!r}")

# The linked span lives in another trace; tests look for exactly these ids.
LINKED_TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
LINKED_SPAN_ID = 0xB7AD6B7169203331


class Recording:
    """Wraps an exporter and remembers every export result, because the SDK
    only logs failed exports and the process would still exit 0."""

    def __init__(self, inner):
        self.inner = inner
        self.failures = []

    def export(self, batch):
        result = self.inner.export(batch)
        if getattr(result, "name", "SUCCESS") != "SUCCESS":
            self.failures.append(result)
        return result

    def __getattr__(self, name):
        return getattr(self.inner, name)


resource = Resource.create(
    {
        "service.name": "peer-shop",
        "service.version": "2.0.1",
        "deployment.environment.name": "test",
    }
)
span_exporter = Recording(OTLPSpanExporter())
log_exporter = Recording(OTLPLogExporter())
tracer_provider = TracerProvider(resource=resource)
tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
logger_provider = LoggerProvider(resource=resource)
logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter))

log = logging.getLogger("peer.shop")
log.addHandler(LoggingHandler(level=logging.INFO, logger_provider=logger_provider))
log.setLevel(logging.INFO)
log.propagate = False

tracer = tracer_provider.get_tracer("peer.scope", "0.3.0")
linked = SpanContext(
    trace_id=LINKED_TRACE_ID,
    span_id=LINKED_SPAN_ID,
    is_remote=True,
    trace_flags=TraceFlags(TraceFlags.SAMPLED),
)

with tracer.start_as_current_span(
    "GET /orders/{id}",
    kind=SpanKind.SERVER,
    attributes={
        "http.request.method": "GET",
        "http.route": "/orders/{id}",
        "http.response.status_code": 200,
        "ratio": 0.25,
        "cache.hit": True,
        "tags": ["a", "b"],
        "retry.counts": [1, 2, 3],
    },
) as root:
    with tracer.start_as_current_span(
        "SELECT orders",
        kind=SpanKind.CLIENT,
        links=[Link(linked, {"link.kind": "follows"})],
        attributes={"db.system.name": "postgresql"},
    ) as child:
        child.add_event("cache.miss", {"cache.key": "order:42", "attempt": 2})
        # long enough that a min_duration search has something to measure
        time.sleep(0.03)
    try:
        with tracer.start_as_current_span("charge card"):
            raise ValueError("card declined")
    except ValueError:
        log.exception("payment failed")
    log.info("order shipped", extra={"order.id": 42, "warehouse": "tokyo"})
    trace_id = format(root.get_span_context().trace_id, "032x")

tracer_provider.force_flush()
logger_provider.force_flush()
tracer_provider.shutdown()
logger_provider.shutdown()

failures = span_exporter.failures + log_exporter.failures
if failures:
    sys.exit(f"export failed: {failures}")
print(trace_id)
