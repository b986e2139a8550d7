"""A Triton that answers wrongly: a pass-through HTTP proxy in front of a real Triton that,
when told to, alters the answers of inference calls after Triton computed them (a broken or
misconfigured Triton, or something else at its address). Every other call passes as is.

Runs uvicorn in a thread of the test process on a free loopback port; `stop()` ends it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import uvicorn

from devstack.ports import free_port

Corruption = Callable[[dict[str, Any], bytes], tuple[dict[str, Any], bytes]]


def _first_float_output(document: dict[str, Any]) -> dict[str, Any]:
    return next(o for o in document["outputs"] if o["datatype"] == "FP32")


def _rename_model(document: dict[str, Any], data: bytes) -> tuple[dict[str, Any], bytes]:
    return {**document, "model_name": "someone_else"}, data


def _swap_shape(document: dict[str, Any], data: bytes) -> tuple[dict[str, Any], bytes]:
    output = _first_float_output(document)
    output["shape"] = list(reversed(output["shape"]))  # same size, wrong shape
    return document, data


def _retype(document: dict[str, Any], data: bytes) -> tuple[dict[str, Any], bytes]:
    output = _first_float_output(document)
    output["datatype"] = "INT32"  # same size, wrong datatype
    return document, data


def _extra_output(document: dict[str, Any], data: bytes) -> tuple[dict[str, Any], bytes]:
    extra: dict[str, Any] = {"name": "extra", "datatype": "FP32", "shape": [1, 1]}
    extra["parameters"] = {"binary_data_size": 4}
    return {**document, "outputs": [*document["outputs"], extra]}, data + b"\0\0\0\0"


def _short_data(document: dict[str, Any], data: bytes) -> tuple[dict[str, Any], bytes]:
    """Sizes that do not add up: the last output's data is 4 bytes short."""
    last = document["outputs"][-1]
    last["parameters"]["binary_data_size"] -= 4
    return document, data[:-4]


CORRUPTIONS: dict[str, Corruption] = {
    "model name": _rename_model,
    "shape": _swap_shape,
    "datatype": _retype,
    "extra output": _extra_output,
    "sizes": _short_data,
}


class CorruptingProxy:
    """Forwards to `upstream`; `corruption` (a key of CORRUPTIONS, "garbage", "huge" or
    None) says what becomes of inference answers."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.corruption: str | None = None
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            self._app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            interface="asgi3",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self) -> CorruptingProxy:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            assert time.monotonic() < deadline, "the proxy did not start"
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(30)

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {
            k.decode(): v.decode()
            for k, v in scope["headers"]
            if k.lower() not in (b"host", b"content-length")
        }
        query = scope["query_string"].decode()
        url = self.upstream + scope["path"] + (f"?{query}" if query else "")
        async with httpx.AsyncClient(timeout=60) as client:
            answer = await client.request(scope["method"], url, headers=headers, content=body)
        status, content = answer.status_code, answer.content
        out_headers = [
            (k.encode(), v.encode())
            for k, v in answer.headers.items()
            if k.lower() not in ("content-length", "inference-header-content-length", "connection")
        ]
        length = answer.headers.get("inference-header-content-length")
        if scope["path"].endswith("/infer") and status == 200 and self.corruption:
            content, length = self._corrupted(content, length)
        if length is not None:
            out_headers.append((b"inference-header-content-length", str(length).encode()))
        out_headers.append((b"content-length", str(len(content)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": out_headers})
        await send({"type": "http.response.body", "body": content})

    def _corrupted(self, content: bytes, length: str | None) -> tuple[bytes, str | None]:
        if self.corruption == "garbage":
            return b"\x00not an answer", None
        if self.corruption == "huge":
            return content + b"\0" * 2_000_000, length
        split = int(length) if length is not None else len(content)
        document, data = orjson.loads(content[:split]), content[split:]
        document, data = CORRUPTIONS[self.corruption or ""](document, data)
        header = orjson.dumps(document)
        return header + data, str(len(header))
