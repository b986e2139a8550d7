"""The shared fake (tests/support/fake_triton.py) stays true to the real client: every
method it offers exists on `TritonClient` or `TritonControl` with the same parameters."""

from __future__ import annotations

import inspect

from gateway.backends.triton import TritonClient
from gateway.backends.triton.control import TritonControl
from tests.support.fake_triton import FakeTriton, FakeTritonControl


def public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in vars(cls).items()
        if callable(member) and not name.startswith("_")
    }


def parameters(signature: inspect.Signature) -> list[str]:
    return list(signature.parameters)


def test_the_fake_client_mirrors_the_real_inference_call() -> None:
    real = public_methods(TritonClient)
    assert parameters(public_methods(FakeTriton)["infer"]) == parameters(real["infer"])


def test_the_fake_control_api_mirrors_the_real_one() -> None:
    real = public_methods(TritonControl)
    for name, signature in public_methods(FakeTritonControl).items():
        assert name in real, name
        assert parameters(signature) == parameters(real[name]), name
