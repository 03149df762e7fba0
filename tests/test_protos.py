"""The protos and their Python modules: files where their packages say (protos/costmesh/<domain>/v1/),
modules at costmesh.api.<domain>.v1 as committed, the wire unchanged (packages, method paths), one
request and response message per RPC, and the integer micro-dollar fields beside the doubles."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import FieldDescriptor

from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.api.inference.v1 import inference_pb2
from costmesh.api.provider.v1 import provider_pb2
from costmesh.api.router.v1 import router_pb2
from costmesh.convert import cost_to_pb, same_fields_as, with_micro_usd
from costmesh.domain import Cost
from costmesh.pricing import micro_usd

ROOT = Path(__file__).resolve().parents[1]
DOMAINS = ("cache", "classifier", "common", "gateway", "inference", "provider", "router")

# The gRPC method paths clients call: the file moves must not change one of them.
METHODS = {
    "costmesh.gateway.v1.GatewayService": ["Complete", "StreamComplete", "GetStats", "ReportFeedback"],
    "costmesh.gateway.v1.BatchService": ["SubmitBatch", "GetBatch", "CancelBatch"],
    "costmesh.router.v1.RouterService": ["Execute", "StreamExecute", "Plan"],
    "costmesh.provider.v1.ProviderService": ["Generate", "StreamGenerate", "ListModels", "SubmitBatch", "GetBatch",
                                             "StreamBatchResults", "CancelBatch"],
    "costmesh.inference.v1.InferenceService": ["Generate", "StreamGenerate", "GetStats"],
    "costmesh.classifier.v1.ClassifierService": ["Classify"],
    "costmesh.cache.v1.CacheService": ["Lookup", "Store", "Invalidate", "GetStats", "JudgeShadow"],
}


def _modules():
    return [importlib.import_module(f"costmesh.api.{d}.v1.{d}_pb2") for d in DOMAINS]


def test_the_proto_files_sit_where_their_packages_say():
    files = sorted(str(p.relative_to(ROOT / "protos")) for p in (ROOT / "protos").rglob("*.proto"))
    assert files == [f"costmesh/{d}/v1/{d}.proto" for d in DOMAINS]
    for module, domain in zip(_modules(), DOMAINS):
        assert module.DESCRIPTOR.name == f"costmesh/{domain}/v1/{domain}.proto"
        assert module.DESCRIPTOR.package == f"costmesh.{domain}.v1"
        for message in module.DESCRIPTOR.message_types_by_name.values():
            assert getattr(module, message.name).__module__ == f"costmesh.api.{domain}.v1.{domain}_pb2"


def test_the_committed_modules_are_what_make_proto_generates():
    check = subprocess.run([sys.executable, "scripts/gen_protos.py", "--check"], cwd=ROOT, capture_output=True,
                           text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr


def test_every_service_and_method_keeps_its_wire_name():
    pool = descriptor_pool.Default()
    _modules()
    for service, methods in METHODS.items():
        found = pool.FindServiceByName(service)
        assert [m.name for m in found.methods] == methods
    grpc_modules = [importlib.import_module(f"costmesh.api.{d}.v1.{d}_pb2_grpc") for d in DOMAINS]
    source = "".join(Path(m.__file__).read_text() for m in grpc_modules)
    for service, methods in METHODS.items():
        for method in methods:
            assert f"'/{service}/{method}'" in source


def test_each_rpc_has_its_own_request_and_response():
    seen: dict[str, str] = {}
    for module in _modules():
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                for message in (method.input_type, method.output_type):
                    assert message.full_name not in seen, f"{message.full_name}: {seen.get(message.full_name)}"
                    seen[message.full_name] = method.full_name


def _shape(message) -> list[tuple]:
    return [(f.name, f.number, f.type, f.is_repeated, f.message_type and f.message_type.full_name,
             f.containing_oneof and f.containing_oneof.name) for f in message.DESCRIPTOR.fields]


@pytest.mark.parametrize("unary, streamed", [
    (router_pb2.ExecuteRequest, router_pb2.StreamExecuteRequest),
    (provider_pb2.GenerateRequest, provider_pb2.StreamGenerateRequest),
    (inference_pb2.GenerateRequest, inference_pb2.StreamGenerateRequest),
])
def test_a_streaming_request_is_its_unary_twin_on_the_wire(unary, streamed):
    assert _shape(unary) == _shape(streamed)  # same names, numbers, types: no field lost either way
    message = unary()
    for field in unary.DESCRIPTOR.fields:  # every field set
        if field.is_repeated:
            getattr(message, field.name).add()
        elif field.message_type is not None:
            getattr(message, field.name).SetInParent()
        elif field.type == FieldDescriptor.TYPE_STRING:
            setattr(message, field.name, field.name)
        elif field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_ENUM):
            setattr(message, field.name, 2)
    if message.DESCRIPTOR.oneofs:
        message.prompt = "a prompt"
    converted = same_fields_as(message, streamed)
    assert isinstance(converted, streamed) and converted.SerializeToString() == message.SerializeToString()


def test_every_micro_dollar_field_is_an_int64_beside_its_double():
    count = 0
    for module in _modules():
        for message in _all_messages(module.DESCRIPTOR.message_types_by_name.values()):
            for field in message.fields:
                if field.name.endswith("_micro_usd"):
                    count += 1
                    assert field.type == FieldDescriptor.TYPE_INT64, field.full_name
                    double = message.fields_by_name[field.name.removesuffix("_micro_usd") + "_usd"]
                    assert double.type == FieldDescriptor.TYPE_DOUBLE, field.full_name
    # CostBreakdown, LayerSavings, CompleteResponse, GetStats, Batch, Execute, LimitUsage
    assert count == 7 + 5 + 2 + 3 + 2 + 2 + 4


def _all_messages(messages):
    for message in messages:
        yield message
        yield from _all_messages(message.nested_types)


def test_micro_dollars_round_each_amount_once_and_sum_exactly():
    assert [micro_usd(x) for x in (0.0, 1.0, 0.0000014, 0.0000016, -0.25, 123.456789)] == [
        0, 1_000_000, 1, 2, -250_000, 123_456_789]
    cost = cost_to_pb(Cost(input_usd=0.0000014, cache_read_usd=0.0000014, output_usd=0.0000014, discount_usd=0.0000012))
    assert (cost.input_micro_usd, cost.cache_read_micro_usd, cost.output_micro_usd, cost.discount_micro_usd) == (1,) * 4
    assert cost.total_micro_usd == 2  # 1 + 1 + 1 - 1: the integer parts, not round(total_usd * 1e6) = 3
    assert micro_usd(cost.total_usd) == 3


def test_a_response_is_filled_all_the_way_down():
    cost = common.CostBreakdown(input_usd=0.0012, output_usd=0.0030004, embedding_usd=0.0000002, total_usd=0.0042006)
    savings = common.LayerSavings(routing_usd=0.0208, cache_usd=-2e-7)
    response = gw.CompleteResponse(cost=cost, baseline_cost_usd=0.0250006, saving_usd=0.0208, savings=savings)
    batch = gw.Batch(results=[gw.BatchItemResult(response=response)])
    with_micro_usd(batch)
    filled = batch.results[0].response
    parts = (filled.cost.input_micro_usd, filled.cost.output_micro_usd, filled.cost.embedding_micro_usd)
    assert parts == (1200, 3000, 0)
    assert filled.cost.total_micro_usd == 4200 and filled.baseline_cost_micro_usd == 25001
    assert filled.saving_micro_usd == 25001 - 4200
    assert (filled.savings.routing_micro_usd, filled.savings.cache_micro_usd) == (20800, 0)
    again = gw.CompleteResponse()
    again.CopyFrom(filled)
    assert with_micro_usd(again) == filled  # idempotent
    again.cost.embedding_usd += 0.001  # a copied cost with the embedding added: filled again from the doubles
    assert with_micro_usd(again).cost.total_micro_usd == 5200 and again.saving_micro_usd == 25001 - 5200
