"""Errors a request can meet, each with its HTTP status and a stable machine-readable code.

Handlers raise them; the error middleware (``app.py``) turns each into a JSON body
``{"error": code, "message": text}`` with its status. Nothing here does I/O.
"""

from __future__ import annotations

from dnft.errors import DnftError


class ApiError(DnftError):
    """A request that cannot be answered as asked. ``status``, ``code`` and ``message`` make
    the JSON error; ``headers`` go on the response (e.g. Retry-After)."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequestError(ApiError, ValueError):
    """A path or query parameter is malformed or out of range (400)."""

    status = 400
    code = "bad_request"


class NotFoundError(ApiError, LookupError):
    """No such token, version, image or collection (404)."""

    status = 404
    code = "not_found"


class RateLimitedError(ApiError):
    """The client spent its request budget (429); Retry-After says when to come back."""

    status = 429
    code = "rate_limited"


class UnavailableError(ApiError):
    """This replica cannot serve the request now (503): too many live clients, shutting down,
    or storage unreachable."""

    status = 503
    code = "unavailable"
