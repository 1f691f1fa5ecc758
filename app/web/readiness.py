"""``/readyz`` of ``sam2voice serve``: can this process take a conversation right now?

``/healthz`` says the process is alive; readiness checks what a turn needs, on the server's
own connections and models (nothing is written, unlike ``sam2voice doctor``, whose ``Check``
shape it shares): Redis answers, it has Search and JSON, the embedder embeds, the chat model
is built, and the voice can speak. Each check has a deadline, so a hanging Redis makes the
answer "not ready" quickly rather than late. A working embedder is remembered for a minute
(a remote embedder is not called on every probe); a failure is checked again every time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from pydantic import BaseModel, Field

from app.companion import Companion
from app.doctor import Check, timed_check
from app.settings import Settings
from app.web.voice_setup import OfflineSpeech, VoiceMode
from memories.connection import check_modules

PROBE_TEXT = "ready"


class ReadyCheck(BaseModel):
    """One part of the readiness answer."""

    part: str = Field(description="What was checked.")
    ok: bool = Field(description="Whether it is ready.")
    detail: str = Field(description="What was found, or what is wrong.")


class ReadyReport(BaseModel):
    """The readiness answer: ``ok`` only when every check is (then 200, else 503)."""

    ok: bool = Field(description="True when every check passed.")
    checks: list[ReadyCheck]


class Readiness:
    """The readiness checks of one server app."""

    def __init__(self, companion: Companion, settings: Settings, *, mode: VoiceMode, speech: OfflineSpeech | None,
                 timeout_s: float = 2.0, model_ttl_s: float = 60.0) -> None:
        self.companion = companion
        self.settings = settings
        self.mode = mode
        self.speech = speech
        self.timeout_s = timeout_s
        self.model_ttl_s = model_ttl_s
        self._embedder_ok_at = -float("inf")
        self._embedder_detail = ""

    async def report(self) -> ReadyReport:
        """Run every check (concurrently); ``ok`` when all pass."""
        checks = await asyncio.gather(self._redis(), self._embedder())
        redis, modules = checks[0]
        found = [redis, modules, checks[1], self._chat_model(), self._speech()]
        return ReadyReport(ok=all(c.ok for c in found),
                           checks=[ReadyCheck(part=c.part, ok=bool(c.ok), detail=c.detail) for c in found])

    async def _within(self, part: str, probe: Callable[[], Awaitable[str]]) -> Check:
        async def bounded() -> str:
            try:
                return await asyncio.wait_for(probe(), self.timeout_s)
            except TimeoutError:
                raise TimeoutError(f"no answer within {self.timeout_s:g} s") from None

        return await timed_check(part, bounded)

    async def _redis(self) -> tuple[Check, Check]:
        client = self.companion.deps.memory.client

        async def ping() -> str:
            await client.ping()
            return "answered PING"

        async def modules() -> str:
            found = await check_modules(client, "the memory layer's Redis")
            return f"search {found['search']}, json {found['ReJSON']}"

        redis = await self._within("Redis", ping)
        if not redis.ok:
            return redis, Check("Redis modules", False, "not checked: Redis is not answering")
        return redis, await self._within("Redis modules", modules)

    async def _embedder(self) -> Check:
        embeddings = self.companion.deps.memory.embeddings
        age = time.monotonic() - self._embedder_ok_at
        if age < self.model_ttl_s:
            return Check("Embedder", True, f"{self._embedder_detail}; checked {age:.0f} s ago")

        async def embed() -> str:
            # The model itself, not the cache: a cache hit would not show the model works.
            vector = await embeddings.inner.aembed_query(PROBE_TEXT)
            if len(vector) != embeddings.dims:
                raise RuntimeError(f"{embeddings.model_id} returned {len(vector)} dimensions, expected "
                                   f"{embeddings.dims}")
            return f"{embeddings.model_id}, {embeddings.dims} dimensions"

        check = await self._within("Embedder", embed)
        if check.ok:
            self._embedder_ok_at, self._embedder_detail = time.monotonic(), check.detail
        return check

    def _chat_model(self) -> Check:
        # Built at start-up; a remote model is not called here (every probe would cost a request).
        model = self.companion.deps.chat_model
        return Check("Chat model", True, f"{model._llm_type} (built at start)")

    def _speech(self) -> Check:
        if self.mode == "live":
            return Check("Speech", True, f"Gemini Live {self.settings.live_model} (connects at each session)")
        if self.speech is None:
            return Check("Speech", False, "offline mode without speech engines")
        return Check("Speech", True, "offline speech-to-text and text-to-speech loaded at start")
