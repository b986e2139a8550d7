"""The gateway's connection to Triton Inference Server."""

from gateway.triton.client import TritonClient

__all__ = ["TritonClient"]
