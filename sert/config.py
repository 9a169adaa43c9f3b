"""Build typed config dataclasses from plain mappings, with one-line errors naming the key.

Stages read ``params.yaml`` and call ``from_mapping`` for their section; the library only
ever sees the resulting dataclasses. Hand-written (60 lines) rather than pulling in pydantic:
the configs are flat dataclasses of scalars, and the error format is ours.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

from sert.errors import ParamsError

T = TypeVar("T")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ParamsError:
                pass
        raise ParamsError(f"{key}: expected {' or '.join(_type_name(a) for a in args)}, got {value!r}")
    if tp is Any:
        return value
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamsError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if origin is list:
        if not isinstance(value, list):
            raise ParamsError(f"{key}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp) or (Any,)
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float) and isinstance(value, bool):
        raise ParamsError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ParamsError(f"{key}: expected {_type_name(tp)}, got {value!r}")


def from_mapping(cls: type[T], data: Any, prefix: str) -> T:
    """Instantiate dataclass ``cls`` from ``data``; unknown keys and wrong types are errors."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ParamsError(f"{prefix}: expected a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ParamsError(f"{prefix}.{unknown[0]}: unknown key; allowed: {', '.join(fields)}")
    values = {name: _coerce(value, hints[name], f"{prefix}.{name}") for name, value in data.items()}
    return cls(**values)


def check(condition: bool, key: str, message: str) -> None:
    """Raise a ParamsError for ``key`` unless ``condition`` holds."""
    if not condition:
        raise ParamsError(f"{key}: {message}")
