"""Build dataclasses from YAML mappings strictly: an unknown key or a value of the wrong type is an error that
names the key, where it sits and what was expected (with a close match for typos)."""
from __future__ import annotations

import dataclasses
import difflib
import typing
from typing import Any, Literal, Union

from ..errors import LynxValueError


class DefinitionError(LynxValueError):
    """A benchmark definition (or one of its parts) is not valid; the message says where and why."""


def build(cls: type, data: Any, where: str) -> Any:
    """``cls(**data)`` after checking every key is a field of the dataclass ``cls`` and every value its type."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise DefinitionError(f"{where} must be a mapping of keys to values, got {type(data).__name__} {data!r}.")
    check_keys(cls, data, where)
    hints = typing.get_type_hints(cls)
    values = {key: check_value(value, hints[key], f"{where}.{key}") for key, value in data.items()}
    return construct(cls, values, where)


def construct(make: Any, values: dict, where: str) -> Any:
    """``make(**values)``; a value the class itself refuses (`LynxValueError`) becomes a `DefinitionError`
    naming where it sits."""
    try:
        return make(**values)
    except DefinitionError:
        raise
    except LynxValueError as err:
        raise DefinitionError(str(err.renamed(f"{where}.{err.field}") if err.field else f"{where}: {err}")) from None


def check_keys(cls: type, data: dict, where: str) -> None:
    known = [f.name for f in dataclasses.fields(cls) if f.init and not f.name.startswith("_")]
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise DefinitionError(f"{where}: unknown key {key!r}.{hint} Known keys: {', '.join(known)}.")


def check_value(value: Any, hint: Any, where: str) -> Any:
    """``value`` checked (and, for nested dataclasses, built) against the type hint ``hint``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin is Union:
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return check_value(value, arg, where)
            except DefinitionError as err:
                errors.append(str(err))
        raise DefinitionError(errors[0] if len(errors) == 1 else f"{where}: {value!r} is not {_name(hint)}.")
    if origin is Literal:
        if value not in args:
            raise DefinitionError(f"{where} must be one of {', '.join(repr(a) for a in args)}; got {value!r}.")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise DefinitionError(f"{where} must be a list ({_name(hint)}), got {value!r}.")
        return [check_value(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)] if args else value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise DefinitionError(f"{where} must be a list ({_name(hint)}), got {value!r}.")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(check_value(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if args and len(args) != len(value):
            raise DefinitionError(f"{where} must list {len(args)} values, got {value!r}.")
        return tuple(check_value(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args))) if args \
            else tuple(value)
    if origin is dict:
        if not isinstance(value, dict):
            raise DefinitionError(f"{where} must be a mapping, got {value!r}.")
        return {str(k): check_value(v, args[1], f"{where}.{k}") for k, v in value.items()} if args else value
    if dataclasses.is_dataclass(hint):
        return build(hint, value, where)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise DefinitionError(f"{where} must be a number, got {value!r}.")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise DefinitionError(f"{where} must be an integer, got {value!r}.")
        return value
    if hint in (str, bool) and not isinstance(value, hint):
        raise DefinitionError(f"{where} must be {'a string' if hint is str else 'true or false'}, got {value!r}.")
    return value


def _name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
