"""`gateway keys ...`: the admin API's key operations, straight against the key store.

The store is GATEWAY_AUTH_REDIS_URL or GATEWAY_REDIS_URL, or else the Redis of a running
`gateway up` (found in `<state-dir>/stack.json`). Keys are hashed with GATEWAY_KEY_PEPPER,
which must be the gateway's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import auth
from gateway.backends.redis.client import redis_client
from gateway.runtime.stack_state import stack_value
from gateway.settings import Settings
from resilience import CircuitBreaker, StoreUnavailable

T = TypeVar("T")


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = commands.add_parser("keys", help="API keys")
    actions = keys.add_subparsers(dest="keys_command", required=True)
    actions.add_parser("generate", help="print a fresh well-formed key (stores nothing)")

    create = actions.add_parser("create", help="create a key and print it (shown once)")
    create.add_argument("--name", required=True)
    create.add_argument("--model", action="append", default=[], help="model glob (repeatable)")
    create.add_argument("--admin", action="store_true")
    create.add_argument("--rate", type=float, help="requests per second (0: unlimited)")
    create.add_argument("--burst", type=int)
    create.add_argument("--expires-in", type=float, help="seconds until it expires")

    listed = actions.add_parser("list", help="list keys (no secrets)")
    revoke = actions.add_parser("revoke", help="revoke a key")
    revoke.add_argument("key_id")
    rotate = actions.add_parser("rotate", help="issue a replacement; the old key expires later")
    rotate.add_argument("key_id")
    rotate.add_argument("--overlap", type=float, help="seconds the old key keeps working")
    exported = actions.add_parser(
        "export", help="write every key record (hashes, never keys) as JSON lines, for a backup"
    )
    exported.add_argument("file", type=Path, help="where to write (mode 600)")
    imported = actions.add_parser(
        "import", help="put the records of an export back (after Redis lost its data)"
    )
    imported.add_argument("file", type=Path)
    for action in (create, listed, revoke, rotate, exported, imported):
        action.add_argument(
            "--state-dir", type=Path, help="of the `gateway up` to use (default: GATEWAY_STATE_DIR)"
        )


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.keys_command == "generate":
        print(auth.ApiKey.generate())
        return 0
    url = settings.key_store_url or stack_value(settings.state_dir, "redis")
    if url is None:
        print(
            "gateway: no key store: set GATEWAY_REDIS_URL, or start `gateway up` first",
            file=sys.stderr,
        )
        return 2
    try:
        return asyncio.run(_run(args, settings, url))
    except auth.UnknownKey as exc:
        print(f"gateway: no API key with id '{exc.args[0]}'", file=sys.stderr)
    except StoreUnavailable:
        print(f"gateway: the key store at {url} is unavailable", file=sys.stderr)
    return 1


async def _run(args: argparse.Namespace, settings: Settings, url: str) -> int:
    client = redis_client(url, timeout_s=5.0)
    try:
        service = auth.KeyService(
            auth.RedisKeyStore(client, CircuitBreaker("key store")),
            auth.KeyHasher(settings.key_pepper.get_secret_value().encode()),
            rotation_overlap_s=settings.key_rotation_overlap_s,
        )
        action: Callable[[], Awaitable[object]] = {
            "create": lambda: _create(service, args, settings),
            "list": lambda: _list(service),
            "revoke": lambda: _revoke(service, args.key_id),
            "rotate": lambda: _rotate(service, args.key_id, args.overlap),
            "export": lambda: _export(service, args.file),
            "import": lambda: _import(service, args.file),
        }[args.keys_command]
        await action()
        return 0
    finally:
        await client.aclose()


async def _create(service: auth.KeyService, args: argparse.Namespace, settings: Settings) -> None:
    rate = args.rate if args.rate is not None else settings.default_rate_limit_per_second
    issued = await service.create(
        args.name,
        models=args.model,
        admin=args.admin,
        rate_limit_per_second=rate,
        burst=args.burst,
        expires_in_s=args.expires_in,
    )
    _print({**issued.record.public(), "key": str(issued.key)})


async def _list(service: auth.KeyService) -> None:
    records = await service.list()
    print(f"{'id':<13} {'name':<24} {'admin':<5} {'models':<24} {'rate/s':>7} {'state':<8} expires")
    for record in records:
        state = (
            "revoked" if record.revoked_at else ("live" if record.is_live(_now()) else "expired")
        )
        print(
            f"{record.id:<13} {record.name[:24]:<24} {'yes' if record.admin else 'no':<5} "
            f"{','.join(record.models)[:24]:<24} {record.rate_limit_per_second:>7g} {state:<8} "
            f"{_time(record.expires_at)}"
        )


async def _revoke(service: auth.KeyService, key_id: str) -> None:
    _print((await service.revoke(key_id)).public())


async def _rotate(service: auth.KeyService, key_id: str, overlap: float | None) -> None:
    issued, old = await service.rotate(key_id, overlap)
    _print({**issued.record.public(), "key": str(issued.key), "replaces": old.public()})


async def _export(service: auth.KeyService, file: Path) -> None:
    records = await service.list()
    lines = "".join(record.model_dump_json() + "\n" for record in records)
    file.touch(mode=0o600)
    file.chmod(0o600)  # the records hold key hashes: for the operator's eyes only
    file.write_text(lines)
    print(f"exported {len(records)} key records to {file}")


async def _import(service: auth.KeyService, file: Path) -> None:
    lines = [line for line in file.read_text().splitlines() if line.strip()]
    records = [auth.KeyRecord.model_validate_json(line) for line in lines]
    print(f"imported {await service.restore(records)} key records from {file}")


def _print(document: dict[str, object]) -> None:
    print(json.dumps(document, indent=2))


def _now() -> float:
    return datetime.now(UTC).timestamp()


def _time(epoch: float | None) -> str:
    if epoch is None:
        return "never"
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")
