"""ClassifierService: protobuf <-> domain only; the work is in `strategy.Classifier`."""

from __future__ import annotations

from costmesh.api.classifier.v1 import classifier_pb2, classifier_pb2_grpc
from costmesh.convert import messages_from_pb

from .strategy import Classifier


class ClassifierServicer(classifier_pb2_grpc.ClassifierServiceServicer):
    def __init__(self, classifier: Classifier):
        self._classifier = classifier

    async def Classify(self, request: classifier_pb2.ClassifyRequest, context) -> classifier_pb2.ClassifyResponse:
        result = await self._classifier.aclassify(
            messages_from_pb(request.messages),
            strategy=request.strategy,
            embedding=list(request.embedding),
            deadline_s=context.time_remaining(),
            threshold_offset=request.threshold_offset,
        )
        return classifier_pb2.ClassifyResponse(
            tier=int(result.tier),
            score=result.score,
            signals=list(result.signals),
            strategy=result.strategy,
            embedding=list(result.embedding),
            embedding_model=result.embedding_model,
            threshold=result.threshold,
        )
