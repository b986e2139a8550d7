"""Logging set-up for the gateway process."""

from __future__ import annotations

import logging


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    # httpx logs every control-plane request at INFO.
    logging.getLogger("httpx").setLevel(logging.WARNING)
