"""An agent-ish trace through the OpenTelemetry Python SDK and its OTLP/HTTP (protobuf) exporter.

The exporter reads OTEL_EXPORTER_OTLP_TRACES_ENDPOINT and OTEL_EXPORTER_OTLP_HEADERS itself.
Usage: python sdk_tree.py gzip|none. Prints one JSON line with the trace and span ids (hex);
exits non-zero unless every export succeeded.
"""

import json
import sys

from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult

results = []


class RecordingExporter(OTLPSpanExporter):
    def export(self, spans):
        result = super().export(spans)
        results.append(result)
        return result


compression = Compression.Gzip if sys.argv[1:] == ["gzip"] else Compression.NoCompression
provider = TracerProvider(resource=Resource.create({"service.name": "python-sdk-test"}))
provider.add_span_processor(BatchSpanProcessor(RecordingExporter(compression=compression)))
tracer = provider.get_tracer("tracestore-tests")

with tracer.start_as_current_span(
    "support-agent",
    attributes={
        "openinference.span.kind": "AGENT",
        "input.value": "where is my order?",
        "user.id": "user-42",
    },
) as root:
    with tracer.start_as_current_span(
        "chat gpt-4o-mini",
        attributes={
            "openinference.span.kind": "LLM",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.input_tokens": 42,
            "gen_ai.usage.output_tokens": 8,
        },
    ) as llm:
        pass
    with tracer.start_as_current_span(
        "lookup-order", attributes={"openinference.span.kind": "TOOL"}
    ) as tool:
        pass
    root.set_attribute("output.value", "it ships tomorrow")

flushed = provider.force_flush(30_000)
provider.shutdown()
print(
    json.dumps(
        {
            "traceId": format(root.get_span_context().trace_id, "032x"),
            "root": format(root.get_span_context().span_id, "016x"),
            "llm": format(llm.get_span_context().span_id, "016x"),
            "tool": format(tool.get_span_context().span_id, "016x"),
        }
    )
)
if not flushed or not results or any(r != SpanExportResult.SUCCESS for r in results):
    print(f"export failed: flushed={flushed} results={results}", file=sys.stderr)
    sys.exit(1)
