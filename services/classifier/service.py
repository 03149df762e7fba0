"""Wiring of the classifier service. Env: COSTMESH_CLASSIFIER_STRATEGY (default "rules")."""

from __future__ import annotations

from costmesh.api.classifier.v1 import classifier_pb2, classifier_pb2_grpc
from costmesh.rpc.server import Mounted, Runtime, Servicer, ServiceSpec
from costmesh.tokens import get_counter

from .rules import RulesStrategy
from .servicer import ClassifierServicer
from .strategy import Classifier, Strategy

FULL_NAME = classifier_pb2.DESCRIPTOR.services_by_name["ClassifierService"].full_name


def build_strategies() -> dict[str, Strategy]:
    """Every strategy this build knows, by name."""
    rules = RulesStrategy()
    return {rules.name: rules}


async def mount(runtime: Runtime) -> Mounted:
    default = runtime.env.str("COSTMESH_CLASSIFIER_STRATEGY", "rules")
    classifier = Classifier(build_strategies(), default=default)
    get_counter()  # load the tokenizer (about a second) before serving, not on the first request
    runtime.log.info("classifier ready", default_strategy=default, strategies=classifier.names)
    servicer = ClassifierServicer(classifier)
    return Mounted([Servicer(classifier_pb2_grpc.add_ClassifierServiceServicer_to_server, servicer, FULL_NAME)])


SPEC = ServiceSpec("classifier", 50053, mount)
