"""JSON schemas and parsers for schema-constrained generation (tool calls and structured output).

A 135M model cannot be trusted to emit a tool call or a JSON object on its own, so the
offline model constrains its sampling to a JSON schema (llama.cpp turns it into a grammar)
and these helpers build that schema and read the result back.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

from langchain_core.messages import ToolCall
from langchain_core.runnables import Runnable, RunnableLambda, RunnableMap, RunnablePassthrough
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import BaseModel, ValidationError
from pydantic.v1 import ValidationError as ValidationErrorV1

from graphs.models.errors import StructuredOutputError

# Tool choices that mean "must call one of the tools".
_FORCED = {"any", "required"}


def tool_specs(tools: Sequence[Any]) -> list[dict[str, Any]]:
    """OpenAI function specs (``{"name", "description", "parameters"}``) of LangChain tools,
    pydantic models, functions or OpenAI tool dicts."""
    return [convert_to_openai_tool(tool)["function"] for tool in tools]


def forced_tool_name(tool_choice: Any) -> str | None:
    """The single tool a ``tool_choice`` names, or None when it names none."""
    if isinstance(tool_choice, dict):
        named = tool_choice.get("function", tool_choice)
        return str(named["name"]) if "name" in named else None
    if isinstance(tool_choice, str) and tool_choice not in _FORCED | {"auto", "none"}:
        return tool_choice
    return None


def select_tools(specs: list[dict[str, Any]], tool_choice: Any) -> list[dict[str, Any]]:
    """The tools the output may call under ``tool_choice`` (empty: reply in text)."""
    if tool_choice == "none" or tool_choice is False:
        return []
    name = forced_tool_name(tool_choice)
    if name is None:
        return specs
    chosen = [spec for spec in specs if spec["name"] == name]
    if not chosen:
        raise ValueError(f"tool_choice names {name!r}, which is not among the bound tools {[s['name'] for s in specs]}")
    return chosen


def must_call_tool(tool_choice: Any) -> bool:
    """Whether ``tool_choice`` requires a tool call whatever the conversation says."""
    return tool_choice is True or tool_choice in _FORCED or forced_tool_name(tool_choice) is not None


def tool_call_schema(specs: list[dict[str, Any]]) -> dict[str, Any]:
    """A schema whose instances are ``{"name": tool, "arguments": args}`` with args valid for
    that very tool: one ``anyOf`` branch per tool, so name and arguments cannot mismatch."""
    branches = [
        {
            "type": "object",
            "properties": {
                "name": {"type": "string", "enum": [spec["name"]]},
                "arguments": spec.get("parameters") or {"type": "object", "properties": {}},
            },
            "required": ["name", "arguments"],
        }
        for spec in specs
    ]
    return branches[0] if len(branches) == 1 else {"anyOf": branches}


def tool_call_hint(specs: list[dict[str, Any]]) -> str:
    """A short instruction listing the tools, appended to the system prompt."""
    lines = [f"- {spec['name']}: {spec.get('description', '').strip()}" for spec in specs]
    return (
        "Call exactly one tool. Tools:\n" + "\n".join(lines) + '\nAnswer with JSON: {"name": ..., "arguments": {...}}'
    )


def parse_tool_call(text: str, specs: list[dict[str, Any]]) -> ToolCall:
    """The tool call in a constrained generation; StructuredOutputError if it is not one."""
    data = _load_json(text)
    names = {spec["name"] for spec in specs}
    if not isinstance(data, dict) or data.get("name") not in names or not isinstance(data.get("arguments"), dict):
        raise StructuredOutputError(f"not a call of one of {sorted(names)}: {text[:200]!r}", raw=text)
    return ToolCall(name=data["name"], args=data["arguments"], id=f"call_{uuid.uuid4().hex[:16]}", type="tool_call")


def response_format(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenAI-style ``response_format`` that makes llama.cpp constrain output to ``schema``."""
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}


def bounded(schema: dict[str, Any], max_chars: int) -> dict[str, Any]:
    """``schema`` with a ``maxLength`` of ``max_chars`` on every string that has none.

    Greedy decoding of a tiny model can repeat a phrase inside a string until the token budget
    runs out and the JSON is cut off; a bound in the grammar makes every string close, so the
    object always ends. Only the grammar is bounded: validation uses the caller's schema.
    """
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("properties", "$defs", "definitions", "patternProperties") and isinstance(value, dict):
            out[key] = {name: bounded(sub, max_chars) for name, sub in value.items()}
        elif key in ("anyOf", "oneOf", "allOf", "prefixItems") and isinstance(value, list):
            out[key] = [bounded(sub, max_chars) for sub in value]
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = bounded(value, max_chars)
        else:
            out[key] = value
    types = out.get("type")
    is_string = types == "string" or (isinstance(types, list) and "string" in types)
    if is_string and "maxLength" not in out and "enum" not in out and "const" not in out:
        out["maxLength"] = max_chars
    return out


def output_schema(schema: Any) -> tuple[str, str, dict[str, Any]]:
    """Name, description and JSON schema of a structured-output ``schema``: a pydantic model (v1 or
    v2), a TypedDict, a JSON schema or an OpenAI function, as LangChain's ``with_structured_output``
    takes them."""
    function = convert_to_openai_tool(schema)["function"]
    parameters = dict(function.get("parameters") or {"type": "object", "properties": {}})
    return str(function["name"]), str(function.get("description") or ""), parameters


def parse_output(text: str, schema: Any) -> Any:
    """Generated JSON read as ``schema``: a validated instance of a pydantic model, else the JSON
    object as a dict; StructuredOutputError when it is neither."""
    data = _load_json(text)
    if is_basemodel_subclass(schema):
        try:
            return schema.model_validate(data) if issubclass(schema, BaseModel) else schema.parse_obj(data)
        except (ValidationError, ValidationErrorV1) as exc:
            raise StructuredOutputError(f"output does not validate as {schema.__name__}: {exc}", raw=text) from exc
    if not isinstance(data, dict):
        raise StructuredOutputError(f"output is not a JSON object: {text[:200]!r}", raw=text)
    return data


def parsed_output(bound: Runnable[Any, Any], schema: Any, *, include_raw: bool) -> Runnable[Any, Any]:
    """``bound`` (a model constrained to ``schema``) followed by :func:`parse_output`; with
    ``include_raw``, ``{"raw", "parsed", "parsing_error"}`` as LangChain's models return it."""
    parse = RunnableLambda(lambda message: parse_output(message.text, schema), name="parse")
    if not include_raw:
        return bound | parse
    parsed = RunnablePassthrough.assign(parsed=itemgetter("raw") | parse, parsing_error=lambda _: None)
    unparsed = RunnablePassthrough.assign(parsed=lambda _: None)
    return RunnableMap(raw=bound) | parsed.with_fallbacks([unparsed], exception_key="parsing_error")


def _load_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        # Usually the generation hit max_tokens inside a long string.
        raise StructuredOutputError(f"output is not complete JSON ({exc.msg}): {text[:200]!r}", raw=text) from exc
