"""Choose the chat model: Gemini when a key is given, else the offline SmolLM2; the template
model on request (evaluations, benchmarks, last resort)."""

from __future__ import annotations

import logging
from typing import Literal

from langchain_core.language_models import BaseChatModel

from graphs.models.errors import ChatModelUnavailable

logger = logging.getLogger(__name__)

ChatProvider = Literal["auto", "local", "gemini", "template"]


def build_chat_model(
    provider: ChatProvider = "auto",
    *,
    google_api_key: str | None = None,
    gemini_model: str = "gemini-2.5-flash",
    base_url: str | None = None,
    timeout_s: float = 20.0,
) -> BaseChatModel:
    """The chat model for ``provider``.

    ``auto`` is Gemini when ``google_api_key`` is given, else the local model. ``base_url``
    points Gemini at another endpoint (a test fake speaking the REST wire format; plain
    ``http://`` works). Raises ChatModelUnavailable for "gemini" without a key, and
    OfflineModelMissing for "local" when the GGUF is not installed.
    """
    if provider == "auto":
        provider = "gemini" if google_api_key else "local"
    if provider == "gemini":
        return _gemini(google_api_key, gemini_model, base_url, timeout_s)
    if provider == "local":
        from graphs.models.offline import LocalChatModel

        return LocalChatModel()
    if provider == "template":
        from graphs.models.template import TemplateChatModel

        return TemplateChatModel()
    raise ChatModelUnavailable(f"unknown chat provider {provider!r}; use one of auto, local, gemini, template")


def _gemini(api_key: str | None, model: str, base_url: str | None, timeout_s: float) -> BaseChatModel:
    if not api_key:
        raise ChatModelUnavailable(
            "The Gemini chat model needs an API key: set GOOGLE_API_KEY, or choose the offline model (local)."
        )
    from langchain_google_genai import ChatGoogleGenerativeAI

    logger.info("chat model: Gemini %s%s", model, f" at {base_url}" if base_url else "")
    # One attempt, bounded: a voice turn must not hang on retries; the graph falls back instead.
    return ChatGoogleGenerativeAI(
        model=model,
        google_api_key=api_key,
        base_url=base_url,
        max_retries=1,
        timeout=timeout_s,
    )
