"""Input schemas from servers: repaired into what both model APIs accept, or refused with a reason."""
from __future__ import annotations

import pytest

from tools.mcp.schema import SchemaRejected, repair_schema

NOTE = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}


def test_local_refs_are_inlined_and_anyof_inside_properties_is_kept() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"note": {"$ref": "#/$defs/Note", "description": "the note"},
                       "old": {"$ref": "#/definitions/Note"},
                       "limit": {"anyOf": [{"type": "integer"}, {"type": "null"}]}},
        "$defs": {"Note": NOTE}, "definitions": {"Note": NOTE},
    }
    repaired = repair_schema(schema)
    assert repaired["properties"]["note"] == {**NOTE, "description": "the note"}
    assert repaired["properties"]["old"] == NOTE
    assert repaired["properties"]["limit"] == {"anyOf": [{"type": "integer"}, {"type": "null"}]}
    assert "$defs" not in repaired and "definitions" not in repaired and "$schema" not in repaired
    assert "$defs" in schema  # the server's listing is not changed in place


def test_the_root_becomes_a_plain_object() -> None:
    assert repair_schema({}) == {"type": "object", "properties": {}}
    assert repair_schema({"properties": {"a": {"type": "string"}}})["type"] == "object"
    assert repair_schema({"type": ["object", "null"], "properties": {}})["type"] == "object"
    merged = repair_schema({"allOf": [NOTE, {"properties": {"b": {"type": "integer"}}, "required": ["b"]}]})
    assert merged["type"] == "object" and set(merged["properties"]) == {"title", "b"}
    assert merged["required"] == ["title", "b"] and "allOf" not in merged
    loose = repair_schema({"type": "object", "properties": {"a": {}}, "anyOf": [{"required": ["a"]}]})
    assert "anyOf" not in loose and loose["properties"] == {"a": {}}


@pytest.mark.parametrize("schema, why", [
    ({"type": "string"}, "root must be an object"),
    ({"anyOf": [{"type": "string"}, {"type": "integer"}]}, "root must be an object"),
    ({"type": "object", "properties": {"a": {"$ref": "https://example.com/s.json"}}}, "not local"),
    ({"type": "object", "properties": {"a": {"$ref": "#/$defs/Missing"}}}, "points nowhere"),
    ({"type": "object", "properties": {"n": {"$ref": "#/$defs/Node"}},
      "$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}}}, "recursive"),
    ({"type": "object", "properties": {f"p{i}": {"type": "string", "description": "x" * 200} for i in range(600)}},
     "larger than"),
    ("not a schema", "not a JSON object"),
])
def test_schemas_that_cannot_be_repaired_are_refused(schema: object, why: str) -> None:
    with pytest.raises(SchemaRejected, match=why):
        repair_schema(schema)
