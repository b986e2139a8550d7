"""`gateway up` as a child process in tests: its printed output, its stack.json, the admin
key it printed, and a stop that leaves nothing behind."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from devstack.ports import free_port
from tests.support.data import ROOT, samples
from tests.support.processes import wait_gone

KEY_LINE = re.compile(r"export GATEWAY_KEY=(gwk_\S+)")


class Stack:
    """A `gateway up` child process, its printed output and its stack.json."""

    def __init__(
        self, state_dir: Path, *options: str, settings: dict[str, str] | None = None
    ) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        env.update(settings or {})
        self.state_dir = state_dir
        argv = [sys.executable, "-m", "gateway", "up", "--port", str(free_port()), *options]
        argv += ["--grpc-port", str(free_port())]
        self.process = subprocess.Popen(
            [*argv, "--state-dir", str(state_dir)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.described = self._wait_for_stack_file()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def _wait_for_stack_file(self) -> dict[str, Any]:
        stack_file = self.state_dir / "stack.json"
        deadline = time.monotonic() + 120
        while not stack_file.exists():
            assert self.process.poll() is None, "".join(self.lines)
            assert time.monotonic() < deadline, "gateway up did not write stack.json"
            time.sleep(0.1)
        described: dict[str, Any] = json.loads(stack_file.read_text())
        return described

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_ready(self) -> None:
        """Until the gateway is ready and `gateway up` has said so (its last line printed)."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                ready = httpx.get(f"{self.described['gateway']}/v2/health/ready").status_code
            except httpx.TransportError:
                ready = None
            if ready == 200 and "(Ctrl-C stops everything)" in self.output:
                return
            time.sleep(0.1)
        raise AssertionError("the gateway did not become ready:\n" + self.output)

    def printed_key(self) -> str | None:
        match = KEY_LINE.search(self.output)
        return match.group(1) if match else None

    def infer(self, key: str, offset: int = 0) -> httpx.Response:
        x = samples("digits_classifier", rows=1, offset=offset)
        tensor = {
            "name": "image",
            "shape": [1, 8, 8],
            "datatype": "FP32",
            "data": x.ravel().tolist(),
        }
        return httpx.post(
            f"{self.described['gateway']}/v2/models/digits_classifier/infer",
            json={"inputs": [tensor]},
            headers={"Authorization": f"Bearer {key}"},
        )

    def terminate(self, signum: signal.Signals = signal.SIGTERM) -> int:
        self.process.send_signal(signum)
        code = self.process.wait(60)
        self._reader.join(10)
        return code

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._reader.join(10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        wait_gone([pid for pid in self.described["pids"].values() if pid], 20)
