"""A test module's own model repository, Triton and Redis: for tests whose changes
(published versions, edited configs, traffic splits, purged entries) must not reach the
session's shared ones. Everything started here is stopped when its block ends."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from devstack import EmbeddedRedis, EmbeddedTriton


def writable_copy(
    tmp_path_factory: pytest.TempPathFactory, source: Path, name: str, *models: str
) -> Path:
    """A fresh repository holding copies of `models` from the repository `source`."""
    root = tmp_path_factory.mktemp(name)
    for model in models:
        shutil.copytree(source / model, root / model)
    return root


@contextmanager
def own_triton(
    repository: Path, tmp_path_factory: pytest.TempPathFactory, name: str
) -> Iterator[EmbeddedTriton]:
    """A Triton serving every model in `repository`."""
    server = EmbeddedTriton(repository, tmp_path_factory.mktemp(name))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def own_redis(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[EmbeddedRedis]:
    """A Redis that keeps nothing on disk."""
    server = EmbeddedRedis(tmp_path_factory.mktemp(name), persistent=False)
    server.start()
    try:
        yield server
    finally:
        server.stop()
