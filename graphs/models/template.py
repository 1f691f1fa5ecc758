"""A deterministic, instant chat model with no weights: it says the draft the graph wrote.

Used by the learning evaluation and the benchmark (wording must not add noise there) and as
the last-resort model. Contract: the reply is the text after the LAST line starting with
``Draft reply:`` in the system message(s); without one, a neutral coaching line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable, RunnableLambda

from graphs.models.errors import StructuredOutputError

DRAFT_PREFIX = "Draft reply:"
NEUTRAL_REPLY = "I'm here with you. What's one tiny thing we could try next?"


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
    """Replies with the graph's draft (see module doc); no tool calls, no structured output."""

    @property
    def _llm_type(self) -> str:
        return "sam2voice-template"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": "template"}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        text = draft_from(messages) or NEUTRAL_REPLY
        message = AIMessage(content=text, response_metadata={"model_name": "template", "finish_reason": "stop"})
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

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Any],
        *,
        tool_choice: str | dict[str, Any] | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """This model unchanged: its replies never carry tool calls (callers pick tools in code)."""
        return self

    def with_structured_output(  # type: ignore[override]
        self, schema: Any, *, include_raw: bool = False, **kwargs: Any
    ) -> Runnable[LanguageModelInput, Any]:
        """A runnable that raises StructuredOutputError when invoked, so callers fall back to
        their deterministic code path."""

        def refuse(_: Any) -> Any:
            raise StructuredOutputError("template model has no structured output")

        return RunnableLambda(refuse, name="template_structured_output")
