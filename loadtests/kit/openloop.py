"""An open-loop load generator: requests at a fixed arrival rate, whatever the answers.

wrk keeps a fixed number of requests in flight (closed loop), so an overloaded server
simply slows it down. Overload behaviour needs arrivals that do not wait: this sends
`rate` requests per second on a schedule, each on its own task, and records every status.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from loadtests.kit.stats import percentile


@dataclass
class OpenLoopResult:
    rate: float
    seconds: float
    statuses: Counter[int] = field(default_factory=Counter)
    admitted_latencies: list[float] = field(default_factory=list)
    retry_after_seen: int = 0

    @property
    def goodput(self) -> float:
        return self.statuses[200] / self.seconds

    @property
    def shed(self) -> int:
        return self.statuses[503] + self.statuses[429]

    def admitted_p99_ms(self) -> float:
        return percentile(sorted(self.admitted_latencies), 0.99) * 1000


async def _run(
    url: str, body: Callable[[int], bytes], headers: dict[str, str], rate: float, seconds: float
) -> OpenLoopResult:
    result = OpenLoopResult(rate, seconds)
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(n: int) -> None:
            started = time.perf_counter()
            try:
                async with session.post(url, data=body(n), headers=headers) as response:
                    await response.read()
                    status = response.status
                    if "Retry-After" in response.headers:
                        result.retry_after_seen += 1
            except (TimeoutError, aiohttp.ClientError):
                status = 0
            result.statuses[status] += 1
            if status == 200:
                result.admitted_latencies.append(time.perf_counter() - started)

        tasks = []
        start = time.perf_counter()
        for n in range(int(rate * seconds)):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(n)))
        await asyncio.gather(*tasks)
    return result


def open_loop(
    url: str, body: Callable[[int], bytes], headers: dict[str, str], rate: float, seconds: float
) -> OpenLoopResult:
    return asyncio.run(_run(url, body, headers, rate, seconds))
