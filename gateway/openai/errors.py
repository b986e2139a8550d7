"""Gateway errors in OpenAI's error shape, so OpenAI's SDKs raise the exception they raise
against OpenAI (by status) and show its message:

    {"error": {"message": "...", "type": "...", "param": null, "code": "..."}}
"""

from __future__ import annotations

import orjson

from gateway.errors import BadRequest, GatewayError

# status -> (type, code), as OpenAI's own answers have them
_KINDS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "model_not_permitted"),
    404: ("invalid_request_error", "model_not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    408: ("invalid_request_error", "request_timeout"),
    413: ("invalid_request_error", "request_too_large"),
    415: ("invalid_request_error", "unsupported_media_type"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
    503: ("server_error", "service_unavailable"),
    504: ("server_error", "timeout"),
}


def openai_error_body(error: GatewayError) -> bytes:
    kind, code = _KINDS.get(error.status, ("server_error", None))
    param = getattr(error, "param", None)
    body = {"message": error.message, "type": kind, "param": param, "code": code}
    return orjson.dumps({"error": body})


class InvalidParameter(BadRequest):
    """A request field OpenAI's API would refuse; `param` names it."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
