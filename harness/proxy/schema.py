"""Parse and check API request bodies into typed requests, raising BadRequestError.

Types are checked as Toxiproxy's JSON decoding checks them: attributes are int64 integers, a
JSON null leaves a field at its default or current value, and unknown keys are ignored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from .address import split_host_port
from .errors import (
    BAD_REQUEST_BODY,
    INVALID_STREAM,
    INVALID_TOXIC_TYPE,
    MISSING_FIELD,
    BadRequestError,
)
from .toxics import TOXIC_TYPES, Direction, InvalidAttributeError, Toxic
from .toxics.base import INT64_MAX, INT64_MIN

# A new proxy with no listen address binds loopback on a free port (Toxiproxy binds every
# interface), so that a proxy is never reachable from other hosts unless asked for.
DEFAULT_LISTEN = "127.0.0.1:0"


@dataclass(frozen=True)
class ProxyRequest:
    """A proxy to create, from POST /proxies, /populate or the config file."""

    name: str
    listen: str
    upstream: str
    enabled: bool


@dataclass(frozen=True)
class ProxyChange:
    """The fields a PATCH or POST on /proxies/{proxy} changes; None leaves a field as it is."""

    listen: str | None
    upstream: str | None
    enabled: bool | None


@dataclass(frozen=True)
class ToxicRequest:
    """A toxic to create, checked up to its type; attributes are checked once the name is free."""

    name: str
    toxic_type: type[Toxic]
    stream: Direction
    toxicity: float
    attributes: object


def bad_body(detail: str) -> BadRequestError:
    """Return a 400 error whose message starts as Toxiproxy's does."""
    return BadRequestError(f"{BAD_REQUEST_BODY}: {detail}")


def decode_json(body: bytes) -> object:
    """Decode a request body; raise BadRequestError when it is empty or not JSON."""
    if not body.strip():
        raise bad_body("EOF")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_body(f"invalid JSON: {exc}") from exc


def decode_object(body: bytes) -> dict[str, object]:
    """Decode a request body that must be a JSON object."""
    value = decode_json(body)
    if not isinstance(value, dict):
        raise bad_body(f"expected a JSON object, got {_json_type(value)}")
    return value


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _optional_str(data: Mapping[str, object], key: str, where: str = "") -> str | None:
    value = data.get(key)
    if value is None or isinstance(value, str):
        return value
    raise bad_body(f"field {key}{where} must be a string, got {_json_type(value)}")


def _optional_bool(data: Mapping[str, object], key: str, where: str = "") -> bool | None:
    value = data.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise bad_body(f"field {key}{where} must be true or false, got {_json_type(value)}")


def _check_address(address: str, key: str, where: str, upstream: bool) -> None:
    try:
        _host, port = split_host_port(address)
    except ValueError as exc:
        raise BadRequestError(f"invalid {key}{where}: {exc}") from exc
    if upstream and port == 0:
        raise BadRequestError(f"invalid {key}{where}: port 0 cannot be connected to")


def parse_proxy(data: object, position: int | None = None) -> ProxyRequest:
    """Check one proxy object; `position` (from 1) names the entry of a /populate list."""
    where = "" if position is None else f" at proxy {position}"
    if not isinstance(data, dict):
        raise bad_body(f"proxy{where} must be a JSON object, got {_json_type(data)}")

    name = _optional_str(data, "name", where)
    upstream = _optional_str(data, "upstream", where)
    listen = _optional_str(data, "listen", where) or DEFAULT_LISTEN
    enabled = _optional_bool(data, "enabled", where)
    if not name:
        raise BadRequestError(f"{MISSING_FIELD}: name{where}")
    if not upstream:
        raise BadRequestError(f"{MISSING_FIELD}: upstream{where}")
    _check_address(listen, "listen", where, upstream=False)
    _check_address(upstream, "upstream", where, upstream=True)
    return ProxyRequest(name, listen, upstream, True if enabled is None else enabled)


def parse_proxy_list(data: object) -> list[ProxyRequest]:
    """Check every entry of a /populate list before any is created."""
    if not isinstance(data, list):
        raise bad_body(f"expected a JSON array of proxies, got {_json_type(data)}")
    requests = [parse_proxy(entry, position) for position, entry in enumerate(data, start=1)]
    seen: set[str] = set()
    for position, request in enumerate(requests, start=1):
        if request.name in seen:
            raise BadRequestError(f"duplicate proxy name {request.name!r} at proxy {position}")
        seen.add(request.name)
    return requests


def parse_proxy_change(data: dict[str, object]) -> ProxyChange:
    """Check the fields of a proxy update."""
    listen = _optional_str(data, "listen")
    upstream = _optional_str(data, "upstream")
    if listen is not None:
        _check_address(listen, "listen", "", upstream=False)
    if upstream is not None:
        _check_address(upstream, "upstream", "", upstream=True)
    return ProxyChange(listen, upstream, _optional_bool(data, "enabled"))


def parse_toxicity(data: Mapping[str, object], default: float) -> float:
    """Return the toxicity field, or `default` when it is missing or null."""
    value = data.get("toxicity")
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_body(f"field toxicity must be a number, got {_json_type(value)}")
    return float(value)


def parse_toxic(data: dict[str, object]) -> ToxicRequest:
    """Check a new toxic's fields in Toxiproxy's order: field types, stream, then type."""
    name = _optional_str(data, "name") or ""
    type_name = _optional_str(data, "type") or ""
    stream_text = _optional_str(data, "stream") or "downstream"
    toxicity = parse_toxicity(data, 1.0)

    try:
        stream = Direction(stream_text.lower())
    except ValueError:
        raise BadRequestError(INVALID_STREAM) from None
    toxic_type = TOXIC_TYPES.get(type_name)
    if toxic_type is None:
        raise BadRequestError(f"{INVALID_TOXIC_TYPE}: {type_name!r}")
    return ToxicRequest(
        name or f"{type_name}_{stream}", toxic_type, stream, toxicity, data.get("attributes")
    )


def parse_attributes(
    toxic_type: type[Toxic], raw: object, current: Mapping[str, int] | None = None
) -> dict[str, int]:
    """Merge raw attributes over `current` (or zeros); raise BadRequestError on bad values."""
    merged = {key: 0 for key in toxic_type.attribute_names}
    if current is not None:
        merged.update(current)
    if raw is None:
        return merged
    if not isinstance(raw, dict):
        raise bad_body(f"attributes must be a JSON object, got {_json_type(raw)}")

    for key in toxic_type.attribute_names:
        value = raw.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad_body(
                f"attribute {key} of a {toxic_type.type_name} toxic must be an integer, "
                f"got {json.dumps(value)}"
            )
        if not INT64_MIN <= value <= INT64_MAX:
            raise bad_body(f"attribute {key} is out of the int64 range, got {value}")
        merged[key] = value
    return merged


def build_toxic(request: ToxicRequest) -> Toxic:
    """Create the toxic of a checked request, checking its attribute values."""
    attributes = parse_attributes(request.toxic_type, request.attributes)
    try:
        return request.toxic_type(request.name, request.stream, request.toxicity, attributes)
    except InvalidAttributeError as exc:
        raise bad_body(str(exc)) from exc


def update_toxic(toxic: Toxic, data: dict[str, object]) -> Toxic:
    """Return a copy of `toxic` with the attributes and toxicity of an update merged in."""
    toxicity = parse_toxicity(data, toxic.toxicity)
    attributes = parse_attributes(type(toxic), data.get("attributes"), toxic.attributes)
    try:
        return toxic.replace(toxicity, attributes)
    except InvalidAttributeError as exc:
        raise bad_body(str(exc)) from exc
