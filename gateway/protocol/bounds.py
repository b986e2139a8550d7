"""How many values a model can take, known before a request's values are parsed.

A JSON body within the body limit can hold millions of numbers (16 MiB of `0,`: 8.4 M) and
parsing them costs the worker's event loop over half a second before anything compares
their count with the model's shape. From the model's configuration (its inputs' dims and
`max_batch_size`) the gateway knows the most elements each input can have, so:

before parsing  a JSON body whose separators alone show more values than the model's
                inputs can hold together is refused (for models whose inputs all have fixed
                dims): its commas are counted (a C scan); where the model takes text and
                the commas are too many, the strings are counted by their quotes, then the
                commas again outside strings (a regular expression, also in C), since a
                text may hold any number of commas;
after parsing   each input's declared shape is checked against its bound before its
                values are converted (a BYTES input of 4 M empty strings is refused there,
                not converted and forwarded to Triton).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import BadRequest

# Commas (and strings) of the JSON's structure besides the values: per input object and
# the request's own fields (names, datatype, shape, parameters), with room to spare.
_STRUCTURE = 256
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')  # a JSON string, escapes included


@dataclass(frozen=True, slots=True)
class InputBounds:
    """The most elements each input of a model can have (inputs with a variable dim are
    absent), and the most values of a whole JSON request (None: not bounded)."""

    model: str = ""
    per_input: Mapping[str, int] = field(default_factory=dict)
    json_values: int | None = None
    takes_text: bool = False  # a BYTES input: its strings may hold commas

    def check_json(self, header: bytes) -> None:
        """Refuse a JSON document that holds more values than the model takes, before
        anything is parsed."""
        if self.json_values is None:
            return
        limit = self.json_values + _STRUCTURE
        if header.count(b",") <= limit:
            return
        if self.takes_text:
            # Unescaped quotes (an escaped backslash before a quote makes this count low,
            # which only lets more through): two per string.
            strings = (header.count(b'"') - header.count(b'\\"')) // 2
            if strings <= limit and _STRING.sub(b"", header).count(b",") <= limit:
                return
        raise BadRequest(
            f"the request holds more values than model '{self.model}' takes "
            f"(at most {self.json_values} in all)"
        )

    def check_shape(self, name: str, shape: tuple[int, ...], count: int) -> None:
        """Refuse an input whose shape has more elements than the model takes."""
        bound = self.per_input.get(name)
        if bound is not None and count > bound:
            raise BadRequest(
                f"input '{name}': shape {list(shape)} has {count} elements; model "
                f"'{self.model}' takes at most {bound}"
            )


UNBOUNDED = InputBounds()


def bounds_of(model: str, config: Mapping[str, Any]) -> InputBounds:
    """The bounds that `config` (Triton's model configuration, as JSON) implies."""
    batch = _integer(config.get("max_batch_size")) or 1  # 0: no batch dimension
    per_input: dict[str, int] = {}
    all_bounded = True
    takes_text = False
    inputs = config.get("input")
    for item in inputs if isinstance(inputs, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        if item.get("data_type") == "TYPE_STRING":
            takes_text = True
        dims = [_integer(d) for d in item.get("dims") or []]
        if any(d is None or d < 0 for d in dims) or item.get("allow_ragged_batch"):
            all_bounded = False
            continue
        elements = batch
        for d in dims:
            elements *= d or 1
        per_input[item["name"]] = elements
    if not per_input and not all_bounded:
        return InputBounds(model)
    json_values = sum(per_input.values()) if all_bounded and per_input else None
    return InputBounds(model, per_input, json_values, takes_text)


def _integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return None
