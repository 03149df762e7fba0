#!/usr/bin/env node
// The Vercel AI SDK (`ai` + `@ai-sdk/openai`) against costmesh's OpenAI-compatible HTTP API, by
// base URL only: `generateText` with one tool that has an `execute`, so the SDK runs the tool loop
// (the model calls the tool, the SDK sends its result back, the model answers). Prints one JSON line:
// the steps, the tool calls and results, the final text, the SDK's token usage and what costmesh
// billed for each HTTP call (its x-costmesh-* response headers).
//
//   COSTMESH_API_KEY=cm_... node ai-sdk-tool.mjs --base-url http://127.0.0.1:8080/v1 [--model auto] \
//       ["What is the weather forecast in Paris today?"]
//
// `openai.chat(...)`: costmesh serves /v1/chat/completions; the provider's default model factory
// calls the Responses API (/v1/responses), which it does not serve. Exit code 0 on success; on an
// error, prints {"error": {"name", "message", "status"}} and exits 1.

import { parseArgs } from 'node:util';
import { createOpenAI } from '@ai-sdk/openai';
import { generateText, stepCountIs, tool } from 'ai';
import { z } from 'zod';

const { values, positionals } = parseArgs({
  options: {
    'base-url': { type: 'string', default: process.env.COSTMESH_BASE_URL || 'http://127.0.0.1:8080/v1' },
    'api-key': { type: 'string', default: process.env.COSTMESH_API_KEY || '' },
    model: { type: 'string', default: 'auto' },
    'max-tokens': { type: 'string', default: '300' },
  },
  allowPositionals: true,
});
const prompt = positionals[0] || 'What is the weather forecast in Paris today?';

// Every HTTP call the SDK makes: the tool results it sent back, and what costmesh billed for it.
const calls = [];
async function billedFetch(input, init) {
  const response = await fetch(input, init);
  const header = (name) => response.headers.get(name);
  const sent = typeof init?.body === 'string' ? JSON.parse(init.body) : {};
  calls.push({
    path: new URL(typeof input === 'string' || input instanceof URL ? input : input.url).pathname,
    status: response.status,
    tools_sent: (sent.tools || []).map((item) => item.function?.name),
    tool_messages_sent: (sent.messages || []).filter((message) => message.role === 'tool')
      .map((message) => ({ tool_call_id: message.tool_call_id, content: message.content })),
    model: header('x-costmesh-model'),
    cache: header('x-costmesh-cache'),
    cost_usd: header('x-costmesh-cost-usd') === null ? null : Number(header('x-costmesh-cost-usd')),
    baseline_usd: header('x-costmesh-baseline-usd') === null ? null : Number(header('x-costmesh-baseline-usd')),
  });
  return response;
}

const openai = createOpenAI({ baseURL: values['base-url'], apiKey: values['api-key'], fetch: billedFetch });

const getWeather = tool({
  description: 'Get the current weather forecast for a city.',
  inputSchema: z.object({ city: z.string().describe('The city') }),
  execute: async ({ city }) => `${city}: 18 degrees and sunny`,
});

try {
  const result = await generateText({
    model: openai.chat(values.model),
    system: "Answer with the tools' help.",
    prompt,
    tools: { get_weather: getWeather },
    stopWhen: stepCountIs(3),
    maxOutputTokens: Number(values['max-tokens']),
    maxRetries: 0,
  });
  const steps = result.steps.map((step) => ({
    finish_reason: step.finishReason,
    tool_calls: step.toolCalls.map((call) => ({ id: call.toolCallId, name: call.toolName, input: call.input })),
    tool_results: step.toolResults.map((res) => ({ id: res.toolCallId, name: res.toolName, output: res.output })),
    text: step.text,
    model: step.response.modelId,
    usage: { input_tokens: step.usage.inputTokens, output_tokens: step.usage.outputTokens },
  }));
  console.log(JSON.stringify({
    steps,
    tool_calls: steps.flatMap((step) => step.tool_calls),
    tool_results: steps.flatMap((step) => step.tool_results),
    text: result.text,
    finish_reason: result.finishReason,
    usage: {
      input_tokens: result.totalUsage.inputTokens,
      output_tokens: result.totalUsage.outputTokens,
      total_tokens: result.totalUsage.totalTokens,
    },
    calls,
    cost_usd: calls.reduce((sum, call) => sum + (call.cost_usd || 0), 0),
  }));
} catch (err) {
  console.log(JSON.stringify({
    error: { name: err.name || 'Error', message: err.message || String(err), status: err.statusCode ?? null },
    calls,
  }));
  process.exitCode = 1;
}
