"""The HTTP API fuzzed from the OpenAPI description it ships (`gateway/http/openapi.yaml`) with
schemathesis, against a live gateway with the simulator behind it (#19): requests that fit the
description and requests that break it (schemathesis's positive and negative modes), every
operation, never a 500 and never a hang (each case bounded). A few hundred cases here;
`make fuzz` runs many more (COSTMESH_FUZZ_EXAMPLES per operation and mode)."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from pathlib import Path

import pytest
import requests
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider
from schemathesis import GenerationMode

from costmesh.catalog import load_catalog
from costmesh.gateway.http.costmesh_options import AUTO_MODEL
from costmesh.services.simulator import start_simulator

from inprocess_mesh import start_inprocess_mesh

OPENAPI = Path(__file__).resolve().parents[1] / "gateway" / "http" / "openapi.yaml"
EXAMPLES = int(os.environ.get("COSTMESH_FUZZ_EXAMPLES", "40"))  # per operation and mode
CASE_TIMEOUT_S = 30.0  # a case that takes longer is a hang
UPSTREAM_STATUSES = {502, 503, 504}  # an upstream's failure or the caller's deadline passed, said so; never a 500

# schemathesis's own strategies draw from `random`; Hypothesis warns about it on each run.
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")


@pytest.fixture(scope="module")
async def gateway(redis_url):
    simulator = await start_simulator(port=0, books=[])
    env = {"COSTMESH_CACHE_VERIFIER": "rules", "COSTMESH_LOG_LEVEL": "error"}
    mesh = await asyncio.wait_for(start_inprocess_mesh(redis_url, simulator.url, TracerProvider(), extra_env=env),
                                  180)
    yield mesh
    await mesh.stop()
    await simulator.stop()


def test_the_description_is_valid_openapi_and_names_every_route():
    schema = schemathesis.openapi.from_path(str(OPENAPI))
    labels = {result.ok().label for result in schema.get_all_operations()}
    assert labels == {"POST /v1/chat/completions", "POST /v1/messages", "GET /v1/models", "GET /v1/models/{model}",
                      "POST /v1/feedback"}


def served_schema() -> schemathesis.BaseSchema:
    """The description with `model` narrowed to the models this gateway serves (GET /v1/models),
    so that requests that fit it reach the pipeline instead of stopping at the model check."""
    raw = yaml.safe_load(OPENAPI.read_text())
    models = [AUTO_MODEL, *load_catalog().models]
    schemas = raw["components"]["schemas"]
    for name in ("ChatCompletionRequest", "MessagesRequest"):
        schemas[name]["properties"]["model"]["enum"] = models
    raw["paths"]["/v1/models/{model}"]["get"]["parameters"][0]["schema"]["enum"] = models
    return schemathesis.openapi.from_dict(raw)


def ends_with_user(drawn: tuple) -> object:
    """Half the cases end with a user's question, as real conversations do (a rule of both APIs
    that the description cannot state), so that they reach the pipeline past validation."""
    case, nudge = drawn
    body = case.body
    if nudge and isinstance(body, dict) and isinstance(body.get("messages"), list):
        body["messages"] = [*body["messages"], {"role": "user", "content": "What is 2 + 2?"}]
    return case


def short_deadline(case) -> float | None:
    """The case's own deadline (x-costmesh-timeout-s) when it is short enough to pass: a 504 is then its due."""
    raw = (case.headers or {}).get("x-costmesh-timeout-s")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if value < 5 else None


def fuzz(base_url: str, api_key: str, examples: int) -> tuple[Counter, list[str]]:
    """Every operation in both modes; the statuses seen and what went wrong (500s, hangs)."""
    schema = served_schema()
    statuses: Counter = Counter()
    failures: list[str] = []
    session = requests.Session()
    headers = {"authorization": f"Bearer {api_key}"}
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(max_examples=examples, deadline=None, database=None, derandomize=False,
                      suppress_health_check=list(HealthCheck))
            @given(case=st.tuples(operation.as_strategy(generation_mode=mode), st.booleans()).map(ends_with_user))
            def run(case) -> None:
                try:
                    response = case.call(base_url=base_url, session=session, headers=headers,
                                         timeout=CASE_TIMEOUT_S)
                except requests.Timeout:
                    failures.append(f"hang: {operation.label} {mode.value}: {case.body!r:.300}")
                    return
                except requests.ConnectionError as exc:  # the gateway dropped the connection
                    failures.append(f"dropped: {operation.label} {mode.value}: {exc}: {case.body!r:.300}")
                    return
                statuses[response.status_code] += 1
                statuses[f"{operation.label} {mode.value} {response.status_code}"] += 1
                if response.status_code >= 500 and response.status_code not in UPSTREAM_STATUSES:
                    failures.append(f"{response.status_code}: {operation.label} {mode.value}: "
                                    f"{response.text[:300]} <- {case.body!r:.300}")
                elif response.status_code == 504 and short_deadline(case) is None:  # the simulator answers at once
                    failures.append(f"504 without a short deadline: {operation.label} {mode.value}: "
                                    f"{response.text[:300]} <- {case.body!r:.300}")

            run()
    return statuses, failures


async def test_no_input_gets_a_500_or_hangs(gateway):
    base_url = gateway.http_url.removesuffix("/v1")
    statuses, failures = await asyncio.to_thread(fuzz, base_url, gateway.api_key("fuzz"), EXAMPLES)
    total = sum(n for key, n in statuses.items() if isinstance(key, int))
    print(f"schemathesis: {total} cases; " + ", ".join(f"{k}: {n}" for k, n in sorted(statuses.items(), key=str)))
    assert not failures, "\n".join(failures[:20])
    assert total >= 4 * 2 * EXAMPLES // 2 and statuses[200] > 0 and statuses[400] > 0
