"""`costmesh keys`: create, revoke and list the gateway's per-tenant API keys."""

from __future__ import annotations

import datetime
import os

from costmesh.errors import ConfigError
from costmesh.gateway.auth import KeyStore


def add_arguments(parser) -> None:
    parser.add_argument("--file", default=os.environ.get("COSTMESH_API_KEYS_FILE"),
                        help="the key file (default: $COSTMESH_API_KEYS_FILE)")
    actions = parser.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="mint a key for a tenant; prints the key once")
    create.add_argument("--tenant", required=True)
    create.add_argument("--name", default="", help="a label, e.g. the application using the key")
    revoke = actions.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    actions.add_parser("list", help="list key ids, tenants and states (never the keys)")


def run(args) -> int:
    if not args.file:
        raise ConfigError("give --file or set COSTMESH_API_KEYS_FILE")
    store = KeyStore(args.file)
    if args.action == "create":
        key, record = store.create(args.tenant, args.name)
        print(f"key_id {record.key_id}  tenant {record.tenant}")
        print(key)
    elif args.action == "revoke":
        record = store.revoke(args.key_id)
        print(f"revoked {record.key_id} (tenant {record.tenant})")
    else:
        for record in store.records():
            created = datetime.datetime.fromtimestamp(record.created_at, datetime.UTC).strftime("%Y-%m-%d %H:%M")
            state = "active" if record.active else "revoked"
            print(f"{record.key_id}  {record.tenant:<20} {state:<8} {created}  {record.name}")
    return 0
