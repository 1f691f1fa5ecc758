"""Chat models behind LangChain's ``BaseChatModel``: the offline SmolLM2 on llama.cpp, Gemini
when a key is set, and a deterministic template model for evaluations and benchmarks."""

from graphs.models.errors import (
    ChatModelError,
    ChatModelUnavailable,
    LocalModelError,
    OfflineModelMissing,
    StructuredOutputError,
)
from graphs.models.factory import ChatProvider, build_chat_model
from graphs.models.offline import LocalChatModel, smollm2_path
from graphs.models.template import TemplateChatModel

__all__ = [
    "ChatModelError",
    "ChatModelUnavailable",
    "ChatProvider",
    "LocalChatModel",
    "LocalModelError",
    "OfflineModelMissing",
    "StructuredOutputError",
    "TemplateChatModel",
    "build_chat_model",
    "smollm2_path",
]
