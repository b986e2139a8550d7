"""Micro-benchmark: authenticating a remembered key in-process (no Redis round trip).

    .venv/bin/python -m loadtests.investigations.auth_bench [--iterations 200000]

Times, per call, on one core: parsing a key (shape and checksum), its HMAC-SHA256, and the
whole `Authenticator.authenticate` of a key it remembers (what every request with a
recently seen key pays). Best of 5 runs; compare within a run.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable

from auth import ApiKey, Authenticator, InMemoryKeyStore, KeyHasher, KeyService


def best_of(runs: int, iterations: int, step: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        for _ in range(iterations):
            step()
        best = min(best, (time.perf_counter() - started) / iterations)
    return best


async def authenticate_timing(iterations: int, text: str, authenticator: Authenticator) -> float:
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(iterations):
            await authenticator.authenticate(text)
        best = min(best, (time.perf_counter() - started) / iterations)
    return best


async def main(iterations: int) -> None:
    store = InMemoryKeyStore()
    hasher = KeyHasher(b"benchmark-pepper-0123456789abcdef")
    issued = await KeyService(store, hasher).create("bench", models=["*"])
    text = str(issued.key)
    authenticator = Authenticator(store, hasher, remember_s=3600)
    await authenticator.authenticate(text)  # now remembered

    parse = best_of(5, iterations, lambda: ApiKey.parse(text))
    digest = best_of(5, iterations, lambda: hasher.hash(issued.key))
    whole = await authenticate_timing(iterations, text, authenticator)
    print("| step | µs per call | calls/s on one core |")
    print("|---|---:|---:|")
    for name, seconds in (
        ("parse key (shape + CRC32 checksum)", parse),
        ("HMAC-SHA256 of the secret", digest),
        ("authenticate a remembered key (all of it)", whole),
    ):
        print(f"| {name} | {seconds * 1e6:.2f} | {1 / seconds:,.0f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--iterations", type=int, default=200_000)
    asyncio.run(main(parser.parse_args().iterations))
