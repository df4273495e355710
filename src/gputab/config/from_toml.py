"""TOML tables into the config's typed dataclasses: unknown keys, wrong types and where in the file a fault is.

Generic over frozen dataclasses and their type hints (``dict[str, X]``, ``list[X]``, ``X | None``, a number or a
table); :mod:`gputab.config.settings` holds the dataclasses and checks the values once they are built.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from typing import Any, cast, get_args, get_origin, get_type_hints


class Invalid(Exception):
    """A value that does not fit its field: where (the key path) and what is wrong."""

    def __init__(self, keypath: tuple, msg: str) -> None:
        super().__init__(msg)
        self.keypath = keypath
        self.msg = msg


def build(tp: Any, value: Any, keypath: tuple) -> Any:
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise Invalid(keypath, f"expected a table, got {type(value).__name__}")
        hints = get_type_hints(tp)
        names = {f.name for f in dataclasses.fields(tp) if f.name != "path"}
        kwargs = {}
        for key, v in value.items():
            if key not in names:
                known = ", ".join(sorted(names))
                raise Invalid(keypath + (key,), f"unknown key (known keys: {known})")
            kwargs[key] = build(hints[key], v, keypath + (key,))
        missing = [
            f.name
            for f in dataclasses.fields(tp)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and f.name not in kwargs
        ]
        if missing:
            raise Invalid(keypath, f"missing required key(s): {', '.join(missing)}")
        return cast(Any, tp)(**kwargs)  # a dataclass type, built from its checked fields
    if origin is dict:
        kt, vt = get_args(tp)
        if not isinstance(value, dict):
            raise Invalid(keypath, f"expected a table, got {type(value).__name__}")
        return {str(k): build(vt, v, keypath + (k,)) for k, v in value.items()}
    if origin is list:
        (it,) = get_args(tp)
        if not isinstance(value, list):
            raise Invalid(keypath, f"expected a list, got {type(value).__name__}")
        return [build(it, v, keypath + (i,)) for i, v in enumerate(value)]
    args = get_args(tp)
    if args and type(None) in args:  # Optional[X]
        inner = [a for a in args if a is not type(None)][0]
        return build(inner, value, keypath)
    if args and any(dataclasses.is_dataclass(a) for a in args):  # a number, or a table of the same thing
        table = next(a for a in args if dataclasses.is_dataclass(a))
        return build(table if isinstance(value, dict) else next(a for a in args if a is not table), value, keypath)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Invalid(keypath, f"expected a number, got {value!r}")
        if not math.isfinite(value):
            # TOML allows nan/inf; a nan rate would make every cost nan and every comparison false.
            raise Invalid(keypath, f"must be a finite number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(keypath, f"expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise Invalid(keypath, f"expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise Invalid(keypath, f"expected a string, got {value!r}")
        return value
    raise Invalid(keypath, f"unsupported type {tp}")


def dotted(keypath: tuple) -> str:
    """``prices.models.H100-SXM``; keys that are not bare TOML keys are quoted so a message stays one line."""
    return ".".join(str(k) if re.fullmatch(r"[A-Za-z0-9_-]+", str(k)) else json.dumps(str(k)) for k in keypath)


def line_of(text: str, keypath: tuple) -> int | None:
    """Best effort: the line that defines the last string key of ``keypath``."""
    keys = [k for k in keypath if isinstance(k, str)]
    if not keys:
        return None
    last = re.escape(keys[-1])
    pat = re.compile(rf'^\s*(\[+[^\]]*{last}[^\]]*\]+|"?{last}"?\s*=)')
    for n, line in enumerate(text.splitlines(), 1):
        if pat.search(line):
            return n
    return None
