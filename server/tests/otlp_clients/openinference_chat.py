"""OpenInference's OpenAI instrumentation against a fake OpenAI-compatible server.

Starts a fake `POST /v1/chat/completions` on 127.0.0.1 (a free port), instruments `openai` with
OpenAIInstrumentor, opens an AGENT span and makes one chat completion inside it, then flushes
through the OTLP/HTTP (protobuf) exporter, which reads OTEL_EXPORTER_OTLP_TRACES_ENDPOINT and
OTEL_EXPORTER_OTLP_HEADERS. Prints one JSON line with the trace and agent span ids (hex); exits
non-zero unless every export succeeded.
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
from openinference.instrumentation.openai import OpenAIInstrumentor
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult

PROMPT = "What is the capital of France?"
ANSWER = "Paris is the capital of France."
MODEL = "gpt-4o-mini-2024-07-18"

COMPLETION = {
    "id": "chatcmpl-tracestore-1",
    "object": "chat.completion",
    "created": 1773482400,
    "model": MODEL,
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": ANSWER},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
}


class FakeOpenAI(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        if self.path.rstrip("/") != "/v1/chat/completions":
            self.send_error(404)
            return
        body = json.dumps(COMPLETION).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


fake = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
threading.Thread(target=fake.serve_forever, daemon=True).start()

results = []


class RecordingExporter(OTLPSpanExporter):
    def export(self, spans):
        result = super().export(spans)
        results.append(result)
        return result


provider = TracerProvider(resource=Resource.create({"service.name": "openinference-test"}))
provider.add_span_processor(SimpleSpanProcessor(RecordingExporter()))
OpenAIInstrumentor().instrument(tracer_provider=provider)
tracer = provider.get_tracer("tracestore-tests")

client = openai.OpenAI(
    base_url=f"http://127.0.0.1:{fake.server_address[1]}/v1", api_key="x", max_retries=0
)
with tracer.start_as_current_span(
    "capital-agent",
    attributes={"openinference.span.kind": "AGENT", "input.value": PROMPT},
) as agent:
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}]
    )
    agent.set_attribute("output.value", reply.choices[0].message.content)

flushed = provider.force_flush(30_000)
provider.shutdown()
fake.shutdown()
print(
    json.dumps(
        {
            "traceId": format(agent.get_span_context().trace_id, "032x"),
            "agent": format(agent.get_span_context().span_id, "016x"),
            "prompt": PROMPT,
            "answer": ANSWER,
            "model": MODEL,
        }
    )
)
if not flushed or len(results) < 2 or any(r != SpanExportResult.SUCCESS for r in results):
    print(f"export failed: flushed={flushed} results={results}", file=sys.stderr)
    sys.exit(1)
