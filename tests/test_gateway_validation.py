"""Gateway request validation: each bad input is rejected with the field named."""

import pytest

from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.errors import InvalidRequest
from costmesh.gateway.validation import Limits, validate
from costmesh.tooling.mesh_client import build_request

LIMITS = Limits(max_prompt_bytes=1_000_000)


def test_a_good_request_passes():
    validate(build_request("What is 2 + 2?", tenant="acme", system="Be brief."), LIMITS)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda r: r.ClearField("messages"), "messages"),
        (lambda r: setattr(r, "tenant_id", " "), "tenant_id"),
        (lambda r: setattr(r.messages[0], "role", 9), "messages[0].role"),
        (lambda r: setattr(r.messages[0], "role", common.ROLE_UNSPECIFIED), "messages[0].role"),
        (lambda r: r.messages[0].ClearField("content"), "messages[0].content"),
        (lambda r: setattr(r.messages[0].content[0], "text", "   "), "messages[0].content"),
        (lambda r: setattr(r.sampling, "max_tokens", 0), "sampling.max_tokens"),
        (lambda r: setattr(r.sampling, "max_tokens", -5), "sampling.max_tokens"),
        (lambda r: setattr(r.sampling, "temperature", 3.0), "sampling.temperature"),
        (lambda r: setattr(r.sampling, "top_p", 0.0), "sampling.top_p"),
        (lambda r: setattr(r.cache, "ttl_seconds", -1), "cache.ttl_seconds"),
        (lambda r: setattr(r.cache, "session_scoped", True), "session_id"),
        (lambda r: r.messages.add(role=common.ROLE_ASSISTANT, content=[common.ContentPart(text="hi")]), "messages"),
    ],
)
def test_bad_input_names_the_field(mutate, field):
    request = build_request("What is 2 + 2?", tenant="acme")
    mutate(request)
    with pytest.raises(InvalidRequest) as error:
        validate(request, LIMITS)
    assert str(error.value).startswith(field), str(error.value)


def test_oversized_prompt_is_refused():
    request = build_request("x" * (LIMITS.max_prompt_bytes + 1), tenant="acme")
    with pytest.raises(InvalidRequest, match="^messages: prompt is"):
        validate(request, LIMITS)


def test_tier_bounds_must_be_ordered():
    request = build_request("hi", tenant="acme")
    request.routing.CopyFrom(gw.RoutingPolicy(min_tier=common.TIER_COMPLEX, max_tier=common.TIER_SIMPLE))
    with pytest.raises(InvalidRequest, match="^routing"):
        validate(request, LIMITS)
