"""The gateway's connection to Triton Inference Server."""

from gateway.backends.triton.client import TritonClient

__all__ = ["TritonClient"]
