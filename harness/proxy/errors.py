"""API errors, each with the HTTP status and message the Toxiproxy API uses for it."""

from __future__ import annotations

import json
from http import HTTPStatus


class ApiError(Exception):
    """An error returned to an API client as `{"error": message, "status": code}`."""

    status = HTTPStatus.INTERNAL_SERVER_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_json(self) -> dict[str, object]:
        """Return the error body as Toxiproxy sends it."""
        return {"error": self.message, "status": int(self.status)}

    def body(self) -> bytes:
        """Return the JSON error body."""
        return json.dumps(self.to_json()).encode()


class BadRequestError(ApiError):
    """A request body that is not valid JSON or has a field of the wrong type or value."""

    status = HTTPStatus.BAD_REQUEST


class NotFoundError(ApiError):
    """A proxy, toxic or path that does not exist."""

    status = HTTPStatus.NOT_FOUND


class ConflictError(ApiError):
    """A proxy or toxic name that is already in use."""

    status = HTTPStatus.CONFLICT


class ForbiddenError(ApiError):
    """A request from a browser, rejected to block cross-site requests."""

    status = HTTPStatus.FORBIDDEN


class MethodNotAllowedError(ApiError):
    """A known path requested with a method it does not support."""

    status = HTTPStatus.METHOD_NOT_ALLOWED

    def __init__(self, message: str, allowed: tuple[str, ...]) -> None:
        super().__init__(message)
        self.allowed = allowed


class ListenError(ApiError):
    """A proxy listen address that could not be resolved or bound."""

    status = HTTPStatus.INTERNAL_SERVER_ERROR


PROXY_NOT_FOUND = "proxy not found"
PROXY_EXISTS = "proxy already exists"
TOXIC_NOT_FOUND = "toxic not found"
TOXIC_EXISTS = "toxic already exists"
INVALID_STREAM = "stream was invalid, can be either upstream or downstream"
INVALID_TOXIC_TYPE = "invalid toxic type"
BAD_REQUEST_BODY = "bad request body"
MISSING_FIELD = "missing required field"
