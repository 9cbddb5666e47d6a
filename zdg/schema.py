"""A JSON Schema for graph files, generated from the pydantic models and every registered node type's Params.

Editors that read `# yaml-language-server: $schema=...` (the graphs' first line) complete and check
node types and their params with it; `zdg validate` stays the authority (edges, ports, types, DAG).
"""

from __future__ import annotations

import json
from typing import Any

from zdg.registry import registered_types, resolve
from zdg.spec import GraphSpec

CUSTOM_TYPE = r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"  # package.module:Class


def _hoisted(schema: dict[str, Any], prefix: str, defs: dict[str, Any]) -> dict[str, Any]:
    """`schema` with its own $defs moved into `defs` under `prefix` names (refs rewritten)."""
    own = schema.pop("$defs", {})
    text = json.dumps(schema)
    for name, sub in own.items():
        text = text.replace(f'"#/$defs/{name}"', f'"#/$defs/{prefix}{name}"')
        defs[f"{prefix}{name}"] = json.loads(json.dumps(sub).replace(f'"#/$defs/{name}"', f'"#/$defs/{prefix}{name}"'))
    return json.loads(text)


def graph_schema() -> dict[str, Any]:
    schema = GraphSpec.model_json_schema(by_alias=True)
    defs = schema.setdefault("$defs", {})
    node = defs["NodeSpec"]
    types = sorted(registered_types())
    node["properties"]["type"] = {"anyOf": [{"enum": types}, {"type": "string", "pattern": CUSTOM_TYPE}],
                                  "description": "a registered node type, or package.module:Class"}
    rules = []
    for name in types:
        cls = resolve(name)
        params = _hoisted(cls.Params.model_json_schema(), f"{name}__", defs)
        defs[f"params_{name}"] = params
        rules.append({"if": {"properties": {"type": {"const": name}}, "required": ["type"]},
                      "then": {"properties": {"params": {"$ref": f"#/$defs/params_{name}"}}}})
    node["allOf"] = rules
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "zdg graph"
    return schema


def render_schema() -> str:
    return json.dumps(graph_schema(), indent=1, sort_keys=True) + "\n"
