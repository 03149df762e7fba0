"""The cascade with tools and structured output: routed only to models that can serve the request,
and a wrong shape (unknown tool, invalid arguments, JSON off its schema) fails the gate and
upgrades, the failed attempt billed. In-memory provider client and fake clock, as in
test_router_cascade."""

from __future__ import annotations

import dataclasses
import json

import pytest
from test_router_cascade import FakeClock, make

from costmesh.catalog import Tier, load_catalog
from costmesh.domain import Generation, Image, Message, Part, Role, ToolCall, Usage
from costmesh.errors import InvalidRequest
from costmesh.output_spec import Capability, ChoiceMode, FormatType, OutputSpec, ResponseFormat, Tool, ToolChoice
from costmesh.pricing import cost_of
from costmesh.services.router.records import Delta, Outcome, RouteRequest, RouteResult

CATALOG = load_catalog()
USAGE = Usage(input_tokens=200, output_tokens=20)
CALC = Tool("calculator", "Evaluates an arithmetic expression",
            {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]})
TOOLS = OutputSpec((CALC,), ToolChoice(ChoiceMode.REQUIRED))
QUESTION = (Message.of(Role.USER, "What is 17 * 23?"),)
GOOD_CALL = ToolCall("call_1", "calculator", '{"expression": "17 * 23"}')


class ShapedProvider:
    """Answers per model from a script of Generations (text, tool calls); then a good tool call."""

    def __init__(self, script: dict[str, list[Generation]] | None = None, default: Generation | None = None):
        self.script = {model: list(steps) for model, steps in (script or {}).items()}
        self.default = default or Generation("", "", "", finish_reason="tool_use", tool_calls=(GOOD_CALL,))
        self.calls: list[tuple[str, OutputSpec]] = []

    def _answer(self, call) -> Generation:
        self.calls.append((call.model, call.output))
        steps = self.script.get(call.model)
        step = steps.pop(0) if steps else self.default
        spec = CATALOG.model(call.model)
        return dataclasses.replace(step, model=call.model, provider=spec.provider, usage=USAGE,
                                   cost=cost_of(spec, USAGE))

    async def generate(self, call, timeout_s):
        return self._answer(call)

    async def stream(self, call, timeout_s):
        answer = self._answer(call)
        if answer.text:
            yield answer.text
        yield dataclasses.replace(answer, text="")


def route(output: OutputSpec = TOOLS, **kw) -> RouteRequest:
    return RouteRequest(messages=kw.pop("messages", QUESTION), output=output, **kw)


def calls(tool_call: ToolCall) -> Generation:
    return Generation("", "", "", finish_reason="tool_use", tool_calls=(tool_call,))


async def test_the_tools_reach_the_provider_and_a_valid_call_is_served_from_the_cheap_tier():
    provider = ShapedProvider()
    result = await make(provider).execute(route())
    assert [model for model, _ in provider.calls] == ["gpt-5-mini"]
    assert provider.calls[0][1] == TOOLS
    assert result.tool_calls == (GOOD_CALL,) and result.finish_reason == "tool_use"
    assert result.quality_passed and [a.outcome for a in result.attempts] == [Outcome.OK]


@pytest.mark.parametrize("bad, reason", [
    (calls(ToolCall("call_1", "calculater", '{"expression": "17 * 23"}')), "unknown_tool"),
    (calls(ToolCall("call_1", "calculator", '{"expr": "17 * 23"}')), "tool_arguments_invalid"),
    (calls(ToolCall("call_1", "calculator", '{"expression": ')), "tool_arguments_not_json"),
    (Generation("It is 391.", "", ""), "tool_call_missing"),
])
async def test_a_wrong_tool_call_fails_the_gate_upgrades_and_is_billed(bad, reason):
    provider = ShapedProvider({"gpt-5-mini": [bad]})
    result = await make(provider).execute(route())
    assert [model for model, _ in provider.calls] == ["gpt-5-mini", "claude-sonnet-4-5"]
    assert [a.outcome for a in result.attempts] == [Outcome.GATE_FAILED, Outcome.OK]
    assert reason in result.attempts[0].detail
    assert result.tool_calls == (GOOD_CALL,) and result.tier == Tier.MODERATE
    expected = cost_of(CATALOG.model("gpt-5-mini"), USAGE).total_usd + cost_of(
        CATALOG.model("claude-sonnet-4-5"), USAGE).total_usd
    assert result.cost.total_usd == pytest.approx(expected)


async def test_json_off_its_schema_upgrades_and_valid_json_is_not_read_as_prose():
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
    spec = OutputSpec(response_format=ResponseFormat(FormatType.JSON_SCHEMA, "result", schema, False))
    provider = ShapedProvider({"gpt-5-mini": [Generation('{"result": 391}', "", "")]},
                              default=Generation('{"answer": 391}', "", ""))
    result = await make(provider).execute(route(spec))
    assert [a.outcome for a in result.attempts] == [Outcome.GATE_FAILED, Outcome.OK]
    assert "json_schema_invalid" in result.attempts[0].detail
    assert json.loads(result.text) == {"answer": 391}
    # a two-character JSON answer would be "too short" prose to the heuristic gate; as JSON it passes
    provider = ShapedProvider(default=Generation('{"answer": 391}', "", ""))
    result = await make(provider).execute(route(spec, messages=(Message.of(Role.USER, "Explain why 17*23 = 391"),)))
    assert result.quality_passed and len(result.attempts) == 1


async def test_a_streamed_tool_call_comes_back_whole_in_the_result():
    provider = ShapedProvider({"gpt-5-mini": [calls(ToolCall("c", "nope", "{}"))]})
    events = [event async for event in make(provider).stream(route())]
    result = events[-1]
    assert isinstance(result, RouteResult) and not [e for e in events if isinstance(e, Delta)]
    assert result.tool_calls == (GOOD_CALL,) and result.attempts[0].outcome == Outcome.GATE_FAILED


def catalog_without(model_ids: set[str], capability: Capability):
    models = {
        mid: dataclasses.replace(spec, capabilities=spec.capabilities - {capability}) if mid in model_ids else spec
        for mid, spec in CATALOG.models.items()
    }
    return dataclasses.replace(CATALOG, models=models)


async def test_a_request_is_routed_only_to_models_that_can_serve_it():
    catalog = catalog_without({"gpt-5-mini", "claude-haiku-4-5"}, Capability.TOOLS)
    provider = ShapedProvider()
    result = await make(provider, catalog=catalog).execute(route(tier=Tier.TRIVIAL))
    assert [model for model, _ in provider.calls] == ["gpt-5-nano"]
    assert result.model == "gpt-5-nano"
    provider = ShapedProvider()
    result = await make(provider, catalog=catalog).execute(route(tier=Tier.SIMPLE))
    assert [model for model, _ in provider.calls] == ["claude-sonnet-4-5"]  # simple has no tool-capable model
    # plain text still goes to the cheapest model
    provider = ShapedProvider(default=Generation("Four. Two plus two equals four.", "", ""))
    await make(provider, catalog=catalog).execute(route(OutputSpec()))
    assert [model for model, _ in provider.calls] == ["gpt-5-mini"]


async def test_images_need_a_model_that_reads_them_and_a_pinned_model_that_cannot_is_refused():
    catalog = catalog_without(set(CATALOG.models), Capability.IMAGES)
    picture = (Message(Role.USER, (Part(text="What is this?"), Part(image=Image("image/png", b"\x89PNG")))),)
    with pytest.raises(InvalidRequest, match="can serve this request.*images"):
        await make(ShapedProvider(), catalog=catalog).execute(route(OutputSpec(), messages=picture))
    with pytest.raises(InvalidRequest, match="^model: 'gpt-5-mini' cannot serve this request .*images"):
        await make(ShapedProvider(), catalog=catalog, clock=FakeClock()).execute(
            route(OutputSpec(), messages=picture, model="gpt-5-mini"))
