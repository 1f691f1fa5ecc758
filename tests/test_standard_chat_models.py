"""LangChain's standard chat-model suites (langchain-tests) on the offline SmolLM2 and the
template model: what any LangChain caller may rely on (invoke, batch, stream token by token,
v3 event streaming, tool calls, structured output from pydantic, TypedDict and JSON schema,
tracing parameters).

Capabilities a model does not have are declared (``has_tool_calling``, ``returns_usage_metadata``,
...), and the suite skips what depends on them. A test that fails because of what a 135M model
can and cannot do is marked as an expected failure that says so. Replies are kept short
(16 tokens of text, 96 of JSON): the suite checks the contract, not the prose.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests

from graphs.models.offline import LocalChatModel
from graphs.models.template import TemplateChatModel

# Offline means offline: a connection anywhere but this machine fails the test.
pytestmark = pytest.mark.allow_hosts(["127.0.0.1", "::1", "localhost"])

SHORT = {"max_tokens": 16, "json_max_tokens": 96, "json_max_chars": 60}


@pytest.fixture(scope="module")
def smollm2() -> Iterator[LocalChatModel]:
    """One SmolLM2 for the module; each test gets a copy sharing its loaded weights."""
    yield LocalChatModel(**SHORT)


class _SmolLM2:
    """What the offline model declares about itself to the suites."""

    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return LocalChatModel

    @property
    def supports_json_mode(self) -> bool:
        return True  # method="json_mode" is accepted (and generated under the schema's grammar)

    @property
    def supports_model_override(self) -> bool:
        return False  # one GGUF per instance; a per-call `model` is refused


class _Template:
    """What the template model declares about itself: text only, no tokens to count."""

    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return TemplateChatModel

    @property
    def has_tool_calling(self) -> bool:
        return False  # bind_tools raises NotImplementedError

    @property
    def has_structured_output(self) -> bool:
        return False  # with_structured_output raises NotImplementedError

    @property
    def returns_usage_metadata(self) -> bool:
        return False  # it has no tokens: it says the graph's draft

    @property
    def supports_model_override(self) -> bool:
        return False


class TestSmolLM2Unit(_SmolLM2, ChatModelUnitTests):
    """The offline model's unit suite (construction, binding, tracing parameters; no generation)."""


class TestSmolLM2Integration(_SmolLM2, ChatModelIntegrationTests):
    """The offline model's integration suite: real generations on llama.cpp."""

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return dict(SHORT)

    @pytest.fixture
    def model(self, request: pytest.FixtureRequest, smollm2: LocalChatModel) -> BaseChatModel:
        return smollm2.model_copy(update=getattr(request, "param", None) or {})


class TestTemplateUnit(_Template, ChatModelUnitTests):
    """The template model's unit suite."""


class TestTemplateIntegration(_Template, ChatModelIntegrationTests):
    """The template model's integration suite."""
