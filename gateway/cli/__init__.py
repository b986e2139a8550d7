"""The `gateway` command (`main.py`) and its `keys` and `models` groups."""

from gateway.cli.main import main

__all__ = ["main"]
