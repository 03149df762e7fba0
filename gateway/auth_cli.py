"""`costmesh keys`: create, revoke and list the gateway's API keys: per-tenant keys, and admin keys
(`create --admin`) for the dashboard and its API (`/dashboard`, `/admin/api/v1` on the HTTP port)."""

from __future__ import annotations

import datetime
import os

from costmesh.errors import ConfigError
from costmesh.gateway.auth import ADMIN_ROLE, TENANT_ROLE, KeyStore


def add_arguments(parser) -> None:
    parser.add_argument("--file", default=os.environ.get("COSTMESH_API_KEYS_FILE"),
                        help="the key file (default: $COSTMESH_API_KEYS_FILE)")
    actions = parser.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="mint a key for a tenant (or, --admin, an admin key); "
                                              "prints the key once")
    create.add_argument("--tenant", default="", help="the tenant the key makes requests for (required without --admin)")
    create.add_argument("--admin", action="store_true",
                        help="an admin key: the dashboard and its API (/dashboard on the gateway's HTTP port); "
                             "it belongs to no tenant and makes no requests")
    create.add_argument("--name", default="", help="a label, e.g. the application using the key")
    revoke = actions.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    actions.add_parser("list", help="list key ids, tenants, roles and states (never the keys)")


def run(args) -> int:
    if not args.file:
        raise ConfigError("give --file or set COSTMESH_API_KEYS_FILE")
    store = KeyStore(args.file)
    if args.action == "create":
        if args.admin and args.tenant:
            raise ConfigError("--admin: an admin key belongs to no tenant; leave --tenant out")
        if not args.admin and not args.tenant.strip():
            raise ConfigError("--tenant NAME is required (or --admin for an admin key)")
        key, record = store.create(args.tenant, args.name, role=ADMIN_ROLE if args.admin else TENANT_ROLE)
        print(f"key_id {record.key_id}  " + ("admin (the dashboard; no requests)" if record.admin
                                              else f"tenant {record.tenant}"))
        print(key)
    elif args.action == "revoke":
        record = store.revoke(args.key_id)
        print(f"revoked {record.key_id} (" + ("admin" if record.admin else f"tenant {record.tenant}") + ")")
    else:
        for record in store.records():
            created = datetime.datetime.fromtimestamp(record.created_at, datetime.UTC).strftime("%Y-%m-%d %H:%M")
            state = "active" if record.active else "revoked"
            who = "(admin)" if record.admin else record.tenant
            print(f"{record.key_id}  {who:<20} {state:<8} {created}  {record.name}")
    return 0
