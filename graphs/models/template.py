"""A deterministic, instant chat model with no weights: it says the draft the graph wrote.

Used by the learning evaluation and the benchmark (wording must not add noise there) and as
the last-resort model. Contract: the reply is the text after the LAST line starting with
``Draft reply:`` in the system message(s); without one, a neutral coaching line.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, ClassVar

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable

from graphs.models.capabilities import ModelCapabilities

DRAFT_PREFIX = "Draft reply:"
NEUTRAL_REPLY = "I'm here with you. What's one tiny thing we could try next?"
MODEL_NAME = "template"
_METADATA = {"model_name": MODEL_NAME, "finish_reason": "stop"}


def draft_from(messages: Sequence[BaseMessage]) -> str | None:
    """The text after the last ``Draft reply:`` line of the system messages, if any."""
    found: str | None = None
    for message in messages:
        if not isinstance(message, SystemMessage):
            continue
        for line in message.text.splitlines():
            stripped = line.strip()
            if stripped.startswith(DRAFT_PREFIX):
                found = stripped[len(DRAFT_PREFIX) :].strip()
    return found or None


class TemplateChatModel(BaseChatModel):
    """Replies with the graph's draft (see module doc), whole or word by word.

    It has no tools and no structured output: ``bind_tools`` and ``with_structured_output``
    raise NotImplementedError (LangChain's own answer for a model without them), so callers
    take their deterministic path instead of receiving replies that only look like calls.
    """

    #: It "rewords" by saying the draft back (so the reword path runs in evaluations), and writes nothing.
    capabilities: ClassVar[ModelCapabilities] = ModelCapabilities(rewords=True, writes=False)

    @property
    def _llm_type(self) -> str:
        return "sam2voice-template"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": MODEL_NAME}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        """Tracing's standard parameters: no sampling, so provider and model name only."""
        params = LangSmithParams(ls_provider="sam2voice", ls_model_name=str(kwargs.get("model") or MODEL_NAME),
                                 ls_model_type="chat")
        if stop:
            params["ls_stop"] = stop
        return params

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        message = AIMessage(content=reply_to(messages), response_metadata=dict(_METADATA))
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        # A string scan: no worker thread (the base class would hop to an executor).
        return self._generate(messages, stop, **kwargs)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for word in _words(reply_to(messages)):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=word))
            if run_manager is not None:
                run_manager.on_llm_new_token(word, chunk=chunk)
            yield chunk
        yield ChatGenerationChunk(message=AIMessageChunk(content="", response_metadata=dict(_METADATA),
                                                         chunk_position="last"))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for word in _words(reply_to(messages)):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=word))
            if run_manager is not None:
                await run_manager.on_llm_new_token(word, chunk=chunk)
            yield chunk
        yield ChatGenerationChunk(message=AIMessageChunk(content="", response_metadata=dict(_METADATA),
                                                         chunk_position="last"))

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: Any = None, **kwargs: Any) -> Runnable[Any, Any]:
        """Always NotImplementedError: the template model only says drafts (so it has no
        structured output either, which LangChain builds on tool calls)."""
        raise NotImplementedError("the template model has no tool calls or structured output: it says the draft")


def reply_to(messages: Sequence[BaseMessage]) -> str:
    """What the template model says to ``messages``: the draft, else the neutral line."""
    return draft_from(messages) or NEUTRAL_REPLY


def _words(text: str) -> list[str]:
    """``text`` in pieces that join back to it (each word with the space before it)."""
    return re.findall(r"\s*\S+", text) or [text]
