"""The tenant a call acts for, inside the mesh.

The gateway authenticates the caller's API key and sets the tenant on what it sends on; each
call between services carries a service token naming that tenant (`mesh_auth`). A service
checks every `tenant_id` field of the request against its token (`TenantFields.enforce`: a
field naming another tenant is refused `PERMISSION_DENIED`, an empty one is filled in), so a
servicer reading the field reads the authenticated tenant, and `call_tenant()` says the same
for code that has no request at hand. Calls the service makes while serving a call carry the
tenant on (`acting_tenant`), as the router does to the providers.

No gRPC here: the fields are found from the messages' descriptors.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from costmesh.errors import PermissionDenied

TENANT_FIELD = "tenant_id"
# The tenant of the call being served, from its service token; None outside one (or auth off).
_CALL_TENANT: ContextVar[str | None] = ContextVar("costmesh_call_tenant", default=None)

Path = tuple[tuple[str, bool], ...]  # (field name, repeated) from the message down to a tenant_id


def call_tenant() -> str | None:
    """The tenant the call being served acts for, as its service token says; None when there is
    no such call (a background task, a tenant-less call, or service authentication off)."""
    return _CALL_TENANT.get()


@contextlib.contextmanager
def acting_tenant(tenant: str | None) -> Iterator[None]:
    """Within: `call_tenant()` is `tenant`, and calls to other services carry it in their tokens."""
    token = _CALL_TENANT.set(tenant or None)
    try:
        yield
    finally:
        try:
            _CALL_TENANT.reset(token)
        except ValueError:  # a stream closed later by the event loop, in another context
            pass


class TenantFields:
    """Every `tenant_id` string field of a request message, nested and repeated ones included
    (paths computed once per message type)."""

    def __init__(self) -> None:
        self._paths: dict[str, tuple[Path, ...]] = {}

    def paths(self, descriptor: Descriptor) -> tuple[Path, ...]:
        found = self._paths.get(descriptor.full_name)
        if found is None:
            found = self._paths[descriptor.full_name] = tuple(_paths(descriptor, ()))
        return found

    def first(self, message: Message) -> str:
        """The first non-empty tenant the message names ("" if none)."""
        for path in self.paths(message.DESCRIPTOR):
            for _where, holder in _holders(message, path, TENANT_FIELD):
                value = getattr(holder, TENANT_FIELD)
                if value:
                    return value
        return ""

    def enforce(self, message: Message, tenant: str | None) -> None:
        """Refuse a field naming another tenant than `tenant` (the token's; None: a token for no
        tenant, so no field may name one); fill empty fields with `tenant`."""
        for path in self.paths(message.DESCRIPTOR):
            for where, holder in _holders(message, path, TENANT_FIELD):
                value = getattr(holder, TENANT_FIELD)
                if not value:
                    if tenant:
                        setattr(holder, TENANT_FIELD, tenant)
                elif value != tenant:
                    raise PermissionDenied(
                        f"{where}: names a tenant this call's service token was not issued for"
                    )


def _paths(descriptor: Descriptor, seen: tuple[str, ...]) -> Iterator[Path]:
    if descriptor.full_name in seen:  # a recursive message type: walked once per path
        return
    seen = (*seen, descriptor.full_name)
    for field in descriptor.fields:
        repeated = _is_repeated(field)
        if field.name == TENANT_FIELD and field.type == FieldDescriptor.TYPE_STRING and not repeated:
            yield ((field.name, False),)
        elif field.type == FieldDescriptor.TYPE_MESSAGE and not field.message_type.GetOptions().map_entry:
            for rest in _paths(field.message_type, seen):
                yield ((field.name, repeated), *rest)


def _is_repeated(field: FieldDescriptor) -> bool:
    is_repeated = getattr(field, "is_repeated", None)  # protobuf >= 5.28; `label` is deprecated
    if is_repeated is not None:
        return bool(is_repeated() if callable(is_repeated) else is_repeated)
    return field.label == FieldDescriptor.LABEL_REPEATED


def _holders(message: Message, path: Path, leaf: str, where: str = "") -> Iterator[tuple[str, Message]]:
    """(dotted field name, the message holding the leaf field) for every message along `path`."""
    name, repeated = path[0]
    if len(path) == 1:
        yield f"{where}{leaf}", message
        return
    if repeated:
        for i, item in enumerate(getattr(message, name)):
            yield from _holders(item, path[1:], leaf, f"{where}{name}[{i}].")
    elif message.HasField(name):
        yield from _holders(getattr(message, name), path[1:], leaf, f"{where}{name}.")

