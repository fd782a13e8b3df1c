"""Errors the gateway answers itself, always in the API's own shape (spec §7.5).

``{"type": "error", "error": {"type": ..., "message": ...}, "request_id": ...}``: the official
SDKs parse it into their own exception classes, so a client cannot tell a gateway refusal from
an API one except by the message, which says the gateway refused it.
"""

from __future__ import annotations

import json
import os

from tokenomy.errors import ApiRequestError

__all__ = ["ERROR_TYPES", "error_body", "new_request_id", "sse_error_event"]

ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def new_request_id() -> str:
    """A request id in the API's style, for requests the gateway answers itself."""
    return "req_tkn" + os.urandom(12).hex()


def error_body(status: int, message: str, request_id: str, error_type: str | None = None) -> bytes:
    etype = error_type or ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return json.dumps(
        {"type": "error", "error": {"type": etype, "message": message}, "request_id": request_id},
        separators=(",", ":"),
    ).encode()


def api_error_body(err: ApiRequestError, request_id: str) -> bytes:
    return json.dumps(err.to_api(request_id), separators=(",", ":")).encode()


def sse_error_event(error_type: str, message: str) -> bytes:
    """An ``event: error`` the SDKs raise on; the only way to report a failure after a 200 started."""
    data = json.dumps(
        {"type": "error", "error": {"type": error_type, "message": message}}, separators=(",", ":")
    )
    return f"event: error\ndata: {data}\n\n".encode()
