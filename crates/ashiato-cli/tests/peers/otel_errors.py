"""Test peer for error tracking: the real OpenTelemetry Python SDK sends
failing requests or a batch job's logs to an ashiato server over gRPC.

PEER_SCENARIO=requests (default): PEER_COUNT requests (default 3), each a
SERVER span -> router span -> handler span, all three recording the same
exception as it propagates (the double/triple instrumentation of real
apps); the handler also logs it with log.exception (same span). The
exception type is PEER_ERROR (ValueError or KeyError) and its message
carries the request number, so messages vary per request. PEER_VERSION
sets service.version (default 1.0.0). Prints one trace id per line.

PEER_SCENARIO=batch: a batch job without traces logs
- 4 structured errors with error.kind/error.message/error.stack
  (TimeoutError, varying item ids),
- 2 structured errors of another kind (IntegrityError),
- 3 plain ERROR records "failed to process item N: timeout after Ss",
- 5 INFO records (no issue).

PEER_SCENARIO=status: two 503 answers without exceptions (status ERROR on
the SERVER span and on an INTERNAL child) and one 500 caused by an
exception recorded two spans below the SERVER span. Prints trace ids.

Exits non-zero when an export did not succeed.
"""
import logging
import os
import sys

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind


class Recording:
    """Remembers failed exports (the SDK only logs them)."""

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


scenario = os.environ.get("PEER_SCENARIO", "requests")
service = "peer-batch" if scenario == "batch" else "peer-orders"
resource = Resource.create(
    {
        "service.name": service,
        "service.version": os.environ.get("PEER_VERSION", "1.0.0"),
        "deployment.environment.name": "test",
    }
)
span_exporter = Recording(OTLPSpanExporter())
log_exporter = Recording(OTLPLogExporter())
tracer_provider = TracerProvider(resource=resource)
tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
logger_provider = LoggerProvider(resource=resource)
logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter))

log = logging.getLogger("peer.errors")
log.addHandler(LoggingHandler(level=logging.INFO, logger_provider=logger_provider))
log.setLevel(logging.INFO)
log.propagate = False
tracer = tracer_provider.get_tracer("peer.errors")


def load_order(number, kind):
    if kind == "KeyError":
        raise KeyError(f"customer-{number}")
    raise ValueError(f"order {number} not found")


def handle(number, kind):
    try:
        load_order(number, kind)
    except Exception:
        log.exception("request failed", extra={"customer.id": f"c{number % 2}"})
        raise


def requests():
    count = int(os.environ.get("PEER_COUNT", "3"))
    kind = os.environ.get("PEER_ERROR", "ValueError")
    for number in range(count):
        try:
            with tracer.start_as_current_span(
                "GET /orders/{id}",
                kind=SpanKind.SERVER,
                attributes={"http.request.method": "GET", "http.route": "/orders/{id}"},
            ) as root:
                trace_id = format(root.get_span_context().trace_id, "032x")
                with tracer.start_as_current_span("router"):
                    with tracer.start_as_current_span("handler"):
                        handle(1000 + number, kind)
        except Exception:
            print(trace_id)


STACK = """Traceback (most recent call last):
  File "/srv/batch/jobs/export.py", line {line}, in run
    push(item)
  File "/srv/batch/jobs/client.py", line 88, in push
    raise TimeoutError(f"item {{item}} timed out")
TimeoutError: item {item} timed out
"""


def batch():
    for item in (8812, 17, 4242, 99):
        log.error(
            "export step failed",
            extra={
                "error.kind": "TimeoutError",
                "error.message": f"item {item} timed out",
                "error.stack": STACK.format(line=40 + item % 7, item=item),
                "job.name": "nightly-export",
                "job.step": "push",
            },
        )
    for item in (1, 2):
        log.error(
            "load step failed",
            extra={
                "error.kind": "IntegrityError",
                "error.message": f"duplicate key {item}",
                "job.name": "nightly-export",
                "job.step": "load",
            },
        )
    for item, seconds in ((8812, 30), (17, 5), (23, 30)):
        log.error(f"failed to process item {item}: timeout after {seconds}s")
    for item in range(5):
        log.info(f"processed item {item}")


def status_only():
    """Two requests answered 503 without any exception (status ERROR on the
    SERVER span and on an INTERNAL child), and one 500 whose cause is an
    exception two levels below (recorded only there)."""
    from opentelemetry.trace import Status, StatusCode

    for _ in range(2):
        with tracer.start_as_current_span(
            "GET /health",
            kind=SpanKind.SERVER,
            attributes={"http.request.method": "GET", "http.route": "/health",
                        "http.response.status_code": 503},
        ) as root:
            with tracer.start_as_current_span("check db") as check:
                check.set_status(Status(StatusCode.ERROR, "db unreachable"))
            root.set_status(Status(StatusCode.ERROR))
            print(format(root.get_span_context().trace_id, "032x"))
    with tracer.start_as_current_span(
        "POST /pay",
        kind=SpanKind.SERVER,
        attributes={"http.request.method": "POST", "http.route": "/pay",
                    "http.response.status_code": 500},
    ) as root:
        with tracer.start_as_current_span("service"):
            with tracer.start_as_current_span("charge", record_exception=True,
                                              set_status_on_exception=True) as charge:
                try:
                    raise RuntimeError("card processor down")
                except RuntimeError as error:
                    charge.record_exception(error)
                    charge.set_status(Status(StatusCode.ERROR, str(error)))
        root.set_status(Status(StatusCode.ERROR))
        print(format(root.get_span_context().trace_id, "032x"))


if scenario == "batch":
    batch()
elif scenario == "status":
    status_only()
else:
    requests()

tracer_provider.force_flush()
logger_provider.force_flush()
tracer_provider.shutdown()
logger_provider.shutdown()

failures = span_exporter.failures + log_exporter.failures
if failures:
    sys.exit(f"export failed: {failures}")
