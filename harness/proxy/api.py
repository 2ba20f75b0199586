"""The Toxiproxy HTTP API: routes, handlers, and the mapping of errors to responses."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from urllib.parse import unquote

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry

from .collection import PopulateError, ProxyCollection
from .errors import ApiError, ForbiddenError, MethodNotAllowedError, NotFoundError
from .http import HttpError, Request, Response
from .log import log_event
from .metrics import build_registry, render
from .schema import (
    decode_json,
    decode_object,
    parse_proxy,
    parse_proxy_change,
    parse_proxy_list,
    parse_toxic,
    update_toxic,
)

# The API version this server implements. The build suffix marks it as this implementation,
# and semantic versioning ignores it when comparing versions.
VERSION = "2.12.0+harness"

Route = Callable[["ToxiproxyApi", Request, list[str]], Awaitable[Response]]


def json_response(status: int, data: object) -> Response:
    """Return a JSON response."""
    return Response(status, json.dumps(data).encode())


class ToxiproxyApi:
    """Route API requests to the proxy collection and build their responses."""

    def __init__(self, collection: ProxyCollection) -> None:
        self.collection = collection
        self.registry: CollectorRegistry = build_registry(collection)

    async def handle(self, request: Request) -> Response:
        """Route one request and turn any ApiError into its JSON error response."""
        request_id = secrets.token_hex(10)
        try:
            if request.headers.get("user-agent", "").startswith("Mozilla/"):
                raise ForbiddenError("User agent not allowed")
            response = await self._dispatch(request)
        except ApiError as exc:
            response = self.error_response(exc)
            if exc.status >= HTTPStatus.INTERNAL_SERVER_ERROR:
                log_event(
                    "api.failed",
                    logging.WARNING,
                    method=request.method,
                    path=request.path,
                    status=int(exc.status),
                    err=exc.message,
                    request_id=request_id,
                )
        response.headers["X-Toxiproxy-Request-Id"] = request_id
        return response

    @staticmethod
    def error_response(error: ApiError) -> Response:
        """Return the response for an API error."""
        response = Response(int(error.status), error.body())
        if isinstance(error, MethodNotAllowedError):
            response.headers["Allow"] = ", ".join(error.allowed)
        return response

    @staticmethod
    def parse_error_response(error: HttpError) -> Response:
        """Return the response for a request that could not be parsed."""
        body = json.dumps({"error": error.message, "status": int(error.status)}).encode()
        response = Response(int(error.status), body)
        response.headers["X-Toxiproxy-Request-Id"] = secrets.token_hex(10)
        return response

    async def _dispatch(self, request: Request) -> Response:
        segments = [unquote(part) for part in request.path.split("/")[1:]]
        routes = _match(segments)
        if routes is None:
            raise NotFoundError(f"no route for {request.path}")
        route = routes.get(request.method)
        if route is None:
            allowed = tuple(routes)
            message = f"method {request.method} is not allowed on {request.path}"
            raise MethodNotAllowedError(f"{message}; use {', '.join(allowed)}", allowed)
        return await route(self, request, segments)

    # Handlers, in the order of the Toxiproxy API reference.

    async def list_proxies(self, request: Request, segments: list[str]) -> Response:
        proxies = {name: proxy.to_json() for name, proxy in self.collection.proxies.items()}
        return json_response(HTTPStatus.OK, proxies)

    async def create_proxy(self, request: Request, segments: list[str]) -> Response:
        proxy = await self.collection.create(parse_proxy(decode_object(request.body)))
        return json_response(HTTPStatus.CREATED, proxy.to_json())

    async def populate(self, request: Request, segments: list[str]) -> Response:
        requests = parse_proxy_list(decode_json(request.body))
        try:
            proxies = await self.collection.populate(requests)
        except PopulateError as exc:
            body = exc.error.to_json()
            body["proxies"] = [proxy.to_json() for proxy in exc.proxies]
            return json_response(exc.error.status, body)
        return json_response(HTTPStatus.CREATED, {"proxies": [p.to_json() for p in proxies]})

    async def show_proxy(self, request: Request, segments: list[str]) -> Response:
        return json_response(HTTPStatus.OK, self.collection.get(segments[1]).to_json())

    async def update_proxy(self, request: Request, segments: list[str]) -> Response:
        self.collection.get(segments[1])
        change = parse_proxy_change(decode_object(request.body))
        proxy = await self.collection.update(segments[1], change)
        return json_response(HTTPStatus.OK, proxy.to_json())

    async def delete_proxy(self, request: Request, segments: list[str]) -> Response:
        self.collection.delete(segments[1])
        return Response(HTTPStatus.NO_CONTENT)

    async def list_toxics(self, request: Request, segments: list[str]) -> Response:
        proxy = self.collection.get(segments[1])
        return json_response(HTTPStatus.OK, [toxic.to_json() for toxic in proxy.all_toxics()])

    async def create_toxic(self, request: Request, segments: list[str]) -> Response:
        proxy = self.collection.get(segments[1])
        toxic = self.collection.add_toxic(proxy, parse_toxic(decode_object(request.body)))
        return json_response(HTTPStatus.OK, toxic.to_json())

    async def show_toxic(self, request: Request, segments: list[str]) -> Response:
        proxy = self.collection.get(segments[1])
        return json_response(HTTPStatus.OK, proxy.get_toxic(segments[3]).to_json())

    async def update_toxic(self, request: Request, segments: list[str]) -> Response:
        proxy = self.collection.get(segments[1])
        toxic = update_toxic(proxy.get_toxic(segments[3]), decode_object(request.body))
        proxy.replace_toxic(toxic)
        return json_response(HTTPStatus.OK, toxic.to_json())

    async def delete_toxic(self, request: Request, segments: list[str]) -> Response:
        self.collection.get(segments[1]).remove_toxic(segments[3])
        return Response(HTTPStatus.NO_CONTENT)

    async def reset(self, request: Request, segments: list[str]) -> Response:
        await self.collection.reset()
        return Response(HTTPStatus.NO_CONTENT)

    async def version(self, request: Request, segments: list[str]) -> Response:
        response = json_response(HTTPStatus.OK, {"version": VERSION})
        response.content_type = "application/json;charset=utf-8"
        return response

    async def metrics(self, request: Request, segments: list[str]) -> Response:
        return Response(HTTPStatus.OK, render(self.registry), CONTENT_TYPE_LATEST)


_PROXY = ToxiproxyApi
_ROUTES: dict[tuple[str, ...], dict[str, Route]] = {
    ("proxies",): {"GET": _PROXY.list_proxies, "POST": _PROXY.create_proxy},
    ("populate",): {"POST": _PROXY.populate},
    ("proxies", "*"): {
        "GET": _PROXY.show_proxy,
        "POST": _PROXY.update_proxy,
        "PATCH": _PROXY.update_proxy,
        "DELETE": _PROXY.delete_proxy,
    },
    ("proxies", "*", "toxics"): {"GET": _PROXY.list_toxics, "POST": _PROXY.create_toxic},
    ("proxies", "*", "toxics", "*"): {
        "GET": _PROXY.show_toxic,
        "POST": _PROXY.update_toxic,
        "PATCH": _PROXY.update_toxic,
        "DELETE": _PROXY.delete_toxic,
    },
    ("reset",): {"POST": _PROXY.reset},
    ("version",): {"GET": _PROXY.version},
    ("metrics",): {"GET": _PROXY.metrics},
}


def _match(segments: list[str]) -> dict[str, Route] | None:
    # "*" matches one non-empty path segment, such as a proxy or toxic name.
    for pattern, routes in _ROUTES.items():
        if len(pattern) == len(segments) and all(
            want == got or (want == "*" and got)
            for want, got in zip(pattern, segments, strict=True)
        ):
            return routes
    return None
