"""Drive `wrk` (Debian package `wrk`) and read its report.

wrk is the load generator of the benchmarks: one C thread generates thousands of requests
per second, so on a 2-core machine it leaves the cores to the servers being measured.
Request bodies come from a small Lua script written per scenario.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

INSTALL_HINT = "wrk is missing: sudo apt-get install -y wrk (or `make bench-deps`)"

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


@dataclass(frozen=True)
class WrkResult:
    """Throughput and latency of one wrk run."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # socket errors plus non-2xx/3xx responses


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit(INSTALL_HINT)
    return path


def run_wrk(
    url: str, lua: str, *, connections: int, duration_s: float, threads: int = 1
) -> WrkResult:
    """Run wrk against `url` with the request built by the Lua script `lua`."""
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "scenario.lua"
        script.write_text(lua)
        command = [
            require_wrk(),
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(duration_s))}s",
            "--latency",
            "-s",
            str(script),
            url,
        ]
        finished = subprocess.run(command, capture_output=True, text=True, check=False)
    if finished.returncode != 0:
        raise RuntimeError(f"wrk failed ({finished.returncode}): {finished.stderr.strip()}")
    return parse(finished.stdout)


def parse(output: str) -> WrkResult:
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    p50 = re.search(r"^\s+50%\s+([\d.]+)(\w+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(\w+)", output, re.M)
    if not (rate and total and p50 and p99):
        raise ValueError(f"unexpected wrk output:\n{output}")
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors += int(non_2xx.group(1)) if non_2xx else 0
    return WrkResult(
        requests_per_s=float(rate.group(1)),
        p50_ms=float(p50.group(1)) * _UNITS[p50.group(2)],
        p99_ms=float(p99.group(1)) * _UNITS[p99.group(2)],
        requests=int(total.group(1)),
        errors=errors,
    )


def post_script(body: str, headers: dict[str, str]) -> str:
    """Lua: the same POST every time."""
    lines = [
        'wrk.method = "POST"',
        f"wrk.body = {_lua_string(body)}",
        *(f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items()),
    ]
    return "\n".join(lines) + "\n"


def unique_post_script(prefix: str, suffix: str, headers: dict[str, str], run_id: int) -> str:
    """Lua: a POST whose body is prefix .. "<counter>.5, <run_id>" .. suffix, so that every
    request of the run (and of other runs) differs. Numbers stay below 2**24: exact in FP32."""
    header_lines = "\n".join(
        f"  [{_lua_string(k)}] = {_lua_string(v)}," for k, v in headers.items()
    )
    return f"""
local counter = 0
local prefix = {_lua_string(prefix)}
local suffix = {_lua_string(suffix)}
local headers = {{
{header_lines}
}}
request = function()
  counter = counter + 1
  local body = prefix .. (counter % 16000000) .. ".5, {run_id}" .. suffix
  return wrk.format("POST", nil, headers, body)
end
"""


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
