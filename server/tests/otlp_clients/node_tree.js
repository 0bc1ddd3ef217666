// A root span with a child through @opentelemetry/sdk-trace-base and the OTLP/HTTP (JSON)
// trace exporter, which reads OTEL_EXPORTER_OTLP_TRACES_ENDPOINT and OTEL_EXPORTER_OTLP_HEADERS.
// Run with NODE_PATH set to the node_modules that .ci/otlp-clients.sh installs. Prints one JSON
// line with the trace and span ids (hex); exits non-zero unless every export succeeded.
'use strict';

const api = require('@opentelemetry/api');
const { BasicTracerProvider, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http');
const { resourceFromAttributes } = require('@opentelemetry/resources');

async function main() {
  const exporter = new OTLPTraceExporter();
  const results = [];
  const exportSpans = exporter.export.bind(exporter);
  exporter.export = (spans, done) =>
    exportSpans(spans, (result) => {
      results.push(result);
      done(result);
    });
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'node-test' }),
    spanProcessors: [new SimpleSpanProcessor(exporter)],
  });
  const tracer = provider.getTracer('tracestore-tests');
  const root = tracer.startSpan('node-agent', {
    attributes: { 'openinference.span.kind': 'AGENT', 'input.value': 'hello from node' },
  });
  const inRoot = api.trace.setSpan(api.context.active(), root);
  const child = tracer.startSpan(
    'node-tool',
    { attributes: { 'openinference.span.kind': 'TOOL' } },
    inRoot,
  );
  child.end();
  root.end();
  await provider.forceFlush();
  await provider.shutdown();
  console.log(
    JSON.stringify({
      traceId: root.spanContext().traceId,
      root: root.spanContext().spanId,
      child: child.spanContext().spanId,
    }),
  );
  const failed = results.filter((r) => r.code !== 0);
  if (results.length < 2 || failed.length > 0) {
    console.error('export failed:', JSON.stringify(results, (k, v) => (v instanceof Error ? String(v) : v)));
    process.exit(1);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
