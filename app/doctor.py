"""``sam2voice doctor``: check each part of the stack and say what to fix."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from app.runtime import resolve_redis_url
from app.settings import Settings
from memories.connection import check_modules, connect, redact
from memories.embeddings import build_base_embeddings
from memories.stack import open_memory


@dataclass
class Check:
    """One line of the doctor's report."""

    part: str
    ok: bool | None  # None: skipped
    detail: str


async def timed_check(part: str, probe: Callable[[], Awaitable[str]]) -> Check:
    """Run ``probe``: its detail and how long it took, or the error it raised, as a check."""
    start = time.perf_counter()
    try:
        detail = await probe()
    except Exception as exc:  # the doctor reports every failure instead of stopping at the first
        return Check(part, False, f"{type(exc).__name__}: {exc}")
    return Check(part, True, f"{detail} ({(time.perf_counter() - start) * 1000:.0f} ms)")


async def run_checks(settings: Settings) -> list[Check]:
    """Every check, in the order a person would fix them."""
    checks: list[Check] = []
    found: dict[str, Any] = {}  # what earlier checks built, reused by later ones

    async def redis_probe() -> str:
        url = resolve_redis_url(settings)
        found["url"] = url
        client = connect(url, connect_timeout_s=settings.redis_connect_timeout_s,
                         socket_timeout_s=settings.redis_socket_timeout_s)
        try:
            modules = await check_modules(client, url)
            info = await client.info("server")
        finally:
            await client.aclose()
        where = "embedded" if not settings.redis_url else "REDIS_URL"
        version = info.get("valkey_version") or info.get("redis_version")
        return (f"{where} {redact(url)}, server {version}, "
                f"search {modules['search']}, json {modules['ReJSON']}")

    checks.append(await timed_check("Redis + Search + JSON", redis_probe))

    async def layout_probe() -> str:
        from app.migrate import migrate_keys

        if "url" not in found:
            raise RuntimeError("not checked: Redis failed above")
        client = connect(found["url"], connect_timeout_s=settings.redis_connect_timeout_s,
                         socket_timeout_s=max(settings.redis_socket_timeout_s, 30.0))
        try:
            report = await migrate_keys(client, settings.memory.namespace, dry_run=True)
        finally:
            await client.aclose()
        if report.moved or report.conflicts:
            raise RuntimeError(f"{len(report.moved) + len(report.conflicts)} keys of namespace "
                               f"{settings.memory.namespace!r} are in the old layout (no {{user}} hash tag) and "
                               "invisible to this version: run `sam2voice redis migrate`")
        return f"cluster-ready: {report.current} per-person keys, each in its person's hash slot"

    checks.append(await timed_check("Key layout", layout_probe))

    async def embedder_probe() -> str:
        built = build_base_embeddings(
            settings.embedding_provider, google_api_key=settings.google_key,
            google_model=settings.google_embedding_model, google_dims=settings.google_embedding_dims)
        embedder, model_id, dims = built
        vector = await embedder.aembed_query("I can't get started on the dishes")
        found["embeddings"] = built
        if len(vector) != dims:
            raise RuntimeError(f"{model_id} returned {len(vector)} dimensions, expected {dims}")
        return f"{settings.embedding_provider}: {model_id}, {dims} dimensions"

    checks.append(await timed_check("Embeddings", embedder_probe))

    async def memory_probe() -> str:
        if "url" not in found or "embeddings" not in found:
            raise RuntimeError("not checked: Redis or the embedder failed above")
        stack = await open_memory(found["url"], settings.memory, base_embeddings=found["embeddings"],
                                  connect_timeout_s=settings.redis_connect_timeout_s,
                                  socket_timeout_s=settings.redis_socket_timeout_s)
        probe_user = f"doctor-{uuid.uuid4().hex[:8]}"
        try:
            from memories.interventions import InterventionMemory

            interventions = stack.registry.get(InterventionMemory)
            if interventions is not None:
                await interventions.save(probe_user, {"text": "probe", "user_context": "doctor probe"})
                hits = await interventions.similar_successes(probe_user, "doctor probe")
                if len(hits) != 1:
                    raise RuntimeError(f"wrote one intervention, retrieval found {len(hits)}")
        finally:
            await stack.registry.forget(probe_user)
            await stack.aclose()
        return f"{len(stack.registry.elements)} elements: {', '.join(stack.registry.elements)}"

    checks.append(await timed_check("Memory elements", memory_probe))

    if settings.google_key:
        async def chat_probe() -> str:
            from langchain_google_genai import ChatGoogleGenerativeAI

            model = ChatGoogleGenerativeAI(model=settings.chat_model, google_api_key=settings.google_key, timeout=20)
            reply = await model.ainvoke("Reply with the single word: ready")
            return f"{settings.chat_model}: {str(reply.content)[:40]!r}"

        checks.append(await timed_check("Gemini chat model", chat_probe))
    else:
        checks.append(Check("Gemini chat model", None, "skipped: GOOGLE_API_KEY is not set (offline mode)"))
    checks.append(voice_check(settings))
    return checks


def voice_check(settings: Settings) -> Check:
    """Which voice ``sam2voice serve``/``voice`` will speak with, and whether it can (loads no model)."""
    if settings.google_key:
        return Check("Voice", True, f"Gemini Live {settings.live_model} (connects at the first session)")
    try:
        from voice.speech import speech_status
    except ImportError as exc:
        return Check("Voice", None, f"offline voice not installed: pip install 'sam2voice[voice]' ({exc})")
    status = speech_status()
    stt, tts = status["stt"], status["tts"]
    if stt["available"] and tts["available"]:
        return Check("Voice", True, f"offline speech: {stt['engine']} (whisper tiny.en) in, {tts['engine']} out")
    hints = "; ".join(str(part.get("hint")) for part in (stt, tts) if not part["available"])
    return Check("Voice", False, f"offline voice incomplete: {hints}")
