"""The KServe v2 / Open Inference Protocol over HTTP: decoding requests, encoding responses.

Tensors are held in Triton's raw wire form (little-endian; BYTES as 4-byte length + bytes
per element), whether they arrived as JSON lists or through the binary tensor data
extension, so equal tensors are equal bytes whichever way they were sent.
"""

from gateway.protocol.decode import decode_infer_request
from gateway.protocol.encode import EncodedResponse, encode_infer_response
from gateway.protocol.types import InferRequest, InferResult, RequestedOutput, Tensor

__all__ = [
    "EncodedResponse",
    "InferRequest",
    "InferResult",
    "RequestedOutput",
    "Tensor",
    "decode_infer_request",
    "encode_infer_response",
]
