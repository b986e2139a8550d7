"""What one Redis round trip costs the gateway's process in CPU, by the way it is made:
a registered script through redis-py, EVALSHA through `execute_command`, a plain GET, ten
GETs in one pipeline, and the script's EVALSHA on the gateway's own connection
(`gateway.backends.redis.wire`, what the cache's get-or-lock and store use on a plain Redis)
alone and ten in one turn. A cache miss makes two script calls.

    .venv/bin/python -m loadtests.investigations.redis_call_cost [--calls 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from devstack import EmbeddedRedis
from gateway.backends.redis.client import redis_client
from gateway.backends.redis.wire import RedisWire, WireAddress

SCRIPT = "return redis.call('GET', KEYS[1])"


async def measure(url: str, calls: int) -> list[tuple[str, float]]:
    client = redis_client(url, 2.0)
    script = client.register_script(SCRIPT)
    await client.set("k", b"v" * 100)
    await script(keys=["k"], args=[])

    async def pipelined() -> Any:
        async with client.pipeline(transaction=False) as pipe:
            for _ in range(10):
                pipe.get("k")
            return await pipe.execute()

    address = WireAddress.of(client)
    if address is None:  # cannot happen: the embedded Redis is a plain redis:// URL
        raise SystemExit(f"{url} is not a plain Redis")
    wire = RedisWire(address)

    def on_wire() -> Awaitable[Any]:
        return wire.call("EVALSHA", script.sha, 1, "k", 1, 2)

    async def ten_on_wire() -> Any:
        return await asyncio.gather(*(on_wire() for _ in range(10)))

    ways: list[tuple[str, Callable[[], Awaitable[Any]], int]] = [
        ("registered script (redis-py Script)", lambda: script(keys=["k"], args=[1, 2]), 1),
        (
            "EVALSHA via execute_command",
            lambda: client.execute_command("EVALSHA", script.sha, 1, "k", 1, 2),  # type: ignore[no-untyped-call]
            1,
        ),
        ("GET", lambda: client.get("k"), 1),
        ("10 GETs in one pipeline, per GET", pipelined, 10),
        ("EVALSHA on the gateway's own connection (RedisWire)", on_wire, 1),
        ("10 EVALSHAs in one turn on it, per call", ten_on_wire, 10),
    ]
    results = []
    for name, call, per in ways:
        for _ in range(200):
            await call()
        started = time.process_time()
        for _ in range(calls // per):
            await call()
        results.append((name, (time.process_time() - started) / (calls // per) / per * 1e6))
    wire.close()
    await client.aclose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        server = EmbeddedRedis(Path(folder), persistent=False)
        url = server.start()
        try:
            results = asyncio.run(measure(url, args.calls))
        finally:
            server.stop()
    print("| call | client CPU µs per command |")
    print("|---|---:|")
    for name, cost in results:
        print(f"| {name} | {cost:.1f} |")


if __name__ == "__main__":
    main()
