"""JSON in and out of the store.

Values are stored as JSON text (orjson). Pydantic models and dataclasses are encoded as their JSON
form; on the way back they are rebuilt when a type is known (a step callable's return annotation),
with a cached pydantic ``TypeAdapter``. Without a type, decoded JSON is returned as is.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import sys
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from perdure.errors import PayloadTooLargeError, SerializationError

if TYPE_CHECKING:
    from pydantic import TypeAdapter

# pydantic is imported only when a type needs an adapter: a value can only be a pydantic model
# once the program imported pydantic itself (an embedded app that never does saves ~60 ms of
# import and several MiB).


def _base_model() -> type[Any] | None:
    pydantic = sys.modules.get("pydantic")
    base: type[Any] | None = None if pydantic is None else pydantic.BaseModel
    return base


_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _default(value: Any) -> Any:
    base = _base_model()
    if base is not None and isinstance(value, base):
        return value.model_dump(mode="json")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")


def dumps(value: Any) -> str:
    """Encode ``value`` as JSON text; raise :class:`SerializationError` if it cannot be."""
    try:
        return orjson.dumps(value, default=_default, option=_OPTS).decode()
    except TypeError as exc:
        detail = str(exc).replace("Type is not JSON serializable: ", "")
        raise SerializationError(
            f"value is not JSON-serializable ({detail}); return JSON types, a pydantic model "
            "or a dataclass"
        ) from None


def dumps_limited(value: Any, what: str, limit: int) -> str:
    """Encode ``value`` and check its size against ``limit`` bytes."""
    text = dumps(value)
    size = len(text) if text.isascii() else len(text.encode())
    if size > limit:
        raise PayloadTooLargeError(what, size, limit)
    return text


def loads(text: str | bytes | None) -> Any:
    """Decode JSON text (``None`` stays ``None``)."""
    if text is None:
        return None
    return orjson.loads(text)


_PLAIN = (type(None), bool, int, float, str, list, dict, Any, object)


@functools.lru_cache(maxsize=1024)
def _adapter(tp: Any) -> TypeAdapter[Any] | None:
    if tp in _PLAIN or tp is inspect.Signature.empty:
        return None
    origin = typing.get_origin(tp)
    if origin in (list, dict) and not _needs_rebuild(tp):
        return None
    from pydantic import TypeAdapter

    return TypeAdapter(tp)


def _needs_rebuild(tp: Any) -> bool:
    base = _base_model()
    if isinstance(tp, type) and (
        (base is not None and issubclass(tp, base)) or dataclasses.is_dataclass(tp)
    ):
        return True
    return any(_needs_rebuild(arg) for arg in typing.get_args(tp))


@functools.lru_cache(maxsize=1024)
def return_type(fn: Callable[..., Any]) -> Any:
    """The declared return type of ``fn`` (unwrapping ``Awaitable``), or ``Any``."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        return Any
    tp = hints.get("return", Any)
    origin = typing.get_origin(tp)
    if origin is not None and getattr(origin, "__name__", "") in ("Coroutine", "Awaitable"):
        args = typing.get_args(tp)
        tp = args[-1] if args else Any
    return tp


def convert(value: Any, tp: Any) -> Any:
    """Rebuild ``value`` (decoded JSON) as ``tp`` when ``tp`` needs it (models, dataclasses)."""
    if value is None:
        return None
    try:
        adapter = _adapter(tp)
    except TypeError:  # unhashable or odd annotation
        return value
    if adapter is None:
        return value
    return adapter.validate_python(value)


def decode_as(text: str | bytes | None, tp: Any) -> Any:
    """Decode JSON text and rebuild it as ``tp``."""
    return convert(loads(text), tp)
