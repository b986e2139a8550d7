"""The cache key: SHA-256 over a canonical encoding of everything that decides the answer.

In, in this order, each field length-prefixed:
- a format tag (bump it and every old entry is unreachable);
- the tenant ("" unless the key's cache is private to its tenant);
- the model, the concrete version that serves the request, and that version's fingerprint
  (see `gateway.control.catalog`): a new version or a changed artifact means new keys;
- each input, sorted by name: name, datatype, shape, and its raw little-endian bytes
  (Triton's wire form, so JSON and binary requests of the same tensors agree, and the
  same bytes under another datatype or shape do not);
- each requested output, sorted by name, with its classification count (empty: "all");
- the request parameters that can change results, sorted, with their types.

Not in it: the request `id`, trace headers, and `binary_data` / `binary_data_output`,
which only choose how the same tensors are encoded in the response (the value is stored
raw and encoded for each request).
"""

from __future__ import annotations

import hashlib
import struct

from gateway.protocol.types import InferRequest, Parameter

FORMAT = b"gateway-cache-v1"

# Request parameters that affect scheduling, not results.
SCHEDULING_PARAMETERS = frozenset({"priority", "timeout"})
# Stateful requests: the answer depends on earlier requests of the sequence.
SEQUENCE_PARAMETERS = frozenset({"sequence_id", "sequence_start", "sequence_end"})

_LENGTH = struct.Struct("<Q")
_MEMO_FORMAT = b"gateway-memo-v2"
_MEMO_LENGTHS = struct.Struct("<7Q")


def is_stateful(request: InferRequest) -> bool:
    return any(name in SEQUENCE_PARAMETERS for name in request.parameters)


def cache_key(request: InferRequest, version: str, fingerprint: str, tenant: str = "") -> bytes:
    """The 32-byte digest identifying `request`'s answer from `version` / `fingerprint`."""
    digest = hashlib.sha256()

    def field(value: bytes) -> None:
        digest.update(_LENGTH.pack(len(value)))
        digest.update(value)

    field(FORMAT)
    field(tenant.encode())
    field(request.model.encode())
    field(version.encode())
    field(fingerprint.encode())
    field(str(len(request.inputs)).encode())
    for tensor in sorted(request.inputs, key=lambda t: t.name):
        field(tensor.name.encode())
        field(tensor.datatype.encode())
        field(struct.pack(f"<{len(tensor.shape)}q", *tensor.shape))
        field(tensor.data)
    field(str(len(request.outputs)).encode())
    for output in sorted(request.outputs, key=lambda o: o.name):
        field(output.name.encode())
        field(str(output.class_count).encode())
    parameters = sorted(
        (name, value)
        for name, value in request.parameters.items()
        if name not in SCHEDULING_PARAMETERS
    )
    field(str(len(parameters)).encode())
    for name, value in parameters:
        field(name.encode())
        field(_typed(value))
    return digest.digest()


def _typed(value: Parameter) -> bytes:
    # bool before int: True must not equal 1.
    if isinstance(value, bool):
        return b"b" + (b"1" if value else b"0")
    if isinstance(value, int):
        return b"i" + str(value).encode()
    if isinstance(value, float):
        return b"f" + struct.pack("<d", value)
    return b"s" + value.encode()


def memo_key(
    tenant: str,
    model: str,
    requested_version: str,
    version: str,
    fingerprint: str,
    header_length: int | None,
    body: bytes,
) -> bytes:
    """The digest of an exact request (its bytes as sent) for the response memo.

    Identical bytes decode to the identical request, so they share the cache key; and with
    the same `id` and encoding choices in them they get identical response bytes.
    """
    parts = (
        tenant.encode(),
        model.encode(),
        requested_version.encode(),
        version.encode(),
        fingerprint.encode(),
        str(header_length).encode(),
        body,
    )
    # The lengths of all parts first, then the parts: one hash call (this runs on every
    # cache hit; a call per part showed in its profile).
    lengths = _MEMO_LENGTHS.pack(*map(len, parts))
    return hashlib.sha256(b"".join((_MEMO_FORMAT, lengths, *parts))).digest()
