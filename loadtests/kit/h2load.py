"""Drive `h2load` (Debian package `nghttp2-client`) for gRPC: a ModelInfer request framed
for gRPC and sent over HTTP/2. h2load reports mean latency, not percentiles."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tritonclient.grpc import service_pb2

from loadtests.kit.wrk import WrkResult

INSTALL_HINT = "h2load is missing: sudo apt-get install -y nghttp2-client (or `make bench-deps`)"


def grpc_frame(request: service_pb2.ModelInferRequest) -> bytes:
    message: bytes = request.SerializeToString()
    return b"\x00" + len(message).to_bytes(4, "big") + message


def run_grpc(
    address: str,
    request: service_pb2.ModelInferRequest,
    *,
    connections: int,
    duration_s: float,
    metadata: Sequence[str] = (),
) -> WrkResult:
    """h2load against `address`; `metadata`: extra "name: value" headers (gRPC metadata)."""
    binary = shutil.which("h2load")
    if binary is None:
        raise SystemExit(INSTALL_HINT)
    with tempfile.TemporaryDirectory() as folder:
        body = Path(folder) / "request.bin"
        body.write_bytes(grpc_frame(request))
        command = [
            binary, "-D", str(max(1, round(duration_s))), "-c", str(connections), "-m", "1",
            "-d", str(body), "-H", "content-type: application/grpc", "-H", "te: trailers",
            *(item for header in metadata for item in ("-H", header)),
            f"http://{address}/inference.GRPCInferenceService/ModelInfer",
        ]  # fmt: skip
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rate = re.search(r"finished in [\d.]+\w*, ([\d.]+) req/s", output)
    done = re.search(
        r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, "
        r"(\d+) errored",
        output,
    )
    mean = re.search(r"time for request:\s+\S+\s+\S+\s+([\d.]+)(\w+)", output)
    if not (rate and done and mean):
        raise ValueError(f"unexpected h2load output:\n{output}")
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[mean.group(2)]
    mean_ms = float(mean.group(1)) * scale
    return WrkResult(
        requests_per_s=float(rate.group(1)),
        p50_ms=mean_ms,  # the mean: h2load gives no percentiles
        p99_ms=float("nan"),
        requests=int(done.group(1)),
        errors=int(done.group(3)) + int(done.group(4)),
    )
