"""`models:/` URIs of a model registry."""

from __future__ import annotations

import pytest

from gateway.control.registry.mlflow_source import parse_model_uri
from gateway.errors import BadRequest


def test_versions_and_aliases_are_told_apart() -> None:
    assert parse_model_uri("models:/breast-cancer/3") == ("breast-cancer", "3", None)
    assert parse_model_uri("models:/breast-cancer@champion") == ("breast-cancer", None, "champion")


@pytest.mark.parametrize(
    "uri", ["models:/x", "models:/x/latest", "runs:/abc/model", "models:/x@", "models:/a/b/1"]
)
def test_anything_else_is_refused_naming_the_forms(uri: str) -> None:
    with pytest.raises(BadRequest, match=r"models:/<name>/<version> or models:/<name>@<alias>"):
        parse_model_uri(uri)
