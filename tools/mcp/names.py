"""Tool names the model sees for MCP tools: `<server>_<tool>`, valid for both model APIs, stable, unique."""
from __future__ import annotations

import hashlib
import re
from typing import Iterable

MAX_LEN = 64
VALID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_BAD = re.compile(r"[^a-zA-Z0-9_-]+")
_HASH_LEN = 8


def _digest(server: str, tool: str) -> str:
    # Of the original names, so the suffix is the same on every start whatever else is configured.
    return hashlib.sha256(f"{server}\0{tool}".encode()).hexdigest()[:_HASH_LEN]


def _clean(text: str) -> str:
    return _BAD.sub("_", text).strip("_") or "x"


def base_name(server: str, tool: str) -> str:
    """The plain sanitised name; one that had to be shortened ends in a hash of the original names."""
    name = f"{_clean(server)}_{_clean(tool)}"
    if len(name) <= MAX_LEN:
        return name
    return f"{name[: MAX_LEN - _HASH_LEN - 1]}_{_digest(server, tool)}"


def assign_names(pairs: Iterable[tuple[str, str]], taken: Iterable[str] = ()) -> dict[tuple[str, str], str]:
    """A model-facing name for each (server, tool) pair, deterministic and collision-free.

    Pairs are named in sorted order so the result does not depend on which server answered first;
    a name already in use (a built-in tool, or another pair that sanitises the same) gets a hash suffix.
    """
    used = set(taken)
    names: dict[tuple[str, str], str] = {}
    for server, tool in sorted(set(pairs)):
        name = base_name(server, tool)
        if name in used:
            stem = name[: MAX_LEN - _HASH_LEN - 1]
            name = f"{stem}_{_digest(server, tool)}"
            counter = 2
            while name in used:  # a hash collision on top of a name collision: practically never
                suffix = f"_{_digest(server, tool)}{counter}"
                name = f"{stem[: MAX_LEN - len(suffix)]}{suffix}"
                counter += 1
        used.add(name)
        names[(server, tool)] = name
    return names
