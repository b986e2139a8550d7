"""ManagedProcess: readiness, log tails, and a stop that leaves nothing behind."""

from __future__ import annotations

import sys
import textwrap
import time
from pathlib import Path

import pytest

from devstack import EmbeddedServiceError, ManagedProcess
from tests.support.processes import alive, wait_gone

STUBBORN = textwrap.dedent(
    """
    import signal, subprocess, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ignore = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    child = subprocess.Popen([sys.executable, "-c", ignore])
    print(child.pid, flush=True)
    time.sleep(60)
    """
)


def test_stop_kills_a_process_ignoring_sigterm_and_its_children(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = tmp_path / "stubborn.log"
    process = ManagedProcess("stubborn", [sys.executable, "-c", STUBBORN], log, stop_timeout_s=0.5)
    process.start()
    deadline = time.monotonic() + 10
    while not log.read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    grandchild = int(log.read_text().split()[0])
    assert process.pid is not None and alive(process.pid) and alive(grandchild)

    process.stop()

    assert wait_gone([process.pid, grandchild], 5) == []
    assert not process.running()
    (warning,) = [r.getMessage() for r in caplog.records if "ignored SIGTERM" in r.getMessage()]
    assert str(grandchild) in warning  # with the tail of its log, to see what it waited on


def test_exit_during_start_up_quotes_the_log(tmp_path: Path) -> None:
    process = ManagedProcess(
        "failing",
        [sys.executable, "-c", "print('port already in use'); raise SystemExit(3)"],
        tmp_path / "f.log",
    )
    process.start()
    with pytest.raises(EmbeddedServiceError, match=r"(?s)failing exited.*port already in use"):
        process.wait_ready(lambda: False, timeout_s=10)


def test_not_ready_in_time_is_stopped_and_reported(tmp_path: Path) -> None:
    process = ManagedProcess(
        "slow", [sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "s.log"
    )
    process.start()
    with pytest.raises(EmbeddedServiceError, match="slow was not ready"):
        process.wait_ready(lambda: False, timeout_s=0.3)
    assert not process.running()


def test_context_manager_stops_on_exit(tmp_path: Path) -> None:
    with ManagedProcess(
        "sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "z.log"
    ) as p:
        pid = p.pid
        assert pid is not None and alive(pid)
    assert wait_gone([pid], 5) == []
