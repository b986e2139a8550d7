"""What one Redis round trip costs the gateway's process in CPU, by the way it is made:
a registered script (what the cache's get-or-lock and store use), EVALSHA through
`execute_command`, a plain GET, and ten GETs in one pipeline. A cache miss makes two script
calls, so this bounds what a leaner Redis path could save on the miss path.

    .venv/bin/python -m loadtests.redis_call_cost [--calls 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from gateway.embedded import EmbeddedRedis
from gateway.redis_client import redis_client

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

    ways: list[tuple[str, Callable[[], Awaitable[Any]], int]] = [
        ("registered script (redis-py Script)", lambda: script(keys=["k"], args=[1, 2]), 1),
        (
            "EVALSHA via execute_command",
            lambda: client.execute_command("EVALSHA", script.sha, 1, "k", 1, 2),  # type: ignore[no-untyped-call]
            1,
        ),
        ("GET", lambda: client.get("k"), 1),
        ("10 GETs in one pipeline, per GET", pipelined, 10),
    ]
    results = []
    for name, call, per in ways:
        for _ in range(200):
            await call()
        started = time.process_time()
        for _ in range(calls // per):
            await call()
        results.append((name, (time.process_time() - started) / (calls // per) / per * 1e6))
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
