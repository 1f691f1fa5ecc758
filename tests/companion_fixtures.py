"""Helpers shared by the companion-graph tests: a companion (deps + checkpointed graph) on a
memory stack, one opened like a separate process would, and a scripted chat model.

Every companion embeds the evidence reader's ~200 prototype phrases at start-up (~1 s with
MiniLM on two cores); the tests' stacks share one in-process memo of the offline embedder so
that cost is paid once per test run, not once per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable, RunnableLambda

from app.companion import Companion
from app.settings import Settings
from graphs.configuration import CompanionSettings
from graphs.models.template import TemplateChatModel
from graphs.outbox import Outbox
from memories.config import MemorySettings
from memories.embeddings import LocalMiniLMEmbeddings
from memories.stack import MemoryStack, open_memory

SUCCESS_REPLY = "That helped, I got started."
FAILURE_REPLY = "That didn't help, I gave up."


class ScriptedChatModel(BaseChatModel):
    """Replies with the scripted texts in order (the last one repeats); raises ``error`` instead
    when set. Structured output returns ``structured`` validated by the schema, or raises."""

    replies: list[str] = []
    error: str | None = None
    structured: dict[str, Any] | None = None
    seen: list[list[BaseMessage]] = []  # the messages of every call, for assertions

    @property
    def _llm_type(self) -> str:
        return "scripted-fake"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        self.seen.append(list(messages))
        if self.error:
            raise RuntimeError(self.error)
        text = self.replies[min(len(self.seen) - 1, len(self.replies) - 1)] if self.replies else ""
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    def with_structured_output(self, schema: Any, **kwargs: Any) -> Runnable[Any, Any]:  # type: ignore[override]
        def answer(_: Any) -> Any:
            if self.structured is None:
                raise RuntimeError("scripted model: no structured answer")
            return schema.model_validate(self.structured)

        return RunnableLambda(answer)


class MemoEmbeddings(Embeddings):
    """The offline embedder with an in-process memo (deterministic model: same text, same vector)."""

    def __init__(self, inner: LocalMiniLMEmbeddings) -> None:
        self.inner = inner
        self._memo: dict[str, list[float]] = {}

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        missing = [t for t in dict.fromkeys(texts) if t not in self._memo]
        if missing:
            self._memo.update(zip(missing, self.inner.embed_documents(missing), strict=True))
        return [self._memo[t] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        missing = [t for t in dict.fromkeys(texts) if t not in self._memo]
        if missing:
            self._memo.update(zip(missing, await self.inner.aembed_documents(missing), strict=True))
        return [self._memo[t] for t in texts]

    async def aembed_query(self, text: str) -> list[float]:
        return (await self.aembed_documents([text]))[0]


_MEMOS: dict[int, MemoEmbeddings] = {}


def memoized(minilm: LocalMiniLMEmbeddings) -> MemoEmbeddings:
    """One memo per embedder instance (the session's ``minilm`` fixture)."""
    return _MEMOS.setdefault(id(minilm), MemoEmbeddings(minilm))


@asynccontextmanager
async def open_stack(redis_url: str, minilm: LocalMiniLMEmbeddings, namespace: str | None = None
                     ) -> AsyncIterator[MemoryStack]:
    """A memory layer with all five elements on ``namespace`` (a fresh one by default), with its
    own Redis client; closed on exit."""
    stack = await open_memory(redis_url, MemorySettings(namespace=namespace or fresh_namespace()),
                              base_embeddings=(memoized(minilm), minilm.model_id, minilm.dims))
    try:
        yield stack
    finally:
        await stack.aclose()


#: A companion as an app process holds it (its memory stack, deps and checkpointed graph).
Rig = Companion


async def build_rig(stack: MemoryStack, data_dir: Path, *, chat_model: BaseChatModel | None = None,
                    companion: CompanionSettings | None = None, outbox: Outbox | None = None) -> Companion:
    """The companion on ``stack`` as every entry point composes it (the template model unless given)."""
    settings = Settings(redis_url="redis://unused", data_dir=data_dir, companion=companion or CompanionSettings())
    return await Companion.assemble(stack, settings, chat_model=chat_model or TemplateChatModel(), outbox=outbox)


@asynccontextmanager
async def open_rig(redis_url: str, minilm: LocalMiniLMEmbeddings, namespace: str, data_dir: Path,
                   **kwargs: Any) -> AsyncIterator[Rig]:
    """A companion with its own Redis client on ``namespace``: what a second (or restarted)
    process sees. Closed on exit."""
    async with open_stack(redis_url, minilm, namespace) as stack:
        yield await build_rig(stack, data_dir, **kwargs)


def namespace_of(stack: MemoryStack) -> str:
    """The memory namespace a stack writes to."""
    return stack.registry.backend.settings.namespace


def fresh_namespace() -> str:
    """A namespace no other test uses."""
    return f"t{uuid.uuid4().hex[:12]}"
