"""Model names and versions a path may carry: a version is a positive integer in ASCII."""

from __future__ import annotations

import pytest

from gateway.errors import BadRequest
from gateway.protocol.names import check_model_path


@pytest.mark.parametrize("version", ["0", "000", "-1", "1.0", "²", "٣", "1" * 20, "v1"])
def test_versions_that_are_not_positive_integers_are_400(version: str) -> None:
    with pytest.raises(BadRequest, match="a model version is a positive integer"):
        check_model_path("m", version)


@pytest.mark.parametrize("version", ["", "1", "10", "9" * 19])
def test_positive_integers_and_no_version_pass(version: str) -> None:
    check_model_path("m", version)


def test_a_model_name_longer_than_a_file_name_is_400() -> None:
    with pytest.raises(BadRequest, match="at most 255 bytes"):
        check_model_path("é" * 128)
