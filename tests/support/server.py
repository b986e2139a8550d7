"""Run the gateway app under a real uvicorn server in a background thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

import uvicorn
from opentelemetry.sdk.trace import TracerProvider

from devstack.ports import free_port
from gateway.app import create_app
from gateway.runtime.serving import server_config
from gateway.settings import Settings


@contextmanager
def running_gateway(
    settings: Settings,
    tracer_provider: TracerProvider | None = None,
    access_stream: BinaryIO | None = None,
) -> Iterator[str]:
    """Serve `create_app(settings)` on a free loopback port; yield its base URL."""
    port = free_port()
    app = create_app(settings, tracer_provider, access_stream)
    config = server_config(
        settings.model_copy(update={"log_level": "WARNING"}), app, "127.0.0.1", port
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"gateway-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the gateway did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
