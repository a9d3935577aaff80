"""`--set KEY=VALUE` overrides of a preset's TOML, and the TOML of an effective preset.

An override edits the raw TOML document before it is validated, so an overridden value is
checked exactly as if it were written in the file, with the same one-line errors naming the
key path (`presets/x.toml: recipes.large.epochs: expected an integer, got "ten"`).
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
from collections.abc import Sequence
from typing import Any

from prunebench.errors import ConfigError

_SEGMENT = re.compile(r"^([A-Za-z0-9_-]+)((?:\[\d+\])*)$")
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def parse_value(text: str) -> Any:
    """A TOML value (`10`, `0.05`, `true`, `[0, 1]`, `{ ratio = 0.5 }`, `"x"`), else the text itself."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _path(key: str, file: str) -> list[str | int]:
    """`methods[0].options.ratio` (or `methods.0.options.ratio`) -> ["methods", 0, "options", "ratio"]."""
    out: list[str | int] = []
    for part in key.split("."):
        m = _SEGMENT.match(part)
        if not m:
            raise ConfigError(f"{file}: --set {key}: not a key path (e.g. recipes.large.epochs, methods[0].options.ratio)")
        name, indices = m.groups()
        out.append(int(name) if name.isdigit() else name)
        out += [int(i) for i in re.findall(r"\d+", indices)]
    return out


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str], file: str) -> dict[str, Any]:
    """A copy of the TOML document `raw` with each `KEY=VALUE` of `overrides` set, in order.
    Missing tables on the way are created; the values are validated later, with the file's."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"{file}: --set expects KEY=VALUE, got {item!r}")
        path = _path(key, file)
        node: Any = raw
        for i, step in enumerate(path):
            where = ".".join(map(str, path[:i])) or "the preset"
            last = i == len(path) - 1
            if isinstance(node, list):
                if not isinstance(step, int) or not 0 <= step < len(node):
                    raise ConfigError(f"{file}: --set {key}: {where} is a list of {len(node)}; give an index 0..{len(node) - 1}")
            elif isinstance(node, dict):
                if isinstance(step, int):
                    step = str(step)
                if not last and step not in node:
                    node[step] = {}
            else:
                raise ConfigError(f"{file}: --set {key}: {where} is {json.dumps(node)}, not a table")
            if last:
                node[step] = parse_value(text.strip())
            else:
                node = node[step]
    return raw


def _key(k: str) -> str:
    return k if _BARE_KEY.match(k) else json.dumps(k)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }" if v else "{}"
    raise ConfigError(f"cannot write {v!r} as TOML")


def _is_table_list(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def to_toml(doc: dict[str, Any], prefix: str = "") -> str:
    """A TOML document (tables as [sections], lists of tables as [[sections]]) that `tomllib` reads
    back to `doc`."""
    lines = [f"{_key(k)} = {_value(v)}" for k, v in doc.items() if not isinstance(v, dict) and not _is_table_list(v)]
    for k, v in doc.items():
        name = f"{prefix}{_key(k)}"
        for header, table in [(f"[{name}]", v)] if isinstance(v, dict) else [(f"[[{name}]]", x) for x in v] if _is_table_list(v) else []:
            lines += ["", header]
            body = to_toml(table, f"{name}.")
            if body:
                lines.append(body)
    return "\n".join(lines).strip("\n")
