"""The cache service: wiring from env to `CacheCore`, mounted on the shared bootstrap.

Env: REDIS_URL (required); COSTMESH_CACHE_* (see `config.py`); COSTMESH_EMBED_WINDOW_MS,
COSTMESH_EMBED_MAX_BATCH, COSTMESH_EMBED_BATCHING, COSTMESH_EMBED_MODEL_PATH; COSTMESH_TORCH_THREADS
(torch intra-op threads, default 1: the mesh's processes share the cores; 0 = torch's default);
COSTMESH_CATALOG.

Metrics: the cache's own figures (entries, evictions, bytes per entry, stores, refusals) on its
Prometheus endpoint, from `metrics.py`; the tenants' live false-hit estimates from `shadow_metrics.py`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from costmesh.api.cache.v1 import cache_pb2, cache_pb2_grpc
from costmesh.catalog import load_catalog
from costmesh.config import Env
from costmesh.embeddings import Embedder
from costmesh.errors import ConfigError
from costmesh.model_files import ModelSettings
from costmesh.observability.scrape_reads import read_on_loop
from costmesh.rpc.server import Mounted, Runtime, Servicer, ServiceSpec

from .config import CacheConfig
from .core import CacheCore, word_count
from .metrics import CacheMetrics
from .servicer import CacheServicer
from .shadow_metrics import ShadowMetrics
from .verifier import CosineVerifier, LearnedVerifier, RuleVerifier, Verifier

FULL_NAME = cache_pb2.DESCRIPTOR.services_by_name["CacheService"].full_name


def redis_client(url: str, config: CacheConfig) -> Redis:
    """Async client on a bounded pool; one quick retry so a stale pooled socket reconnects."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=config.redis_max_connections,
        timeout=None,  # the guard's deadline bounds the wait
        socket_timeout=config.redis_timeout_s * 4,
        socket_connect_timeout=config.redis_timeout_s * 4,
        retry=Retry(NoBackoff(), 1),
        protocol=2,
    )
    return Redis(connection_pool=pool)


def build_embedder(env: Env) -> Embedder:
    models = ModelSettings.load(env)
    return Embedder(
        models.embed_model_path,
        model_id=models.embed_model_id,
        window_ms=models.embed_window_ms,
        max_batch=models.embed_max_batch,
        batching=models.embed_batching,
        threads=models.torch_threads,
        backend=models.model_backend,
    )


def build_verifier(config: CacheConfig, embedder: Embedder) -> Verifier:
    """COSTMESH_CACHE_VERIFIER: the learned model at the operator's false-hit bound (default),
    the rule checks, or a plain cosine threshold at COSTMESH_CACHE_MIN_SIMILARITY."""
    if config.verifier == "rules":
        return RuleVerifier(config.min_similarity)
    if config.verifier == "cosine":
        return CosineVerifier(config.min_similarity)
    from costmesh.verification.artifact import DEFAULT_ARTIFACT, VerifierArtifact

    artifact = VerifierArtifact.load(config.verifier_artifact or DEFAULT_ARTIFACT)
    if artifact.embedding_model != embedder.model_id:
        raise ConfigError(f"verifier artifact was trained on {artifact.embedding_model!r} embeddings, "
                          f"the cache embeds with {embedder.model_id!r}: set COSTMESH_CACHE_VERIFIER=rules "
                          "or retrain with costmesh train-verifier")
    return LearnedVerifier(artifact, embedder, config.max_false_hit_rate, config.encoding_cache,
                           encoding_cache_bytes=int(config.encoding_cache_mb * 2**20))


def token_counter() -> Callable[[str], int]:
    try:
        from costmesh.tokens import count_tokens
    except ImportError:
        return word_count
    return count_tokens


def make_mount(embedder: Embedder | None = None):
    """The mount coroutine; tests pass an already loaded `embedder` to share it."""

    async def mount(runtime: Runtime) -> Mounted:
        env = runtime.env
        config = CacheConfig.from_env(env)
        url = config.require("redis_url")
        catalog = load_catalog(runtime.settings.catalog)
        own_embedder = embedder is None
        model = embedder or await asyncio.to_thread(build_embedder, env)
        verifier = await asyncio.to_thread(build_verifier, config, model)  # may load the cross-encoder
        core = CacheCore(
            client=redis_client(url, config),
            redis_url=url,
            embedder=model,
            verifier=verifier,
            config=config,
            embedding_usd_per_mtok=catalog.embedding_usd_per_mtok,
            count_tokens=token_counter(),
            tracer=runtime.tracer_provider.get_tracer("costmesh.cache"),
        )
        await core.start()
        loop = asyncio.get_running_loop()
        metrics = CacheMetrics(runtime.meter, core, loop)
        shadow_metrics = ShadowMetrics(  # the tenants' live false-hit estimates, from Redis
            runtime.meter, lambda: read_on_loop(loop, core.shadow.estimates, config.admin_timeout_s + 1.0),
            core.shadow.settings, max_tenants=config.metrics_max_tenants)
        point = getattr(core.verifier, "point", None)
        runtime.log.info("cache ready", index=core.index_name, model=model.model_id, dims=model.dims,
                         verifier=core.verifier.name, min_similarity=core.verifier_floor, ttl_s=config.ttl_s,
                         max_false_hit_rate=config.max_false_hit_rate if point else None,
                         threshold=point.threshold if point else None,
                         calibrated=point.__dict__ if point else None)

        async def close() -> None:
            metrics.close()
            shadow_metrics.close()
            await core.aclose()
            if own_embedder:
                await model.aclose()

        servicer = CacheServicer(core)
        return Mounted([Servicer(cache_pb2_grpc.add_CacheServiceServicer_to_server, servicer, FULL_NAME)], close)

    return mount


SPEC = ServiceSpec("cache", 50052, make_mount())
