"""A step-load shape for Locust: add users in steps until saturation shows.

    LOADTEST_STEP_USERS (default 10)   users added per step
    LOADTEST_STEP_SECONDS (default 20) length of a step
    LOADTEST_STEPS (default 6)         number of steps

Used with `-f loadtests/locustfile.py,loadtests/step_load.py`; the report's throughput
per step shows where more users stop bringing more requests/s (saturation).
"""

from __future__ import annotations

import os

from locust import LoadTestShape

STEP_USERS = int(os.environ.get("LOADTEST_STEP_USERS", "10"))
STEP_SECONDS = int(os.environ.get("LOADTEST_STEP_SECONDS", "20"))
STEPS = int(os.environ.get("LOADTEST_STEPS", "6"))


class StepLoad(LoadTestShape):
    def tick(self) -> tuple[int, float] | None:
        step = int(self.get_run_time() // STEP_SECONDS)
        if step >= STEPS:
            return None
        return (step + 1) * STEP_USERS, STEP_USERS
