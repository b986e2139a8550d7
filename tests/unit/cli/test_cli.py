"""The `gateway` command's errors: one line naming the variable or file, a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.data import ROOT


def gateway(*args: str, **environment: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        cwd=ROOT,
        env={**env, **environment},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("environment", "line"),
    [
        (
            {"GATEWAY_REDIS_URL": "garbage"},
            "gateway: GATEWAY_REDIS_URL: GATEWAY_REDIS_URL must be redis://",
        ),
        ({"GATEWAY_CACHE_MODELS": "{bad"}, "gateway: GATEWAY_CACHE_MODELS is not valid JSON"),
        ({"GATEWAY_MAX_BODY_BYTES": "lots"}, "gateway: GATEWAY_MAX_BODY_BYTES: Input should be"),
    ],
)
def test_bad_settings_are_one_line_each(environment: dict[str, str], line: str) -> None:
    result = gateway("keys", "list", **environment)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith(line), result.stderr
    assert "Traceback" not in result.stderr


def test_publishing_a_missing_file_names_it() -> None:
    result = gateway("models", "publish", "m", "/no/such/file.onnx", "--key", "k")
    assert (result.returncode, result.stderr) == (
        2,
        "gateway: cannot read /no/such/file.onnx: No such file or directory\n",
    )


def test_a_reader_that_goes_away_ends_the_command_quietly() -> None:
    """`gateway ... | head`: no BrokenPipeError traceback, the exit status a shell gives."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "gateway", "keys", "generate"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert result.returncode == 141
    assert b"Traceback" not in result.stderr and b"BrokenPipe" not in result.stderr
