"""The 14 coaching tools, run through a real ToolNode against the real embedded Redis."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_core.tools import StructuredTool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from graphs.models.template import TemplateChatModel
from memories.connection import connect
from memories.current_state import CurrentStateMemory
from memories.feedback import FeedbackMemory
from memories.stack import MemoryStack
from tests.conftest import element, free_port
from tools import TOOL_NAMES, build_tools
from tools.base import clock_time
from tools.catalog import INTERVENTION_TOOLS, TOOL_SPECS, default_args
from tools.context import ToolContext
from tools.steps import rule_steps
from tools.store import CoachingStore

T0 = 1_700_000_000.0


@dataclass
class Clock:
    """A clock the test moves by hand."""

    now: float = T0

    def __call__(self) -> float:
        return self.now

    def advance(self, minutes: float) -> None:
        self.now += minutes * 60


class StructuredModel(BaseChatModel):
    """A chat model whose structured output is a fixed answer, or that fails in a chosen way."""

    answer: dict[str, Any] = {}
    delay_s: float = 0.0

    @property
    def _llm_type(self) -> str:
        return "structured-fake"

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage("unused"))])

    def with_structured_output(self, schema: Any, **kwargs: Any) -> Runnable[Any, Any]:  # type: ignore[override]
        async def answer(_: Any) -> Any:
            await asyncio.sleep(self.delay_s)
            return schema.model_validate(self.answer)

        return RunnableLambda(answer)


@dataclass
class Harness:
    """The tools in a one-node graph, called the way the agent's ToolNode calls them."""

    stack: MemoryStack
    store: CoachingStore
    clock: Clock = field(default_factory=Clock)
    chat_model: BaseChatModel | None = None

    def context(self, **overrides: Any) -> ToolContext:
        fields = {"store": self.store, "memory": self.stack.registry, "chat_model": self.chat_model,
                  "clock": self.clock, **overrides}
        return ToolContext(**fields)

    async def call(self, name: str, args: dict[str, Any] | None = None, *, user: str | None = "ada",
                   ctx: ToolContext | None = None) -> ToolMessage:
        graph = StateGraph(MessagesState)
        graph.add_node("tools", ToolNode(build_tools(ctx or self.context()), handle_tool_errors=True))
        graph.add_edge(START, "tools")
        call = AIMessage("", tool_calls=[{"name": name, "args": args or {}, "id": f"call-{name}"}])
        config = {"configurable": {"user_id": user}} if user is not None else {}
        out = await graph.compile().ainvoke({"messages": [call]}, config)
        message = out["messages"][-1]
        assert isinstance(message, ToolMessage) and message.tool_call_id == f"call-{name}"
        return message


@pytest.fixture
def h(stack: MemoryStack) -> Harness:
    return Harness(stack, CoachingStore(stack.client, stack.registry.backend.settings.namespace))


def ok(message: ToolMessage, event: str) -> dict[str, Any]:
    assert message.status == "success", message.content
    assert message.artifact["event"] == event, message.artifact
    assert isinstance(message.content, str) and 0 < len(message.content) < 400
    return message.artifact


def test_tools_have_the_contracted_names_schemas_and_descriptions(h: Harness) -> None:
    tools = build_tools(h.context())
    assert tuple(t.name for t in tools) == TOOL_NAMES and len(TOOL_NAMES) == 14
    assert set(TOOL_SPECS) == set(TOOL_NAMES)
    assert set(INTERVENTION_TOOLS) == {
        "create_microsteps", "start_breathing_exercise", "sensory_check", "grounding_exercise", "suggest_break",
        "reframe_thought", "schedule_checkin", "create_reminder", "log_micro_win"}
    for tool in tools:
        assert isinstance(tool, StructuredTool) and tool.response_format == "content_and_artifact"
        assert tool.coroutine is not None and len(tool.description) > 60
        schema = tool.tool_call_schema.model_json_schema()  # what a model sees: no injected config
        assert "config" not in schema.get("properties", {}), tool.name
        assert all(p.get("description") for p in schema.get("properties", {}).values()), tool.name


async def test_microsteps_are_generated_stored_and_stepped_through_to_done(h: Harness) -> None:
    made = ok(await h.call("create_microsteps", {"task": "I need to clean the kitchen"}), "plan_created")
    assert made["source"] == "rules" and 3 <= len(made["steps"]) <= 5
    assert any("clean the kitchen" in s for s in made["steps"])  # about this task, not generic
    plan = await h.store.plan("ada")
    assert plan is not None and plan.steps == made["steps"]
    current = await h.call("get_current_step")
    assert ok(current, "current_step")["step"] == made["steps"][0] and "Step 1 of" in current.content
    for i, step in enumerate(made["steps"], 1):
        h.clock.advance(3)
        done = ok(await h.call("mark_step_complete"), "step_completed")
        assert done["step"] == step and done["plan_done"] == (i == len(made["steps"]))
    assert "done" in done_text(await h.call("get_current_step"))
    assert (await h.store.plan("ada")).completed_at == h.clock.now  # type: ignore[union-attr]
    again = await h.call("mark_step_complete")
    assert again.status == "error" and "already done" in again.content


def done_text(message: ToolMessage) -> str:
    ok(message, "plan_done")
    return str(message.content)


def test_rule_steps_follow_the_task() -> None:
    several = rule_steps("write my essay, email my teacher and then tidy the desk", 7)
    assert several == ["Get out everything you need to write your essay", "Write your essay", "Email your teacher",
                       "Tidy the desk", "Notice what you got done and take a short break"]
    assert rule_steps("my tax return", 3) == ["Get out everything you need for your tax return",
                                              "Do the very first tiny part of your tax return",
                                              "Stop, notice what you got done, and take a short break"]
    assert "Set a timer for 10 minutes" in rule_steps("wash and dry the dishes")
    assert len(rule_steps("a, b c, d e, f g, h i, j k, l m, n o", 7)) == 7


async def test_a_chat_model_writes_the_steps_when_it_can(h: Harness) -> None:
    model = StructuredModel(answer={"steps": ["1. Open the laptop", "2. Open the essay file", "- Write one line",
                                              "Write one line", "Save the file", "Close the laptop"]})
    made = ok(await h.call("create_microsteps", {"task": "essay", "max_steps": 4}, ctx=h.context(chat_model=model)),
              "plan_created")
    assert made["source"] == "model"
    assert made["steps"] == ["Open the laptop", "Open the essay file", "Write one line", "Save the file"]


@pytest.mark.parametrize("model", [
    TemplateChatModel(),  # raises when the structured runnable is invoked
    FakeListChatModel(responses=["no"]),  # raises in with_structured_output itself
    StructuredModel(answer={"steps": ["Only one step"]}),  # too few steps
    StructuredModel(answer={"steps": ["a", "b", "c"]}, delay_s=5),  # too slow
], ids=["template", "no-structured-output", "bad-output", "timeout"])
async def test_a_failing_chat_model_falls_back_to_the_rules(h: Harness, model: BaseChatModel) -> None:
    ctx = h.context(chat_model=model, model_timeout_s=0.2)
    made = ok(await h.call("create_microsteps", {"task": "do the laundry"}, ctx=ctx), "plan_created")
    assert made["source"] == "rules" and made["steps"] == rule_steps("do the laundry")
    reframed = ok(await h.call("reframe_thought", {"thought": "I always mess everything up"}, ctx=ctx),
                  "thought_reframed")
    assert reframed["source"] == "rules" and reframed["pattern"] == "all_or_nothing"
    assert "you always mess everything up" in reframed["reframe"]


async def test_reframes_are_kind_and_specific(h: Harness) -> None:
    cases = {"I'm so stupid": "label", "I can't do this": "cant", "I should have started yesterday": "hindsight",
             "Nobody likes me": "overgeneralising", "The meeting went badly": "other"}
    for thought, pattern in cases.items():
        out = ok(await h.call("reframe_thought", {"thought": thought}), "thought_reframed")
        assert out["pattern"] == pattern and out["reframe"] and "stupid" not in out["reframe"]
    model = StructuredModel(answer={"reframe": "One hard meeting doesn't define you."})
    out = ok(await h.call("reframe_thought", {"thought": "I ruin everything"}, ctx=h.context(chat_model=model)),
             "thought_reframed")
    assert out["source"] == "model" and out["reframe"] == "One hard meeting doesn't define you."
    for thought, word in (("I have to finish this report", "Have to"), ("I must answer every email", "Must")):
        out = ok(await h.call("reframe_thought", {"thought": thought}), "thought_reframed")
        assert out["pattern"] == "should" and out["reframe"].startswith(f"'{word}'")  # their words, not "should"
    looping = StructuredModel(answer={"reframe": "I'm not your best friend, " * 10})  # seen from a 135M model
    out = ok(await h.call("reframe_thought", {"thought": "nobody likes me"}, ctx=h.context(chat_model=looping)),
             "thought_reframed")
    assert out["source"] == "rules" and out["pattern"] == "overgeneralising"


async def test_a_reminder_is_really_scheduled_and_surfaces_once_when_due(h: Harness, redis_url: str) -> None:
    made = ok(await h.call("create_reminder", {"text": "take your medication", "minutes_from_now": 20}),
              "reminder_created")
    assert made["due_at"] == T0 + 1200
    message = await h.call("create_reminder", {"text": "take your medication", "minutes_from_now": 20})
    assert clock_time(T0 + 1200) in message.content and "20 minutes" in message.content
    assert [i.text for i in await h.store.upcoming("ada")] == ["take your medication"] * 2
    assert await h.store.pop_due("ada", h.clock()) == []
    h.clock.advance(20)
    client = connect(redis_url)  # a second app process racing for the same items
    try:
        other = CoachingStore(client, h.store.namespace)
        mine, theirs = await asyncio.gather(h.store.pop_due("ada", h.clock()), other.pop_due("ada", h.clock()))
    finally:
        await client.aclose()
    assert sorted(i.id for i in mine + theirs) == sorted([made["id"], message.artifact["id"]])
    assert await h.store.pop_due("ada", h.clock()) == []


async def test_checkins_and_time_since_the_last_one(h: Harness) -> None:
    none_yet = await h.call("get_time_since_last_checkin")
    assert ok(none_yet, "no_checkin_yet")["next_checkin_at"] is None and "haven't" in none_yet.content
    scheduled = ok(await h.call("schedule_checkin", {"minutes_from_now": 15, "about": "the essay"}),
                   "checkin_scheduled")
    assert scheduled["due_at"] == T0 + 900
    pending = ok(await h.call("get_time_since_last_checkin"), "no_checkin_yet")
    assert pending["next_checkin_at"] == T0 + 900
    h.clock.advance(14)
    assert await h.store.pop_due("ada", h.clock()) == []
    h.clock.advance(1)
    [due] = await h.store.pop_due("ada", h.clock())  # the next turn surfaces it
    assert due.kind == "checkin" and due.text == "the essay"
    h.clock.advance(7)
    since = await h.call("get_time_since_last_checkin")
    assert ok(since, "time_since_checkin")["seconds"] == pytest.approx(420)  # positive: now minus then
    assert "7 minutes" in since.content
    assert ok(await h.call("schedule_checkin"), "checkin_scheduled")["due_at"] == h.clock() + 600  # defaults


async def test_current_time_uses_the_clock_and_mentions_what_is_next(h: Harness) -> None:
    await h.call("create_reminder", {"text": "leave for the bus", "minutes_from_now": 45})
    told = await h.call("get_current_time")
    assert ok(told, "current_time")["timestamp"] == T0
    assert clock_time(T0) in told.content and "reminder is in 45 minutes" in told.content


async def test_a_win_lands_in_the_current_state(h: Harness) -> None:
    out = await h.call("log_micro_win", {"win": "I answered two emails"})
    assert ok(out, "win_logged")["saved"] is True and "you answered two emails" in out.content
    state = await element(h.stack, CurrentStateMemory).get("ada")
    assert state.recent_wins == ["I answered two emails"]


async def test_a_rating_is_stored_as_feedback_with_a_fresh_summary(h: Harness) -> None:
    out = ok(await h.call("rate_response", {"rating": 4, "comment": "short and kind", "tags": ["Kind"]}), "rated")
    assert out["rating"] == 4 and out["average_rating"] == 4
    await h.call("rate_response", {"rating": 2, "tags": ["too long"]})
    feedback = element(h.stack, FeedbackMemory)
    assert sorted(f.rating for f in await feedback.recent("ada")) == [2, 4]
    summary = await feedback.summary("ada")
    assert summary is not None and summary.positives == ["kind"] and summary.negatives == ["too long"]


async def test_regulation_exercises_and_a_break_that_ends_with_a_reminder(h: Harness) -> None:
    breath = ok(await h.call("start_breathing_exercise", {"pattern": "box", "rounds": 2}), "breathing_started")
    assert breath["total_seconds"] == 32 and [p["action"] for p in breath["phases"]] == ["in", "hold", "out", "hold"]
    sensory = await h.call("sensory_check")
    assert len(ok(sensory, "sensory_check")["questions"]) == 5 and "too loud" in sensory.content
    grounding = await h.call("grounding_exercise", {"method": "5-4-3-2-1"})
    assert ok(grounding, "grounding_started")["steps"][0] == "Name 5 things you can see"
    brk = ok(await h.call("suggest_break", {"minutes": 10, "activity": "walk to the window"}), "break_started")
    assert brk["due_at"] == T0 + 600
    h.clock.advance(10)
    [end] = await h.store.pop_due("ada", h.clock())
    assert end.id == brk["reminder_id"] and end.kind == "reminder" and "break is over" in end.text


@pytest.mark.parametrize(("name", "args", "hint"), [
    ("create_reminder", {"text": "water"}, "minutes_from_now"),  # missing
    ("create_reminder", {"text": "water", "minutes_from_now": 0}, "minutes_from_now"),  # out of range
    ("schedule_checkin", {"minutes_from_now": "soon"}, "minutes_from_now"),  # wrong type
    ("start_breathing_exercise", {"pattern": "fast"}, "pattern"),  # not one of the patterns
    ("rate_response", {"rating": 9}, "rating"),
    ("create_microsteps", {"task": "   "}, "task"),
    ("log_micro_win", {}, "win"),
])
async def test_bad_arguments_come_back_as_an_error_message(h: Harness, name: str, args: dict[str, Any],
                                                            hint: str) -> None:
    out = await h.call(name, args)
    assert out.status == "error" and hint in out.content and "again" in out.content
    assert await h.store.upcoming("ada") == [] and await h.store.plan("ada") is None  # nothing was written


async def test_domain_errors_come_back_as_messages(h: Harness) -> None:
    no_plan = await h.call("mark_step_complete")
    assert no_plan.status == "error" and "no plan" in no_plan.content
    assert ok(await h.call("get_current_step"), "no_plan")
    no_user = await h.call("get_current_time", user=None)
    assert no_user.status == "error" and "user" in no_user.content
    bad_user = await h.call("get_current_step", user="tab\there")
    assert bad_user.status == "error" and "user id" in bad_user.content
    client = connect(f"redis://127.0.0.1:{free_port()}", connect_timeout_s=0.2)
    try:
        down = h.context(store=CoachingStore(client, "tdown"))
        for name, args in (("create_reminder", {"text": "x", "minutes_from_now": 5}), ("get_current_step", {})):
            out = await h.call(name, args, ctx=down)
            assert out.status == "error" and "can't reach my memory" in out.content
    finally:
        await client.aclose()


async def test_errors_are_messages_without_a_forgiving_tool_node(h: Harness) -> None:
    """The tools handle their own errors, so a ToolNode with default error handling (or a
    direct call with a ToolCall) gets an error message too, not an exception."""
    tools = {t.name: t for t in build_tools(h.context())}
    config = {"configurable": {"user_id": "ada"}}
    for name, args in (("create_reminder", {"text": "x", "minutes_from_now": -5}), ("mark_step_complete", {})):
        out = await tools[name].ainvoke({"type": "tool_call", "name": name, "args": args, "id": "c1"}, config)
        assert isinstance(out, ToolMessage) and out.status == "error" and out.content


async def test_two_users_are_isolated(h: Harness) -> None:
    await h.call("create_microsteps", {"task": "clean the kitchen"})
    await h.call("schedule_checkin", {"minutes_from_now": 5, "about": "the kitchen"})
    assert ok(await h.call("get_current_step", user="bob"), "no_plan")
    assert (await h.call("mark_step_complete", user="bob")).status == "error"
    h.clock.advance(5)
    assert await h.store.pop_due("bob", h.clock()) == []
    assert ok(await h.call("get_current_step"), "current_step")["index"] == 0
    assert len(await h.store.pop_due("ada", h.clock())) == 1


@pytest.mark.parametrize("name", INTERVENTION_TOOLS)
async def test_default_args_are_valid_and_run(h: Harness, name: str) -> None:
    tool = {t.name: t for t in build_tools(h.context())}[name]
    for message, task in (("remind me to call my mom in 20 minutes", "write my essay and email my teacher"),
                          ("I'm so tired, " * 300, None), ("", None)):
        args = default_args(name, message=message, task=task)
        tool.args_schema.model_validate(args)  # type: ignore[union-attr]
        out = await h.call(name, args)
        assert out.status == "success", (name, args, out.content)
    assert default_args("create_reminder", message="remind me to call my mom in 20 minutes", task=None) == {
        "text": "call your mom", "minutes_from_now": 20}
    forgotten = {"im so dumb i forgot my meds again": "your meds", "I keep forgetting to drink water": "drink water",
                 "i always forget about the bins lol": "the bins"}
    for said, text in forgotten.items():
        assert default_args("create_reminder", message=said, task=None)["text"] == text  # what they forget
    assert default_args("create_reminder", message="ugh forgot it", task=None)["text"] != "it"


@pytest.mark.parametrize("task,about", [("clean my room", "cleaning your room"),
                                        ("write my essay", "writing your essay"),
                                        ("plan the trip", "planning the trip"), ("my essay", "your essay")])
def test_a_check_in_asks_about_the_task_in_plain_words(task: str, about: str) -> None:
    """ "How is cleaning your room going?", never "how is your task, clean your room going?"."""
    assert default_args("schedule_checkin", message="check on me in 10 minutes", task=task)["about"] == about


def test_default_args_of_utilities_and_unknown_tools() -> None:
    assert default_args("get_current_time", message="what time is it", task=None) == {}
    assert default_args("rate_response", message="that helped, 5 out of 5", task=None)["rating"] == 5
    with pytest.raises(ValueError):
        default_args("rate_response", message="thanks", task=None)
    with pytest.raises(ValueError):
        default_args("fly_to_the_moon", message="", task=None)
    assert all(len(s.when_to_use) > 20 and s.activity for s in TOOL_SPECS.values())


@pytest.mark.parametrize("said", ["I can't start cleaning my room, it's too much",
                                  "I hate how bad I am at getting things done"])
def test_a_struggle_is_never_echoed_back_as_a_win(said: str) -> None:
    win = default_args("log_micro_win", message=said, task=None)["win"]
    assert said.lower()[:12] not in win.lower() and "said it out loud" in win
    # Not a struggle: still never their words, the win is named from the task when there is one.
    assert default_args("log_micro_win", message="I answered two emails", task=None)["win"] == \
        "you showed up and kept going"
    assert default_args("log_micro_win", message="I answered two emails", task="your inbox")["win"] == \
        "you made progress on your inbox"


@pytest.mark.parametrize("config", [None, {"configurable": {}}, {"configurable": {"user_id": 7}},
                                    {"configurable": {"user_id": "bad\tid"}}])
def test_a_run_without_a_usable_person_is_refused_the_same_way_by_tools_and_graph(config: Any) -> None:
    from langchain_core.tools import ToolException

    from graphs.configuration import Configuration
    from memories.errors import InvalidInput
    from tools.base import user_from

    with pytest.raises(InvalidInput, match="user_id") as graph_error:
        Configuration.from_runnable_config(config)
    with pytest.raises(ToolException, match="not usable") as tool_error:
        user_from(config)
    assert str(graph_error.value) in str(tool_error.value)  # one parser, one message
    assert user_from({"configurable": {"user_id": "maya"}}) == "maya"
