"""What an inference request and its result are, independent of how they travelled."""

from __future__ import annotations

from dataclasses import dataclass, field

# Request parameters forwarded to Triton: scalars only, as the protocol allows.
Parameter = bool | int | float | str


@dataclass(frozen=True, slots=True)
class Tensor:
    """A named tensor in Triton's raw wire form."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: bytes


@dataclass(frozen=True, slots=True)
class RequestedOutput:
    """An output the client asked for, and how it wants it."""

    name: str
    binary: bool | None = None  # None: the request-wide default applies
    class_count: int = 0  # > 0: Triton's classification extension, top-N "score:index[:label]"


@dataclass(frozen=True, slots=True)
class InferRequest:
    """A decoded `POST /v2/models/{model}[/versions/{version}]/infer`."""

    model: str
    version: str  # "" when the client named no version
    inputs: tuple[Tensor, ...]
    outputs: tuple[RequestedOutput, ...] = ()  # empty: every output of the model
    id: str | None = None
    binary_output: bool = False  # the request's `binary_data_output` parameter
    parameters: dict[str, Parameter] = field(default_factory=dict)

    def wants_binary(self, output: str) -> bool:
        """Whether `output` goes back in the binary extension rather than as JSON."""
        for requested in self.outputs:
            if requested.name == output and requested.binary is not None:
                return requested.binary
        return self.binary_output


@dataclass(frozen=True, slots=True)
class InferResult:
    """Triton's answer: which version served it and its output tensors."""

    model: str
    version: str
    outputs: tuple[Tensor, ...]
    # Seconds Triton took to give this answer (0 when unknown): what a cache hit saves.
    triton_s: float = field(default=0.0, compare=False)
