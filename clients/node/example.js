#!/usr/bin/env node
'use strict';
// Example: ask the costmesh gateway one question and print the answer with its bill as JSON.
//
//   COSTMESH_API_KEY=cm_... node example.js --target 127.0.0.1:50051 [--stream] [--model ID] \
//       [--system TEXT] [--max-tokens N] [--bypass] [--ttl-seconds N] [--min-tier TIER] [--max-tier TIER] \
//       [--ca-file ca.pem] "What is a B-tree?"
//
// The options are named as the HTTP API's `costmesh` object names them (cache.bypass,
// cache.ttl_seconds, routing.min_tier...); tiers: trivial, simple, moderate, complex.
// --bypass-cache is the old name of --bypass.
// --ca-file: TLS, trusting that CA (a gateway serving TLS; `costmesh tls-cert`'s ca.pem).
//
// Exit code 0 on success; on a gRPC error, prints {"error": {"code", "name", "details"}} and exits 1.

const { parseArgs } = require('node:util');
const { CostmeshClient, buildRequest, summary, grpc } = require('./costmesh');

async function main() {
  const { values, positionals } = parseArgs({
    options: {
      target: { type: 'string', default: process.env.COSTMESH_GATEWAY || '127.0.0.1:50051' },
      'api-key': { type: 'string', default: process.env.COSTMESH_API_KEY || '' },
      stream: { type: 'boolean', default: false },
      model: { type: 'string', default: '' },
      system: { type: 'string', default: '' },
      'max-tokens': { type: 'string', default: '512' },
      bypass: { type: 'boolean', default: false },
      'bypass-cache': { type: 'boolean', default: false },
      'ttl-seconds': { type: 'string', default: '0' },
      'min-tier': { type: 'string', default: '' },
      'max-tier': { type: 'string', default: '' },
      'timeout-ms': { type: 'string', default: '60000' },
      'ca-file': { type: 'string', default: process.env.COSTMESH_CA_FILE || '' },
    },
    allowPositionals: true,
  });
  if (positionals.length !== 1) {
    console.error('usage: node example.js [--target HOST:PORT] [--stream] [--model ID] [--bypass] '
      + '[--min-tier trivial|simple|moderate|complex] "prompt"');
    return 2;
  }
  const client = new CostmeshClient(values.target, values['api-key'], {
    timeoutMs: Number(values['timeout-ms']), caFile: values['ca-file'] || undefined,
  });
  let request;
  try {
    request = buildRequest(positionals[0], {
      system: values.system,
      maxTokens: Number(values['max-tokens']),
      model: values.model,
      cache: { bypass: values.bypass || values['bypass-cache'], ttl_seconds: Number(values['ttl-seconds']) },
      routing: { min_tier: values['min-tier'], max_tier: values['max-tier'] },
    });
  } catch (err) {
    console.error(err.message);
    client.close();
    return 2;
  }
  try {
    if (values.stream) {
      let deltas = 0;
      const final = await client.stream(request, () => { deltas += 1; });
      console.log(JSON.stringify({ ...summary(final), deltas }));
    } else {
      console.log(JSON.stringify(summary(await client.complete(request))));
    }
    return 0;
  } catch (err) {
    const name = Object.keys(grpc.status).find((key) => grpc.status[key] === err.code) || 'UNKNOWN';
    console.log(JSON.stringify({ error: { code: err.code, name, details: err.details || String(err) } }));
    return 1;
  } finally {
    client.close();
  }
}

main().then((code) => { process.exitCode = code; });
