"""Where the Tritons are: URLs given, and DNS names resolved again and again.

GATEWAY_TRITON_URLS lists sources, comma-separated:

    http://host:port[/path][#metrics=PORT]      one Triton
    dns+http://name:port[/path][#metrics=PORT]  one Triton per address `name` resolves to
                                                (a Kubernetes headless Service), resolved
                                                again every GATEWAY_TRITON_RESOLVE_S

The metrics port (for Triton's queue, `nv_inference_pending_request_count`) is the
fragment's, else GATEWAY_TRITON_METRICS_PORT (0: none). A name that stops resolving keeps
the addresses it had last (a DNS hiccup must not empty the set).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Sequence

import httpx

from gateway.backends.triton.endpoint import Address

logger = logging.getLogger(__name__)

DNS_SCHEME = "dns+"


class Discovery:
    """The current Triton addresses of a list of sources."""

    def __init__(self, sources: Sequence[str], metrics_port: int) -> None:
        self.sources = [source.strip() for source in sources if source.strip()]
        self._metrics_port = metrics_port
        self._resolved: dict[str, list[Address]] = {}

    def static(self) -> list[Address]:
        return [
            Address.parse(source, self._metrics_port)
            for source in self.sources
            if not source.startswith(DNS_SCHEME)
        ]

    async def resolve(self) -> list[Address] | None:
        """Every address now (None when no source is a DNS name)."""
        names = [source for source in self.sources if source.startswith(DNS_SCHEME)]
        if not names:
            return None
        for source in names:
            try:
                self._resolved[source] = await self._lookup(source)
            except OSError as exc:
                logger.warning("could not resolve %s (%s); keeping its last addresses", source, exc)
        return self.static() + [a for s in names for a in self._resolved.get(s, [])]

    async def _lookup(self, source: str) -> list[Address]:
        plain, hash_mark, fragment = source.removeprefix(DNS_SCHEME).partition("#")
        url = httpx.URL(plain)
        port = url.port or 80
        infos = await asyncio.get_running_loop().getaddrinfo(
            url.host, port, type=socket.SOCK_STREAM
        )
        hosts = sorted({str(info[4][0]) for info in infos})
        path = url.path.rstrip("/")
        return [
            Address.parse(
                f"http://{f'[{host}]' if ':' in host else host}:{port}{path}{hash_mark}{fragment}",
                self._metrics_port,
            )
            for host in hosts
        ]
