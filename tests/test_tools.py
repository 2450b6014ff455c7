"""Tool definitions validate against each SDK's own types, keep OpenAI's strict rules on
every example spec, and map back to events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest

from railguard.gate_demo import PAYOUT_SPEC
from railguard.spec import load
from railguard.verifier.tools import SUBMIT_PLAN, TOOL_NAME, event_for_tool, tool_names, tools

from .conftest import EXAMPLES

SPECS = [*sorted(EXAMPLES.glob("*.yaml")), PAYOUT_SPEC]
IDS = [p.stem for p in SPECS]

# What OpenAI's strict mode accepts (Structured Outputs "supported schemas").
STRICT_KEYWORDS = {
    "type", "properties", "required", "additionalProperties", "items", "enum", "const",
    "anyOf", "description", "pattern", "format", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "multipleOf", "minItems", "maxItems", "$defs", "$ref", "title",
}
STRICT_TYPES = {"string", "number", "integer", "boolean", "object", "array", "null"}


def _strict_problems(schema: Any, path: str = "$") -> list[str]:
    problems: list[str] = []
    if not isinstance(schema, dict):
        return [f"{path}: not a schema object"]
    for key in schema:
        if key not in STRICT_KEYWORDS:
            problems.append(f"{path}: keyword `{key}` is not allowed in strict mode")
    types = schema.get("type")
    for t in types if isinstance(types, list) else [types] if types else []:
        if t not in STRICT_TYPES:
            problems.append(f"{path}: type {t}")
    if types == "object" or (isinstance(types, list) and "object" in types):
        if schema.get("additionalProperties") is not False:
            problems.append(f"{path}: additionalProperties must be false")
        if sorted(schema.get("required", [])) != sorted(schema.get("properties", {})):
            problems.append(f"{path}: every property must be required")
    for name, sub in schema.get("properties", {}).items():
        problems += _strict_problems(sub, f"{path}.{name}")
    if "items" in schema:
        problems += _strict_problems(schema["items"], f"{path}[]")
    for index, sub in enumerate(schema.get("anyOf", [])):
        problems += _strict_problems(sub, f"{path}|{index}")
    return problems


@pytest.mark.parametrize("path", SPECS, ids=IDS)
def test_openai_tools_keep_strict_mode_rules_on_every_example(path: Path) -> None:
    for tool in tools(load(path), "openai"):
        function = tool["function"]
        assert function["strict"] is True
        parameters = function["parameters"]
        assert parameters["type"] == "object"
        assert "anyOf" not in parameters
        assert _strict_problems(parameters) == [], function["name"]


@pytest.mark.parametrize("path", SPECS, ids=IDS)
def test_openai_tools_validate_against_the_sdk_types(path: Path) -> None:
    from openai.types.chat import ChatCompletionFunctionTool, ChatCompletionToolParam
    from pydantic import TypeAdapter

    adapter = TypeAdapter(ChatCompletionToolParam)
    for tool in tools(load(path), "openai"):
        adapter.validate_python(tool)
        assert ChatCompletionFunctionTool.model_validate(tool).function.name == tool["function"]["name"]


@pytest.mark.parametrize("path", SPECS, ids=IDS)
def test_anthropic_tools_validate_against_the_sdk_types(path: Path) -> None:
    from anthropic.types import ToolParam
    from pydantic import TypeAdapter

    adapter = TypeAdapter(ToolParam)
    for tool in tools(load(path), "anthropic"):
        validated = adapter.validate_python(tool)
        assert set(tool) <= set(ToolParam.__annotations__)
        assert validated["input_schema"]["type"] == "object"


@pytest.mark.parametrize("path", SPECS, ids=IDS)
def test_mcp_tools_validate_against_the_sdk_types_with_honest_hints(path: Path) -> None:
    from mcp.types import Tool

    spec = load(path)
    for tool in tools(spec, "mcp"):
        parsed = Tool.model_validate(tool)
        assert parsed.annotations is not None
        event = event_for_tool(spec, parsed.name)
        if event is None:
            continue
        ts = [t for t in spec.transitions if t.event == event]
        assert parsed.annotations.destructive_hint == any(t.irreversible for t in ts)
        assert parsed.annotations.read_only_hint == all(t.is_self_loop and t.effect is None and not t.assign for t in ts)


@pytest.mark.parametrize("path", SPECS, ids=IDS)
def test_json_schema_tools_are_valid_schemas_that_refuse_an_actor(path: Path) -> None:
    spec = load(path)
    defined = tools(spec, "json-schema")
    for tool in defined:
        jsonschema.Draft202012Validator.check_schema(tool["schema"])
        assert TOOL_NAME.fullmatch(tool["name"])
    plan = next(t for t in defined if t["name"] == SUBMIT_PLAN)["schema"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"workflow": spec.name, "actor": "root", "steps": []}, plan)


def test_tools_for_roles_list_only_the_events_they_may_fire() -> None:
    spec = load(EXAMPLES / "refund.yaml")
    names = [t["name"] for t in tools(spec, "anthropic", roles=["manager"])]
    assert names == ["approve", "reject", SUBMIT_PLAN]
    plan = tools(spec, "anthropic", roles=["manager"])[-1]["input_schema"]
    events = [o["properties"]["event"]["enum"][0] for o in plan["properties"]["steps"]["items"]["anyOf"]]
    assert events == ["approve", "reject"]


def test_params_are_typed_from_their_domains() -> None:
    spec = load(PAYOUT_SPEC)
    (propose,) = [t for t in tools(spec, "json-schema") if t["name"] == "propose"]
    props = propose["schema"]["properties"]
    assert props["amount"]["minimum"] == 1
    assert props["amount"]["maximum"] == 100000
    assert props["payee"]["maxLength"] == 64
    (strict,) = [t for t in tools(spec, "openai") if t["function"]["name"] == "propose"]
    assert "maxLength" not in strict["function"]["parameters"]["properties"]["payee"]
    assert strict["function"]["parameters"]["properties"]["payee"]["pattern"] == "^[\\s\\S]{0,64}$"


def test_decimals_and_sets_and_optional_params_have_exact_schemas() -> None:
    from railguard.spec import loads

    spec = loads("""
railguard: 1
name: shop
roles: {clerk: [shop.sell]}
variables:
  price: {type: decimal, min: 0, max: 1000, places: 2, initial: 0}
states:
  open: {initial: true}
  sold: {terminal: success}
  void: {terminal: failure}
on_error: void
transitions:
  - event: sell
    from: open
    to: sold
    permission: shop.sell
    params:
      price: {type: decimal, min: 0, max: 1000, places: 2}
      tags: {type: set, of: {type: enum, values: [gift, sale]}, default: []}
      note: {type: enum, values: [a, b], default: a}
    assign:
      price: params.price
""")
    (sell,) = [t for t in tools(spec, "json-schema") if t["name"] == "sell"]
    schema = sell["schema"]
    assert schema["required"] == ["price"]
    jsonschema.validate({"price": "12.50", "tags": ["gift"]}, schema)
    for bad in ({"price": 12.5}, {"price": "12.505"}, {"price": "1", "tags": ["gift", "gift"]}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
    (strict,) = [t for t in tools(spec, "openai") if t["function"]["name"] == "sell"]
    parameters = strict["function"]["parameters"]
    assert parameters["required"] == ["price", "tags", "note"]
    assert parameters["properties"]["note"]["type"] == ["string", "null"]
    assert None in parameters["properties"]["note"]["enum"]
    jsonschema.validate({"price": "3", "tags": None, "note": None}, parameters)


def test_tool_names_map_back_to_events() -> None:
    spec = load(EXAMPLES / "deploy.yaml")
    mapping = tool_names(spec)
    assert mapping == {e: e for e in spec.events}
    assert event_for_tool(spec, SUBMIT_PLAN) is None
