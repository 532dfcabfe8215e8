"""Input schemas from MCP servers made acceptable to both model APIs, or refused with a reason."""
from __future__ import annotations

import copy
import json
from typing import Any

MAX_SCHEMA_BYTES = 100_000
_MAX_DEPTH = 32
# Keywords neither API needs at the root; OpenAI rejects combinators there.
_ROOT_DROP = ("$schema", "$id", "anyOf", "oneOf", "not", "enum", "const")


class SchemaRejected(ValueError):
    """The schema cannot be repaired; the message says why."""


def repair_schema(schema: Any) -> dict[str, Any]:
    """An object schema both APIs accept: local $refs inlined, root made a plain `type: object`.

    Root-level allOf of objects is merged; root-level anyOf/oneOf are dropped (the server still
    validates the arguments, so the worst case is an error result the model can correct).
    """
    if not isinstance(schema, dict):
        raise SchemaRejected("the input schema is not a JSON object")
    if len(json.dumps(schema, default=str)) > MAX_SCHEMA_BYTES:
        raise SchemaRejected(f"the input schema is larger than {MAX_SCHEMA_BYTES // 1000} KB")
    defs = {**schema.get("definitions", {}), **schema.get("$defs", {})}
    root = _inline(schema, defs, 0, ())
    for key in ("$defs", "definitions"):
        root.pop(key, None)
    if "allOf" in root:
        root = _merge_all_of(root)
    kind = root.get("type")
    if isinstance(kind, list):
        kind = "object" if "object" in kind else kind
    if kind is None and ("properties" in root or not any(k in root for k in ("anyOf", "oneOf", "enum", "const"))):
        kind = "object"  # a tool without arguments often sends {}
    if kind != "object":
        raise SchemaRejected(f"the input schema's root must be an object, not {json.dumps(root.get('type'))}")
    for key in _ROOT_DROP:
        root.pop(key, None)
    root["type"] = "object"
    properties = root.get("properties")
    if not isinstance(properties, dict):
        root["properties"] = {}
    required = root.get("required")
    if required is not None and not (isinstance(required, list) and all(isinstance(r, str) for r in required)):
        del root["required"]
    return root


def _inline(node: Any, defs: dict[str, Any], depth: int, trail: tuple[str, ...]) -> Any:
    if depth > _MAX_DEPTH:
        raise SchemaRejected("the input schema nests too deeply")
    if isinstance(node, list):
        return [_inline(item, defs, depth + 1, trail) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        ref = node["$ref"]
        if not isinstance(ref, str) or not ref.startswith(("#/$defs/", "#/definitions/")):
            raise SchemaRejected(f"the input schema uses a $ref that is not local: {str(ref)[:80]}")
        key = ref.rsplit("/", 1)[-1]
        if key not in defs:
            raise SchemaRejected(f"the input schema's $ref {ref} points nowhere")
        if key in trail:
            raise SchemaRejected(f"the input schema is recursive ({ref})")
        target = _inline(copy.deepcopy(defs[key]), defs, depth + 1, trail + (key,))
        siblings = {k: _inline(v, defs, depth + 1, trail) for k, v in node.items() if k != "$ref"}
        return {**target, **siblings} if isinstance(target, dict) else target
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("$defs", "definitions"):
            continue  # the root's were collected up front; what they hold is inlined where used
        if key == "properties" and isinstance(value, dict):
            # Property names are data here, not keywords.
            out[key] = {name: _inline(sub, defs, depth + 1, trail) for name, sub in value.items()}
        else:
            out[key] = _inline(value, defs, depth + 1, trail)
    return out


def _merge_all_of(root: dict[str, Any]) -> dict[str, Any]:
    merged = {k: v for k, v in root.items() if k != "allOf"}
    properties = dict(merged.get("properties") or {})
    required = list(merged.get("required") or [])
    for part in root["allOf"]:
        if not isinstance(part, dict):
            continue
        properties.update(part.get("properties") or {})
        required += [r for r in part.get("required") or [] if r not in required]
        if part.get("type") is not None:
            merged.setdefault("type", part["type"])
    merged["properties"] = properties
    if required:
        merged["required"] = required
    return merged
