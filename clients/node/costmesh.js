'use strict';
// A small Node.js client of the costmesh gateway. It loads the .proto files of the repository
// directly (no generated code) and calls costmesh.gateway.v1.GatewayService with the tenant's
// API key as `authorization: Bearer <key>` metadata.

const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const DEFAULT_PROTOS = process.env.COSTMESH_PROTOS || path.resolve(__dirname, '..', '..', 'protos');

function loadGatewayService(protosDir = DEFAULT_PROTOS) {
  const definition = protoLoader.loadSync('costmesh/gateway/v1/gateway.proto', {
    includeDirs: [protosDir],
    keepCase: true,
    longs: Number,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(definition).costmesh.gateway.v1.GatewayService;
}

// A CompleteRequest from a prompt and options (system, maxTokens, model, bypassCache).
function buildRequest(prompt, options = {}) {
  const messages = [];
  if (options.system) messages.push({ role: 'ROLE_SYSTEM', content: [{ text: options.system }] });
  messages.push({ role: 'ROLE_USER', content: [{ text: prompt }] });
  return {
    messages,
    sampling: { max_tokens: options.maxTokens || 512 },
    cache: { bypass: Boolean(options.bypassCache) },
    routing: { model: options.model || '' },
  };
}

// The bill of a CompleteResponse, in plain fields.
function summary(response, text) {
  return {
    request_id: response.request_id,
    text: text === undefined ? response.text : text,
    model: response.model,
    provider: response.provider,
    tier: response.tier,
    cached: response.cached,
    cache_status: response.cache_status,
    cost_usd: response.cost ? response.cost.total_usd : 0,
    baseline_cost_usd: response.baseline_cost_usd,
    saving_usd: response.saving_usd,
    // The same amounts as whole micro-dollars (int64; exact sums): for adding up bills.
    cost_micro_usd: response.cost ? response.cost.total_micro_usd : 0,
    baseline_cost_micro_usd: response.baseline_cost_micro_usd,
    saving_micro_usd: response.saving_micro_usd,
  };
}

// TLS (a gateway with COSTMESH_TLS_CERT_FILE): `caFile`, the PEM file of the CA that signed its
// certificate (e.g. `costmesh tls-cert`'s ca.pem), or `tls: true` for a publicly trusted one, or
// your own `credentials`. Without any: plaintext (a gateway on loopback).
function channelCredentials({ credentials, caFile, tls }) {
  if (credentials) return credentials;
  if (caFile) return grpc.credentials.createSsl(require('fs').readFileSync(caFile));
  if (tls) return grpc.credentials.createSsl();
  return grpc.credentials.createInsecure();
}

class CostmeshClient {
  constructor(target, apiKey, { timeoutMs = 60000, credentials, caFile, tls = false, protosDir } = {}) {
    credentials = channelCredentials({ credentials, caFile, tls });
    const GatewayService = loadGatewayService(protosDir);
    this.stub = new GatewayService(target, credentials);
    this.apiKey = apiKey;
    this.timeoutMs = timeoutMs;
  }

  metadata() {
    const metadata = new grpc.Metadata();
    metadata.set('authorization', `Bearer ${this.apiKey}`);
    return metadata;
  }

  options() {
    return { deadline: Date.now() + this.timeoutMs };
  }

  // Resolves with the CompleteResponse; rejects with the gRPC error (err.code, err.details).
  complete(request) {
    return new Promise((resolve, reject) => {
      this.stub.Complete(request, this.metadata(), this.options(), (err, response) => {
        if (err) reject(err);
        else resolve(response);
      });
    });
  }

  // Calls onDelta(text) for each piece of the answer; resolves with the final CompleteResponse
  // (its `text` filled in from the deltas).
  stream(request, onDelta = () => {}) {
    return new Promise((resolve, reject) => {
      const call = this.stub.StreamComplete({ request }, this.metadata(), this.options());
      const chunks = [];
      let final = null;
      call.on('data', (event) => {
        if (event.event === 'text_delta') {
          chunks.push(event.text_delta);
          onDelta(event.text_delta);
        } else if (event.event === 'final') {
          final = event.final;
        }
      });
      call.on('error', reject);
      call.on('end', () => {
        if (final === null) reject(new Error('stream ended without a final message'));
        else resolve({ ...final, text: chunks.join('') });
      });
    });
  }

  close() {
    this.stub.close();
  }
}

module.exports = { CostmeshClient, buildRequest, loadGatewayService, summary, grpc };
