"""Errors raised by tokenomy.

    TokenomyError
    ├── UserError                 a caller's mistake; the CLI prints it as one line, never a traceback
    │   ├── InputError            unreadable or unrecognised input (path, file, line)
    │   └── ApiRequestError       a request the real API would refuse; carries its status and error type
    │       └── CacheControlError breakpoints: more than 4, TTL order, automatic-caching conflicts
    └── PricingError              price data that cannot be read (a packaging bug, not a user's)

Each message says what failed, the offending value and where, and what to do next.
"""

from __future__ import annotations


class TokenomyError(Exception):
    """Root of every error tokenomy raises on purpose."""


class UserError(TokenomyError):
    """Something the caller can fix; shown as one line without a traceback."""


class InputError(UserError):
    """Input that cannot be read or recognised."""


class ApiRequestError(UserError):
    """A request the Messages API would reject, with the API's own status, type and wording."""

    def __init__(self, message: str, *, status: int = 400, error_type: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_type = error_type

    def to_api(self, request_id: str | None = None) -> dict[str, object]:
        """The API's error body: ``{"type": "error", "error": {...}, "request_id": ...}``."""
        body: dict[str, object] = {
            "type": "error",
            "error": {"type": self.error_type, "message": self.message},
        }
        if request_id is not None:
            body["request_id"] = request_id
        return body


class CacheControlError(ApiRequestError):
    """Invalid ``cache_control`` placement: the API answers these with 400 invalid_request_error."""


class PricingError(TokenomyError):
    """The bundled price data is malformed."""
