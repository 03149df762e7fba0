"""`make bench` section `agents`: a tool-using workload through the whole mesh.

Each conversation is an agent loop over gRPC: the question (a GSM8K word problem, or an MMLU
question with its subject), two function tools (a calculator and a glossary lookup), and a
final answer asked as JSON that must validate against a schema. Tools and schema are not
`strict` (as most agents send them), so a cheap model can get them wrong and the gate must
catch it: every final answer must validate. The model calls tools, the
bench runs them and sends the results back, until the model answers (at most `MAX_TURNS`
model calls). A quarter of the conversations are asked again afterwards, as users repeat
themselves.

Two policies, each its own tenant, in the same run against the same simulator:
- `costmesh`: model "auto" (cache, classifier, cascade with the gate's shape checks);
- `all-premium`: every turn pinned to the catalog's premium model, cache bypassed.
Reported: cost and saving by layer against all-premium (the gateway's bill of every turn,
failed attempts included), the share of cheap attempts the gate rejected (answers that came
back with more than one attempt: the simulator injects no faults here, so every extra attempt
is a gate rejection), and the share of final answers that validate against the schema.
"""

from __future__ import annotations

import ast
import asyncio
import json
import operator
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from jsonschema import validators

from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.catalog import load_catalog
from costmesh.tooling.datasets import data_dir, load_book
from costmesh.tooling.launcher import start_mesh
from costmesh.tooling.mesh_client import GatewayClient

MAX_TURNS = 4
CONCURRENCY = 8
CONVERSATIONS, QUICK_CONVERSATIONS = 120, 24
STARTUP_S = 400.0
SYSTEM = ("You solve problems step by step. Use the calculator tool for any arithmetic and the lookup tool "
          "for definitions. When you have the result, answer with JSON only.")
CALCULATOR = {"type": "object", "properties": {"expression": {"type": "string",
              "description": "An arithmetic expression, e.g. (17 + 5) * 3"}},
              "required": ["expression"], "additionalProperties": False}
LOOKUP = {"type": "object", "properties": {"term": {"type": "string", "description": "The term to define"}},
          "required": ["term"], "additionalProperties": False}
ANSWER = {"type": "object", "properties": {"answer": {"type": "string"}, "confidence": {"type": "number"}},
          "required": ["answer", "confidence"], "additionalProperties": False}
GLOSSARY = {
    "percent": "One part in a hundred: 15% of 80 is 0.15 * 80.",
    "average": "The sum of the values divided by how many there are.",
    "profit": "What is left of the revenue after the costs are paid.",
    "interest": "What a lender is paid for a loan: principal * rate * time for simple interest.",
    "speed": "Distance travelled divided by the time taken.",
}


def tools() -> common.ToolConfig:
    return common.ToolConfig(tools=[
        common.Tool(name="calculator", description="Evaluates an arithmetic expression exactly",
                    parameters_json=json.dumps(CALCULATOR)),
        common.Tool(name="lookup", description="Looks up the definition of a term in a glossary",
                    parameters_json=json.dumps(LOOKUP)),
    ])


def answer_format() -> common.ResponseFormat:
    return common.ResponseFormat(type=common.RESPONSE_FORMAT_TYPE_JSON_SCHEMA, name="final_answer",
                                 schema_json=json.dumps(ANSWER))


# -- the tools ---------------------------------------------------------------------------------

_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
              ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
              ast.USub: operator.neg, ast.UAdd: operator.pos}


def calculate(expression: str) -> float:
    """Arithmetic only (numbers, + - * / // % ** and parentheses), bounded in size and exponent."""
    if len(expression) > 200:
        raise ValueError("expression too long")

    def value(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            left, right = value(node.left), value(node.right)
            if isinstance(node.op, ast.Pow) and abs(right) > 16:
                raise ValueError("exponent too large")
            return _OPERATORS[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](value(node.operand))
        raise ValueError("not arithmetic")

    return value(ast.parse(expression, mode="eval").body)


def run_tool(name: str, arguments: str) -> tuple[str, bool]:
    """The tool's result text and whether it failed."""
    try:
        args = json.loads(arguments)
        if name == "calculator":
            return f"{calculate(str(args['expression'])):g}", False
        if name == "lookup":
            term = str(args["term"]).lower()
            found = next((text for key, text in GLOSSARY.items() if key in term), None)
            return found or f"No glossary entry for {term[:40]!r}.", False
        return f"unknown tool {name!r}", True
    except (ValueError, KeyError, TypeError, ZeroDivisionError, OverflowError, SyntaxError, RecursionError) as exc:
        return f"error: {type(exc).__name__}", True


# -- the loop ------------------------------------------------------------------------------------


@dataclass
class Policy:
    name: str
    model: str = ""  # pinned, or "" for auto
    bypass: bool = False
    conversations: int = 0
    failed: int = 0
    turns: int = 0
    tool_calls: int = 0
    attempts: int = 0
    rejected: int = 0  # attempts beyond the first of a turn (no faults injected: gate rejections)
    cheap_attempts: int = 0  # attempts that started below the premium tier
    cache_hits: int = 0
    final_answers: int = 0
    valid_answers: int = 0
    cost_usd: float = 0.0
    baseline_usd: float = 0.0
    savings: dict[str, float] = field(default_factory=lambda: dict.fromkeys(
        ("cache_usd", "routing_usd", "prompt_caching_usd", "batch_usd", "inference_usd"), 0.0))

    def add(self, response: gw.CompleteResponse, premium_tier: int) -> None:
        self.turns += 1
        self.attempts += response.attempts
        self.rejected += max(response.attempts - 1, 0)
        if response.classified_tier and response.classified_tier < premium_tier:
            self.cheap_attempts += response.attempts
        self.cache_hits += response.cached
        self.cost_usd += response.cost.total_usd
        self.baseline_usd += response.baseline_cost_usd
        for name in self.savings:
            self.savings[name] += getattr(response.savings, name)

    def as_dict(self, premium_cost: float | None) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k not in ("name", "model", "bypass")}
        out["schema_valid_share"] = self.valid_answers / self.final_answers if self.final_answers else 0.0
        cheap = self.cheap_attempts
        out["gate_rejected_share_of_cheap_attempts"] = self.rejected / cheap if cheap else 0.0
        if premium_cost:
            out["cost_vs_all_premium"] = self.cost_usd / premium_cost
            out["saving_vs_all_premium"] = 1 - self.cost_usd / premium_cost
        return out


def workload(count: int, seed: int = 0) -> list[str]:
    """Half GSM8K word problems (calculator), half MMLU questions with their subject (lookup)."""
    rng = random.Random(seed)
    gsm = load_book(data_dir() / "gsm8k_routing_dev.jsonl.gz")
    mmlu = load_book(data_dir() / "mmlu_routing_dev.jsonl.gz")
    questions = [r.prompt for r in rng.sample(gsm, count - count // 2)]
    questions += [f"({r.subject or 'general'}) {r.prompt}" for r in rng.sample(mmlu, count // 2)]
    rng.shuffle(questions)
    return questions


async def converse(client: GatewayClient, tenant: str, question: str, policy: Policy, premium_tier: int) -> None:
    messages = [common.Message(role=common.ROLE_SYSTEM, content=[common.ContentPart(text=SYSTEM)]),
                common.Message(role=common.ROLE_USER, content=[common.ContentPart(text=question)])]
    validator = validators.validator_for(ANSWER)(ANSWER)
    for _ in range(MAX_TURNS):
        request = gw.CompleteRequest(tenant_id=tenant, messages=messages, tools=tools(),
                                     response_format=answer_format(),
                                     sampling=common.SamplingParams(max_tokens=512),
                                     cache=gw.CachePolicy(bypass=policy.bypass),
                                     routing=gw.RoutingPolicy(model=policy.model))
        response = await client.complete(request)
        policy.add(response, premium_tier)
        if not response.tool_calls:
            policy.final_answers += 1
            try:
                policy.valid_answers += next(iter(validator.iter_errors(json.loads(response.text))), None) is None
            except ValueError:
                pass
            return
        policy.tool_calls += len(response.tool_calls)
        messages.append(common.Message(role=common.ROLE_ASSISTANT, tool_calls=response.tool_calls))
        for call in response.tool_calls:
            result, failed = run_tool(call.name, call.arguments_json)
            messages.append(common.Message(role=common.ROLE_TOOL, tool_call_id=call.id, is_error=failed,
                                           content=[common.ContentPart(text=result)]))


async def run_policy(address: str, key: str, tenant: str, questions: list[str], policy: Policy,
                     premium_tier: int) -> None:
    semaphore = asyncio.Semaphore(CONCURRENCY)
    async with GatewayClient(address, api_key=key) as client:

        async def one(question: str) -> None:
            async with semaphore:
                policy.conversations += 1
                try:
                    await converse(client, tenant, question, policy, premium_tier)
                except Exception:  # noqa: BLE001 - a failed conversation is counted, not fatal
                    policy.failed += 1

        await asyncio.gather(*(one(q) for q in questions))


def run(quick: bool = False) -> dict:
    questions = workload(QUICK_CONVERSATIONS if quick else CONVERSATIONS)
    repeated = questions + questions[: len(questions) // 4]
    catalog = load_catalog()
    premium_tier = int(catalog.premium.tier)
    policies = [Policy("costmesh"), Policy("all-premium", model=catalog.premium_model, bypass=True)]
    with tempfile.TemporaryDirectory(prefix="costmesh-bench-agents-") as run_dir:
        env = {"COSTMESH_LOG_LEVEL": "warning"}
        with start_mesh(Path(run_dir), env, startup_timeout_s=STARTUP_S) as mesh:
            for policy in policies:
                tenant = f"bench-agents-{policy.name}"
                asyncio.run(run_policy(mesh.gateway, mesh.api_key(tenant), tenant, repeated, policy, premium_tier))
    premium_cost = policies[1].cost_usd
    return {
        "conversations": len(repeated),
        "repeated": len(repeated) - len(questions),
        "max_turns": MAX_TURNS,
        "policies": {p.name: p.as_dict(premium_cost) for p in policies},
    }


def table(result: dict) -> str:
    lines = [f"{result['conversations']} tool-using conversations ({result['repeated']} asked again), "
             f"at most {result['max_turns']} model calls each",
             f"  {'policy':<13}{'turns':>7}{'tool calls':>12}{'cost $':>11}{'vs premium':>12}{'cache hits':>12}"
             f"{'gate rejected':>15}{'schema-valid':>14}{'failed':>8}"]
    for name, p in result["policies"].items():
        lines.append(f"  {name:<13}{p['turns']:>7}{p['tool_calls']:>12}{p['cost_usd']:>11.4f}"
                     f"{p.get('cost_vs_all_premium', 0):>12.3f}{p['cache_hits']:>12}"
                     f"{p['gate_rejected_share_of_cheap_attempts']:>15.1%}{p['schema_valid_share']:>14.1%}"
                     f"{p['failed']:>8}")
    saved = result["policies"]["costmesh"]["savings"]
    lines.append("  costmesh saving by layer ($): " + ", ".join(
        f"{k.removesuffix('_usd')} {v:.4f}" for k, v in saved.items() if v))
    return "\n".join(lines)
