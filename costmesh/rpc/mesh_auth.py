"""Credentials between services: a short-lived service token on every call inside the mesh.

Only the mesh may call the cache, classifier, router, providers, batches and inference
services. Every call a service makes to another one carries a JWT (HS256, PyJWT) in the
`costmesh-service-token` metadata, signed with the mesh secret (`mesh_secret`):

    iss     the calling service ("gateway", "router", ...)
    aud     the called gRPC service ("costmesh.cache.v1.CacheService")
    iat/exp issued now, valid `COSTMESH_MESH_TOKEN_TTL_S` (default 60 s; 10 s leeway for skew)
    tenant  the tenant the call acts for, when it acts for one

A client mints one token per (audience, tenant) and reuses it for half its life; a server
keeps the tokens it verified until they expire, so a call costs a dictionary look-up.
Every service except the public gateway refuses a call without a valid token for itself
(none, forged, expired, or issued for another service) with `UNAUTHENTICATED`
(`ErrorInfo` reason `SERVICE_TOKEN`). The gRPC health service stays open for probes;
reflection needs a token like any other method.

The tenant: the gateway authenticates the caller's API key and builds every request it sends
on with the key's tenant; its tokens name the tenant of the request they travel with. A
service checks each `tenant_id` field of a request against its token (`tenancy`): another
tenant's is refused `PERMISSION_DENIED`, an empty one is filled in; while serving the call
it acts for the token's tenant (`tenancy.call_tenant()`), and the calls it makes carry that
tenant on (the router's to the providers). Calls made outside any call (the batches poller)
name the tenant of their request.

Env: COSTMESH_MESH_AUTH (`on`, the default; `off` only for development, and the default only
where COSTMESH_AUTH=off turns the gateway's keys off too), COSTMESH_MESH_SECRET_FILE (required
when on), COSTMESH_MESH_TOKEN_TTL_S.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import grpc
import jwt
import structlog
from google.protobuf.message import Message

from costmesh.config import Env
from costmesh.errors import ConfigError, ServiceUnauthenticated
from costmesh.rpc.mesh_secret import read_secret
from costmesh.rpc.tenancy import TenantFields, acting_tenant, call_tenant
from costmesh.server_settings import DEFAULT_MESH_TOKEN_TTL_S, ServerSettings

log = structlog.get_logger()

TOKEN_HEADER = "costmesh-service-token"
OPEN_PREFIXES = ("/grpc.health.v1.Health/",)  # probes need no token
ALGORITHM = "HS256"
DEFAULT_TTL_S = DEFAULT_MESH_TOKEN_TTL_S
LEEWAY_S = 10.0
MAX_CACHED = 4096
MAX_TOKEN_CHARS = 4096


def audience_of(method: str | bytes) -> str:
    """`/costmesh.cache.v1.CacheService/Lookup` -> `costmesh.cache.v1.CacheService`."""
    if isinstance(method, bytes):
        method = method.decode("ascii", errors="replace")
    return method.lstrip("/").partition("/")[0]


@dataclass(frozen=True)
class Claims:
    issuer: str
    audience: str
    tenant: str | None
    expires_at: float


class ServiceTokens:
    """Mints this service's tokens and verifies its callers'. `keys`: the mesh secret's, the
    signing one first."""

    def __init__(self, keys: Sequence[bytes], issuer: str, ttl_s: float = DEFAULT_TTL_S,
                 clock: Callable[[], float] = time.time):
        if not keys:
            raise ConfigError("the mesh secret has no key")
        if ttl_s <= 0:
            raise ConfigError("COSTMESH_MESH_TOKEN_TTL_S must be > 0")
        self._keys = tuple(keys)
        self.issuer = issuer
        self._ttl_s = ttl_s
        self._clock = clock
        self._minted: dict[tuple[str, str | None], tuple[str, float]] = {}
        self._verified: dict[str, Claims] = {}

    def mint(self, audience: str, tenant: str | None = None) -> str:
        now = self._clock()
        cached = self._minted.get((audience, tenant))
        if cached is not None and now < cached[1]:
            return cached[0]
        claims = {"iss": self.issuer, "aud": audience, "iat": int(now), "exp": int(now + self._ttl_s)}
        if tenant:
            claims["tenant"] = tenant
        token = jwt.encode(claims, self._keys[0], algorithm=ALGORITHM)
        if len(self._minted) >= MAX_CACHED:
            self._minted.clear()
        self._minted[(audience, tenant)] = (token, now + self._ttl_s / 2)
        return token

    def verify(self, token: str | None, audience: str) -> Claims:
        """The token's claims; ServiceUnauthenticated when it is missing, not ours, expired or for
        another service."""
        if not token:
            raise ServiceUnauthenticated(
                f"{audience}: a service token is required (only the mesh may call this service)")
        now = self._clock()
        claims = self._verified.get(token)
        if claims is not None and claims.audience == audience and now < claims.expires_at + LEEWAY_S:
            return claims
        claims = self._decode(token, audience)
        if len(self._verified) >= MAX_CACHED:
            self._verified.clear()
        self._verified[token] = claims
        return claims

    def _decode(self, token: str, audience: str) -> Claims:
        if len(token) > MAX_TOKEN_CHARS:
            raise ServiceUnauthenticated(f"{audience}: the service token is not valid")
        problem = "not valid"
        for key in self._keys:
            try:
                raw = jwt.decode(token, key, algorithms=[ALGORITHM], audience=audience, leeway=LEEWAY_S,
                                 options={"require": ["iss", "aud", "iat", "exp"]})
            except jwt.InvalidSignatureError:
                continue  # another key of the secret may have signed it
            except jwt.ExpiredSignatureError:
                problem = "expired"
                break
            except jwt.InvalidAudienceError:
                problem = "issued for another service"
                break
            except jwt.InvalidTokenError:
                break
            tenant = raw.get("tenant")
            if tenant is not None and not isinstance(tenant, str):
                break
            return Claims(str(raw["iss"]), audience, tenant or None, float(raw["exp"]))
        raise ServiceUnauthenticated(f"{audience}: the service token is {problem}")


# -- client side: every call of a mesh channel carries a token --------------------------------


class _Attach:
    def __init__(self, tokens: ServiceTokens, fields: TenantFields):
        self._tokens = tokens
        self._fields = fields

    def _details(self, details: grpc.aio.ClientCallDetails, request) -> grpc.aio.ClientCallDetails:
        tenant = call_tenant()
        if tenant is None and isinstance(request, Message):
            tenant = self._fields.first(request) or None
        token = self._tokens.mint(audience_of(details.method), tenant)
        metadata = grpc.aio.Metadata(*((k, v) for k, v in (details.metadata or ()) if k != TOKEN_HEADER))
        metadata.add(TOKEN_HEADER, token)
        return grpc.aio.ClientCallDetails(details.method, details.timeout, metadata, details.credentials,
                                          details.wait_for_ready)


class _AttachUnaryUnary(_Attach, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation, client_call_details, request):
        return await continuation(self._details(client_call_details, request), request)


class _AttachUnaryStream(_Attach, grpc.aio.UnaryStreamClientInterceptor):
    # grpc.aio files an interceptor under one kind only, hence a class per kind.
    async def intercept_unary_stream(self, continuation, client_call_details, request):
        return await continuation(self._details(client_call_details, request), request)


class _AttachStreamUnary(_Attach, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation, client_call_details, request_iterator):
        return await continuation(self._details(client_call_details, None), request_iterator)


class _AttachStreamStream(_Attach, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        return await continuation(self._details(client_call_details, None), request_iterator)


# -- server side: refuse calls without a valid token, act for the token's tenant ----------------


def _token_of(metadata) -> str | None:
    for key, value in metadata or ():
        if key == TOKEN_HEADER:
            return value if isinstance(value, str) else value.decode("ascii", errors="replace")
    return None


def _unread(_data: bytes) -> None:
    return None  # a refused call's request is never parsed


def _refusing(handler: grpc.RpcMethodHandler, message: str) -> grpc.RpcMethodHandler:
    serializer = handler.response_serializer
    if handler.unary_unary:
        async def unary(_request, _context):
            raise ServiceUnauthenticated(message)

        return grpc.unary_unary_rpc_method_handler(unary, request_deserializer=_unread, response_serializer=serializer)
    if handler.unary_stream:
        async def stream(_request, _context):
            raise ServiceUnauthenticated(message)
            yield  # an async generator, like the handlers it stands for

        return grpc.unary_stream_rpc_method_handler(stream, request_deserializer=_unread,
                                                    response_serializer=serializer)

    # client-streaming methods (reflection): no error interceptor of the bootstrap wraps them
    async def abort(_requests, context):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    async def abort_stream(_requests, context):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
        yield  # an async generator: what OpenTelemetry's interceptor iterates

    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(abort, request_deserializer=_unread,
                                                    response_serializer=serializer)
    return grpc.stream_stream_rpc_method_handler(abort_stream, request_deserializer=_unread,
                                                 response_serializer=serializer)


def _authenticated(handler: grpc.RpcMethodHandler, claims: Claims, fields: TenantFields) -> grpc.RpcMethodHandler:
    """The handler, checking the request's tenant fields and acting for the token's tenant."""
    if handler.unary_unary:
        behavior = handler.unary_unary

        async def unary(request, context):
            if isinstance(request, Message):
                fields.enforce(request, claims.tenant)
            with acting_tenant(claims.tenant):
                return await behavior(request, context)

        return grpc.unary_unary_rpc_method_handler(unary, request_deserializer=handler.request_deserializer,
                                                   response_serializer=handler.response_serializer)
    if handler.unary_stream:
        behavior = handler.unary_stream

        async def stream(request, context):
            if isinstance(request, Message):
                fields.enforce(request, claims.tenant)
            with acting_tenant(claims.tenant):
                async for item in behavior(request, context):
                    yield item

        return grpc.unary_stream_rpc_method_handler(stream, request_deserializer=handler.request_deserializer,
                                                    response_serializer=handler.response_serializer)
    return handler  # client-streaming methods (reflection): authenticated, carry no tenant fields


class MeshAuthInterceptor(grpc.aio.ServerInterceptor):
    """Place last (innermost): the bootstrap's error interceptor then logs a refused call as one
    `rpc` line and maps it through the one error table."""

    def __init__(self, tokens: ServiceTokens, fields: TenantFields):
        self._tokens = tokens
        self._fields = fields

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if isinstance(method, bytes):
            method = method.decode("ascii", errors="replace")
        if handler is None or method.startswith(OPEN_PREFIXES):
            return handler
        try:
            claims = self._tokens.verify(_token_of(handler_call_details.invocation_metadata), audience_of(method))
        except ServiceUnauthenticated as exc:
            return _refusing(handler, str(exc))
        return _authenticated(handler, claims, self._fields)


# -- configuration -------------------------------------------------------------------------------


@dataclass
class MeshAuth:
    """This service's mesh credentials; `tokens` None: service authentication is off."""

    tokens: ServiceTokens | None

    @property
    def enabled(self) -> bool:
        return self.tokens is not None

    @classmethod
    def from_env(cls, env: Env | None, service: str) -> MeshAuth:
        return cls.from_settings(ServerSettings.load(env), service)

    @classmethod
    def from_settings(cls, settings: ServerSettings, service: str) -> MeshAuth:
        if not settings.mesh_auth_on:
            log.warning("SERVICE AUTHENTICATION IS OFF (COSTMESH_MESH_AUTH=off): anyone who reaches this "
                        "service's port may call it as any tenant. Development only; never deploy like this.")
            return cls(None)
        path = settings.mesh_secret_file
        if path is None:
            raise ConfigError(
                "COSTMESH_MESH_SECRET_FILE is required: the mesh secret every service signs its calls with "
                "(make one with `costmesh mesh-secret FILE`); set COSTMESH_MESH_AUTH=off only for local development"
            )
        return cls(ServiceTokens(read_secret(path), service, settings.mesh_token_ttl_s))

    def client_interceptors(self) -> list[grpc.aio.ClientInterceptor]:
        """For every channel to another costmesh service (`Runtime.channel`)."""
        if self.tokens is None:
            return []
        fields = TenantFields()
        return [kind(self.tokens, fields) for kind in
                (_AttachUnaryUnary, _AttachUnaryStream, _AttachStreamUnary, _AttachStreamStream)]

    def server_interceptor(self) -> MeshAuthInterceptor | None:
        return None if self.tokens is None else MeshAuthInterceptor(self.tokens, TenantFields())


def mesh_client_interceptors(env: Env, caller: str) -> list[grpc.aio.ClientInterceptor]:
    """Interceptors for a tool (bench, eval) calling services directly with the mesh's env."""
    return MeshAuth.from_env(env, caller).client_interceptors()
