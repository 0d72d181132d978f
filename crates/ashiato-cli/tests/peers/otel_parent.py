"""Test peer: the OpenTelemetry SDK side of a mixed trace. Sends one SERVER
span (service `otel-frontend`) over OTLP/gRPC and prints the W3C
traceparent a downstream call from inside it would carry, so a ddtrace peer
can continue the trace.

Environment: OTEL_EXPORTER_OTLP_ENDPOINT (set by the test).
"""
import sys

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.propagate import inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult


class Recording(OTLPSpanExporter):
    """Remembers export results: the SDK only logs failures."""

    failures = 0

    def export(self, spans):
        result = super().export(spans)
        if result != SpanExportResult.SUCCESS:
            Recording.failures += 1
        return result


provider = TracerProvider(resource=Resource.create({"service.name": "otel-frontend"}))
provider.add_span_processor(SimpleSpanProcessor(Recording(insecure=True)))
tracer = provider.get_tracer("otel-parent")

with tracer.start_as_current_span("GET /profile", kind=trace.SpanKind.SERVER):
    headers = {}
    inject(headers)
provider.shutdown()
if Recording.failures:
    sys.exit("otlp export failed")
print(headers["traceparent"])
