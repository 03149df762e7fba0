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

// The one vocabulary of every costmesh surface (HTTP, the Python client, logs, metrics, the
// report): tiers and cache status by their lower-case names, options by the HTTP API's names.
const TIERS = ['trivial', 'simple', 'moderate', 'complex'];
const MICROS_PER_USD = 1e6;

// 'complex' (or 'TIER_COMPLEX', or 4) -> the protobuf enum name; '' or undefined -> unset.
function tierEnum(value, field) {
  if (value === undefined || value === null || value === '' || value === 0) return 'TIER_UNSPECIFIED';
  if (typeof value === 'number' && TIERS[value - 1]) return `TIER_${TIERS[value - 1].toUpperCase()}`;
  const name = typeof value === 'string' ? value.trim().toLowerCase().replace(/^tier_/, '') : '';
  if (!TIERS.includes(name)) throw new Error(`${field}: ${JSON.stringify(value)} is not a tier; use one of ${TIERS.join(', ')}`);
  return `TIER_${name.toUpperCase()}`;
}

// 'TIER_SIMPLE' -> 'simple'; unset -> null.
function tierName(value) {
  if (!value || value === 'TIER_UNSPECIFIED' || value === 0) return null;
  return typeof value === 'number' ? (TIERS[value - 1] || null) : String(value).replace(/^TIER_/, '').toLowerCase();
}

// 'CACHE_STATUS_EXACT_HIT' -> 'exact_hit'.
function cacheStatusName(value) {
  return String(value || 'CACHE_STATUS_UNSPECIFIED').replace(/^CACHE_STATUS_/, '').toLowerCase();
}

// Whole micro-dollars (the gateway's *_micro_usd integers) as dollars: 0.001665, never -0.
function usd(micro) {
  return (Number(micro) || 0) / MICROS_PER_USD + 0;
}

let warnedBypassCache = false;

// A CompleteRequest from a prompt and options, named as the HTTP API's `costmesh` object names them:
//   { system, maxTokens, model,
//     cache: { bypass, ttl_seconds, tags, session_scoped, semantic_tool_answers },
//     routing: { min_tier, max_tier },       // 'trivial' | 'simple' | 'moderate' | 'complex'
//     session_id, request_id }
// `bypassCache: true` (the old name of cache.bypass) still works, with a DeprecationWarning.
function buildRequest(prompt, options = {}) {
  const messages = [];
  if (options.system) messages.push({ role: 'ROLE_SYSTEM', content: [{ text: options.system }] });
  messages.push({ role: 'ROLE_USER', content: [{ text: prompt }] });
  const cache = { ...(options.cache || {}) };
  if (options.bypassCache !== undefined) {
    if (!warnedBypassCache) {
      process.emitWarning("buildRequest: 'bypassCache' is deprecated; use cache: { bypass: true }", 'DeprecationWarning');
      warnedBypassCache = true;
    }
    if (cache.bypass === undefined) cache.bypass = Boolean(options.bypassCache);
  }
  const routing = options.routing || {};
  return {
    messages,
    sampling: { max_tokens: options.maxTokens || 512 },
    cache: {
      bypass: Boolean(cache.bypass),
      ttl_seconds: Number(cache.ttl_seconds || 0),
      tags: cache.tags || [],
      session_scoped: Boolean(cache.session_scoped),
      semantic_tool_answers: Boolean(cache.semantic_tool_answers),
    },
    routing: {
      model: options.model || '',
      min_tier: tierEnum(routing.min_tier, 'routing.min_tier'),
      max_tier: tierEnum(routing.max_tier, 'routing.max_tier'),
    },
    session_id: options.session_id || '',
    request_id: options.request_id || '',
  };
}

// The bill of a CompleteResponse, in plain fields and the one vocabulary: tiers and the cache
// status by name ('simple', 'miss'), dollars in whole micro-dollars. A cache hit reports no usage.
function summary(response, text) {
  const cost = response.cost || {};
  const usage = response.cached ? {} : (response.usage || {});
  return {
    request_id: response.request_id,
    text: text === undefined ? response.text : text,
    model: response.model,
    provider: response.provider,
    tier: tierName(response.tier),
    classified_tier: tierName(response.classified_tier),
    cached: response.cached,
    cache_status: cacheStatusName(response.cache_status),
    usage: { input_tokens: usage.input_tokens || 0, output_tokens: usage.output_tokens || 0 },
    cost_usd: usd(cost.total_micro_usd),
    baseline_cost_usd: usd(response.baseline_cost_micro_usd),
    saving_usd: usd(response.saving_micro_usd),
    // The same amounts as whole micro-dollars (int64; exact sums): for adding up bills.
    cost_micro_usd: cost.total_micro_usd || 0,
    baseline_cost_micro_usd: response.baseline_cost_micro_usd || 0,
    saving_micro_usd: response.saving_micro_usd || 0,
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

module.exports = {
  CostmeshClient, buildRequest, loadGatewayService, summary, tierName, cacheStatusName, usd, TIERS, grpc,
};
