"""The shared shape of costmesh's server interceptors: wrap the project's own handlers
(coroutines and async generators) and let health and reflection pass through untouched."""

from __future__ import annotations

import inspect

import grpc


class HandlerWrappingInterceptor(grpc.aio.ServerInterceptor):
    """Subclasses say how to wrap a unary and a server-streaming behaviour."""

    def wrap_unary(self, method: str, behavior):
        raise NotImplementedError

    def wrap_stream(self, method: str, behavior):
        raise NotImplementedError

    def wrap_deserializer(self, deserializer):
        """The request deserializer the wrapped handler gets (unchanged unless overridden)."""
        return deserializer

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        if handler.unary_unary and inspect.iscoroutinefunction(handler.unary_unary):
            return grpc.unary_unary_rpc_method_handler(
                self.wrap_unary(method, handler.unary_unary),
                request_deserializer=self.wrap_deserializer(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream and inspect.isasyncgenfunction(handler.unary_stream):
            return grpc.unary_stream_rpc_method_handler(
                self.wrap_stream(method, handler.unary_stream),
                request_deserializer=self.wrap_deserializer(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        return handler
