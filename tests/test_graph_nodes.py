"""Each node of the companion graph on its own: a hand-built state, the real embedded Redis,
and the deterministic template model or a scripted fake."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from graphs.deps import CompanionDeps
from graphs.nodes.agent import choose_intervention
from graphs.nodes.context import load_context
from graphs.nodes.outcome import record_outcome
from graphs.nodes.reflect import reflect
from graphs.nodes.respond import respond
from graphs.nodes.retrieve import retrieve_few_shot
from graphs.nodes.understand import understand
from graphs.outbox import RecordIntervention
from graphs.style import HEADS_UP
from graphs.turn import Decision, DueItem, Evidence, PolicyEvidence
from memories.current_state import CurrentStateMemory, Mood
from memories.embeddings import LocalMiniLMEmbeddings
from memories.errors import InvalidInput
from memories.feedback import FeedbackMemory
from memories.interventions import InterventionMemory, NewIntervention
from memories.outcomes import Outcome
from memories.profile import ProfileMemory
from memories.reflections import ReflectionMemory
from memories.stack import MemoryStack
from tests.companion_fixtures import SUCCESS_REPLY, ScriptedChatModel, build_rig, open_stack
from tests.conftest import element
from tools.catalog import INTERVENTION_TOOLS

CONFIG = {"configurable": {"user_id": "maya", "thread_id": "t1"}}
BREAK_RESULT = "Let's take a 5 minute break: stand up, stretch and drink some water."


@pytest.fixture
async def stack(redis_url: str, minilm: LocalMiniLMEmbeddings) -> AsyncIterator[MemoryStack]:
    """A fresh namespace, on the memoised embedder (see tests.companion_fixtures)."""
    async with open_stack(redis_url, minilm) as opened:
        yield opened


@pytest.fixture
async def deps(stack: MemoryStack, tmp_path: Path) -> CompanionDeps:
    return (await build_rig(stack, tmp_path)).deps


async def scripted(stack: MemoryStack, tmp_path: Path, **model: Any) -> CompanionDeps:
    return (await build_rig(stack, tmp_path, chat_model=ScriptedChatModel(**model))).deps


def said(text: str) -> dict[str, Any]:
    return {"messages": [HumanMessage(text)]}


async def store(stack: MemoryStack, user: str, said: str, tool: str, outcome: Outcome = Outcome.PENDING,
                ident: str | None = None) -> str:
    record = NewIntervention(text=f"({tool})", tool_name=tool, user_context=said, outcome=outcome)
    [item] = await element(stack, InterventionMemory).record_many(user, [record], ids=[ident] if ident else None)
    return item.id


def break_turn(user_text: str = "I've been at this for hours") -> list[Any]:
    """A turn where the agent called suggest_break and the tool answered."""
    call = {"name": "suggest_break", "args": {"minutes": 5}, "id": "call_1", "type": "tool_call"}
    return [HumanMessage(user_text), AIMessage("", tool_calls=[call]),
            ToolMessage(BREAK_RESULT, tool_call_id="call_1", name="suggest_break")]


BREAK_DECISION = Decision(tool="suggest_break", args={"minutes": 5}, source="policy", intervention=True)


# --- load_context ------------------------------------------------------------------------------


async def test_the_diagnosis_shapes_the_style_only_with_consent(deps: CompanionDeps, stack: MemoryStack) -> None:
    profiles = element(stack, ProfileMemory)
    await profiles.update("maya", {"name": "Maya", "diagnosis": "AUTISM", "consent_diagnosis_in_prompts": False})
    without = await load_context(said("hi"), CONFIG, deps=deps)
    assert without["style"] == {"autism": False, "literal_language": False}
    assert "Maya" in without["context"] and "AUTISM" not in without["context"]

    await profiles.update("maya", {"consent_diagnosis_in_prompts": True})
    consented = await load_context(said("hi"), CONFIG, deps=deps)
    assert consented["style"] == {"autism": True, "literal_language": True}
    assert "Neurotype: AUTISM" in consented["context"]


async def test_due_checkins_surface_once_and_future_ones_wait(deps: CompanionDeps) -> None:
    await deps.store.add_checkin("maya", time.time() - 5, "your essay")
    await deps.store.add_reminder("maya", time.time() + 3600, "take your meds")
    first = await load_context(said("hello"), CONFIG, deps=deps)
    assert [(d.kind, d.text) for d in first["due"]] == [("checkin", "your essay")]
    assert "Due now:\n- Check-in: how is your essay going?" in first["context"]
    again = await load_context(said("hello again"), CONFIG, deps=deps)
    assert again["due"] == [] and "Due now" not in again["context"]
    assert [i.text for i in await deps.store.upcoming("maya")] == ["take your meds"]


async def test_context_carries_state_reflections_and_feedback(deps: CompanionDeps, stack: MemoryStack) -> None:
    await element(stack, CurrentStateMemory).add_win("maya", "did the dishes")
    saved = await element(stack, ReflectionMemory).remember("maya", {"insight": "Short breaks help with homework"})
    feedback = element(stack, FeedbackMemory)
    await feedback.save("maya", {"rating": 5, "tags": ["short replies"]})
    await feedback.refresh_summary("maya")

    update = await load_context({**said("I can't face my homework"), "turn": 4}, CONFIG, deps=deps)
    context = update["context"]
    assert "How they are doing:" in context and "did the dishes" in context
    assert "What you have learned:" in context and "Short breaks help with homework" in context
    assert "Their feedback:" in context and "short replies" in context
    assert saved.reflection.id in update["used_memory_ids"]
    assert update["turn"] == 5 and update["degraded"] is False and update["notice"] is None
    other = await load_context(said("I can't face my homework"), {"configurable": {"user_id": "leo"}}, deps=deps)
    assert "did the dishes" not in other["context"] and "Short breaks" not in other["context"]


async def test_load_context_flushes_writes_queued_during_an_outage_first(deps: CompanionDeps, stack: MemoryStack
                                                                         ) -> None:
    deps.outbox.put(RecordIntervention(user_id="maya", intervention_id="queued1", record=NewIntervention(
        text="(break)", tool_name="suggest_break", user_context="I was exhausted")))
    await load_context(said("hi"), CONFIG, deps=deps)
    assert len(deps.outbox) == 0
    assert (await element(stack, InterventionMemory).get("maya", "queued1")).tool_name == "suggest_break"


async def test_a_turn_without_a_user_id_is_a_clear_error(deps: CompanionDeps) -> None:
    with pytest.raises(InvalidInput, match="user_id"):
        await load_context(said("hi"), {"configurable": {"thread_id": "t1"}}, deps=deps)


# --- retrieve_few_shot ---------------------------------------------------------------------------


async def test_few_shot_examples_are_this_users_past_interventions_ranked(deps: CompanionDeps, stack: MemoryStack
                                                                         ) -> None:
    helped = await store(stack, "maya", "I can't get myself to start my essay", "create_microsteps",
                         Outcome.TASK_COMPLETED)
    failed = await store(stack, "maya", "I can't start writing my essay at all", "suggest_break", Outcome.ABANDONED)
    leos = await store(stack, "leo", "I can't get myself to start my essay", "schedule_checkin",
                       Outcome.TASK_COMPLETED)

    update = await retrieve_few_shot({**said("I can't make myself start the essay"), "used_memory_ids": ["ctx1"]},
                                     CONFIG, deps=deps)
    ids = [e.id for e in update["few_shot"]]
    assert ids[0] == helped and ids[-1] == failed and leos not in ids
    assert update["few_shot"][0].outcome == "task_completed" and not update["few_shot"][0].contrast
    assert update["few_shot"][-1].contrast  # the failure is shown only as what not to repeat
    assert "create_microsteps" in update["few_shot_prompt"]
    assert update["used_memory_ids"] == ids  # its own; the state folds them with load_context's ("ctx1")
    assert {n.tool_name for n in update["neighbors"].near} == {"create_microsteps", "suggest_break"}
    rate = update["neighbors"].rates["create_microsteps"]
    assert (rate.settled, rate.value_sum) == (1, 1.0)
    assert set(update["relevance"]) == set(INTERVENTION_TOOLS)
    reading = await understand(said("I can't make myself start the essay"), CONFIG, deps=deps)
    assert reading["evidence"].outcome is None and reading["understanding"]["act"] == "struggle"


async def test_the_policy_weighs_past_moments_by_situation_not_by_shared_words(deps: CompanionDeps,
                                                                                stack: MemoryStack) -> None:
    """Two past moments of Maya's: one the same kind as today's but worded differently, one
    sharing today's words ("essay") but a different kind of moment. The choice learns from the
    first more than raw cosine would say, and from the second less."""
    same_kind = await store(stack, "maya", "blank page for an hour, cannot begin the report", "create_microsteps",
                            Outcome.TASK_PROGRESS)
    shares_words = await store(stack, "maya", "my essay got a bad grade and my hands are shaking",
                               "start_breathing_exercise", Outcome.RE_ENGAGED)
    today = "I can't make myself start the essay"
    update = await retrieve_few_shot(said(today), CONFIG, deps=deps)
    near = {n.tool_name: n.similarity for n in update["neighbors"].near}
    vectors = await stack.embeddings.aembed_documents([today, "blank page for an hour, cannot begin the report",
                                                       "my essay got a bad grade and my hands are shaking"])
    raw = [sum(a * b for a, b in zip(vectors[0], v, strict=True)) for v in vectors[1:]]
    assert near["create_microsteps"] > raw[0] and near["start_breathing_exercise"] < raw[1]
    assert near["create_microsteps"] > near["start_breathing_exercise"]
    assert {e.id for e in update["few_shot"]} <= {same_kind, shares_words}  # the prompt's examples are unchanged


async def test_understand_reads_the_outcome_a_message_reports(deps: CompanionDeps) -> None:
    update = await understand(said(SUCCESS_REPLY), CONFIG, deps=deps)
    assert update["evidence"].outcome in ("task_progress", "task_completed", "re_engaged")
    failed = await understand({**said("That didn't help, I gave up."), "degraded": True}, CONFIG, deps=deps)
    assert failed["evidence"].outcome in ("abandoned", "distracted")  # reading works without Redis memory
    degraded = await retrieve_few_shot({**said("That didn't help, I gave up."), "degraded": True}, CONFIG, deps=deps)
    assert degraded["few_shot"] == [] and degraded["neighbors"] == PolicyEvidence()


# --- choose_intervention -------------------------------------------------------------------------


async def chosen(deps: CompanionDeps, text: str, **state: Any) -> dict[str, Any]:
    """Run understand, retrieve, then choose, as the graph does."""
    base = {**said(text), **state}
    base.update(await understand(base, CONFIG, deps=deps))
    base.update(await retrieve_few_shot(base, CONFIG, deps=deps))
    return await choose_intervention(base, CONFIG, deps=deps)


async def test_an_explicit_request_runs_that_tool(deps: CompanionDeps) -> None:
    update = await chosen(deps, "what time is it?")
    assert update["decision"].tool == "get_current_time"
    assert update["decision"].source == "request" and not update["decision"].intervention
    [call] = update["messages"][0].tool_calls
    assert call["name"] == "get_current_time"


async def test_an_outcome_report_is_acknowledged_only_with_a_pending_intervention(deps: CompanionDeps) -> None:
    good = await chosen(deps, "I did the first part, that helped", last_intervention_id="abc")
    assert good["decision"].source == "acknowledge" and good["decision"].tool == "log_micro_win"
    assert "first part" not in good["messages"][0].tool_calls[0]["args"]["win"]  # a win, never their words echoed

    bad = await chosen(deps, "No, I ended up on my phone", last_intervention_id="abc")
    assert bad["decision"].source == "acknowledge" and bad["decision"].tool is None
    assert "messages" not in bad  # nothing to run: respond acknowledges kindly

    no_pending = await chosen(deps, "I keep getting distracted by my phone")
    assert no_pending["decision"].source == "policy"  # a situation to help with, not a report


async def test_a_situation_gets_a_policy_tool_with_valid_arguments(deps: CompanionDeps) -> None:
    update = await chosen(deps, "Everything is too loud and bright, I'm overloaded")
    decision = update["decision"]
    assert decision.source == "policy" and decision.intervention
    assert decision.tool in INTERVENTION_TOOLS
    assert decision.reason.startswith(decision.tool)
    # every intervention is weighed, except a reminder nobody spoke of (no time, forgetting or leaving)
    assert set(decision.beliefs) == set(INTERVENTION_TOOLS) - {"create_reminder"}
    [message] = update["messages"]
    assert isinstance(message, AIMessage)
    [call] = message.tool_calls
    assert call["name"] == decision.tool and call["id"]
    deps.tools_by_name[call["name"]].args_schema.model_validate(call["args"])  # type: ignore[union-attr]


async def test_the_models_proposal_is_used_and_its_failure_is_harmless(stack: MemoryStack, tmp_path: Path) -> None:
    proposing = await scripted(stack, tmp_path, structured={"tool": "grounding_exercise"})
    update = await chosen(proposing, "My thoughts are racing and I feel unreal")
    assert update["decision"].proposal == "grounding_exercise"
    assert update["decision"].beliefs["grounding_exercise"]["prior"] >= 0.25 + 0.15

    failing = await scripted(stack, tmp_path)  # structured output raises
    update = await chosen(failing, "My thoughts are racing and I feel unreal")
    assert update["decision"].proposal is None and update["decision"].source == "policy"


# --- respond -------------------------------------------------------------------------------------


async def test_respond_uses_the_models_words_when_they_keep_the_style(stack: MemoryStack, tmp_path: Path) -> None:
    words = "Good idea to pause now: take a 5 minute break, stand up, stretch and drink some water."
    deps = await scripted(stack, tmp_path, replies=[words])
    state = {"messages": break_turn(), "decision": BREAK_DECISION, "context": "About them:\nName: Maya",
             "few_shot_prompt": '- "I was exhausted" -> suggest_break: task_completed'}
    update = await respond(state, CONFIG, deps=deps)
    assert update["reply"] == words
    assert update["messages"][0].content == words
    [prompt] = deps.chat_model.seen  # type: ignore[attr-defined]
    system = prompt[0].content
    assert "Name: Maya" in system  # the memory context and this person's past successes reach the model
    assert 'What helped them before:\n- "I was exhausted" -> suggest_break: task_completed' in system
    assert system.endswith(f"Draft reply: {BREAK_RESULT}")
    assert prompt[-1].content == "I've been at this for hours"


@pytest.mark.parametrize("words", [
    "You should have taken a break hours ago, so stand up, stretch and drink some water.",
    "Let us take a break of about five minutes in which you stand up and stretch your arms and legs and back "
    "and then walk over to the kitchen and drink a full glass of cool water while you look out of the window "
    "at the trees and the sky and the birds going past.",
], ids=["judgmental", "too-long"])
async def test_respond_falls_back_to_the_draft_when_the_model_breaks_the_style(
    stack: MemoryStack, tmp_path: Path, words: str
) -> None:
    deps = await scripted(stack, tmp_path, replies=[words])
    update = await respond({"messages": break_turn(), "decision": BREAK_DECISION}, CONFIG, deps=deps)
    assert update["reply"] == BREAK_RESULT


async def test_a_chat_model_failure_does_not_break_the_turn(stack: MemoryStack, tmp_path: Path) -> None:
    deps = await scripted(stack, tmp_path, error="model server down")
    update = await respond({"messages": break_turn(), "decision": BREAK_DECISION}, CONFIG, deps=deps)
    assert update["reply"] == BREAK_RESULT


async def test_autism_profile_gets_a_heads_up_before_a_change_of_activity(deps: CompanionDeps) -> None:
    state = {"messages": break_turn(), "decision": BREAK_DECISION}
    plain = await respond(state, CONFIG, deps=deps)
    assert HEADS_UP not in plain["reply"]
    warned = await respond({**state, "style": {"autism": True, "literal_language": True}}, CONFIG, deps=deps)
    assert warned["reply"] == f"{HEADS_UP} next we will do a short break. {BREAK_RESULT}"


async def test_respond_acknowledges_reports_and_mentions_due_items(deps: CompanionDeps) -> None:
    ack = {"messages": [HumanMessage("No, I gave up")], "evidence": Evidence(outcome=Outcome.ABANDONED),
           "decision": Decision(tool=None, source="acknowledge", say="went_badly"),
           "due": [DueItem(kind="checkin", text="your essay", due_at=time.time())]}
    update = await respond(ack, CONFIG, deps=deps)
    assert update["reply"].startswith("Check-in: how is your essay going?")
    assert any(words in update["reply"] for words in ("didn't fit", "didn't help", "not that one"))


# --- record_outcome ------------------------------------------------------------------------------


async def test_an_intervention_is_stored_as_pending(deps: CompanionDeps, stack: MemoryStack) -> None:
    state = {"messages": break_turn("I'm exhausted, my brain is fried"), "decision": BREAK_DECISION,
             "reply": BREAK_RESULT}
    update = await record_outcome(state, CONFIG, deps=deps)
    stored = await element(stack, InterventionMemory).get("maya", update["last_intervention_id"])
    assert stored.outcome is Outcome.PENDING and stored.tool_name == "suggest_break"
    assert stored.user_context == "I'm exhausted, my brain is fried" and stored.text == BREAK_RESULT
    assert stored.tool_args == {"minutes": 5}
    assert update["session_log"] == [{"kind": "intervention", "id": stored.id, "tool": "suggest_break",
                                      "said": "I'm exhausted, my brain is fried"}]
    assert update["settled"] == [] and "degraded" not in update
    assert stored.quality == 1.0  # said within the style: a fit example for later


async def test_tool_arguments_over_the_limit_are_dropped_and_the_intervention_still_kept(
        deps: CompanionDeps, stack: MemoryStack) -> None:
    # A voice model's tool call can carry anything: 5,000 characters of arguments used to fail
    # the whole run (a ValidationError out of record_outcome).
    # (model_construct: the tool call arrives unchecked, as a voice model's does)
    decision = BREAK_DECISION.model_copy(update={"args": {"minutes": 5, "activity": "x" * 5000}})
    state = {"messages": break_turn("I'm exhausted, my brain is fried"), "decision": decision, "reply": BREAK_RESULT}
    update = await record_outcome(state, CONFIG, deps=deps)
    stored = await element(stack, InterventionMemory).get("maya", update["last_intervention_id"])
    assert stored.tool_name == "suggest_break" and stored.tool_args == {} and stored.quality == 1.0


async def test_a_reply_said_badly_is_stored_with_a_low_quality(deps: CompanionDeps, stack: MemoryStack) -> None:
    literal = {"messages": break_turn("I'm exhausted, my brain is fried"), "decision": BREAK_DECISION,
               "style": {"literal_language": True},
               "reply": "Take five minutes off. Is it hard? Is it a piece of cake?"}
    update = await record_outcome(literal, CONFIG, deps=deps)
    stored = await element(stack, InterventionMemory).get("maya", update["last_intervention_id"])
    assert stored.quality == 0.25  # three sentences, two questions at once, an idiom for a literal listener


async def test_the_previous_intervention_settles_from_the_evidence(deps: CompanionDeps, stack: MemoryStack) -> None:
    previous = await store(stack, "maya", "I can't start", "create_microsteps")
    state = {**said("I did it, I finished!"), "last_intervention_id": previous,
             "evidence": Evidence(outcome=Outcome.TASK_COMPLETED),
             "decision": Decision(tool=None, source="acknowledge")}
    update = await record_outcome(state, CONFIG, deps=deps)
    assert update["settled"] == [{"kind": "outcome", "id": previous, "outcome": "task_completed"}]
    assert update["last_intervention_id"] is None  # settled: nothing pending any more
    assert (await element(stack, InterventionMemory).get("maya", previous)).outcome is Outcome.TASK_COMPLETED


@pytest.mark.parametrize(("plan_done", "outcome"), [(False, Outcome.TASK_PROGRESS), (True, Outcome.TASK_COMPLETED)])
async def test_a_completed_step_settles_the_previous_intervention(
    deps: CompanionDeps, stack: MemoryStack, plan_done: bool, outcome: Outcome
) -> None:
    previous = await store(stack, "maya", "I can't start", "create_microsteps")
    call = {"name": "mark_step_complete", "args": {}, "id": "c1", "type": "tool_call"}
    messages = [HumanMessage("done with that step"), AIMessage("", tool_calls=[call]),
                ToolMessage("Ticked off.", tool_call_id="c1", artifact={"event": "step_completed",
                                                                         "plan_done": plan_done})]
    state = {"messages": messages, "last_intervention_id": previous, "evidence": None,
             "decision": Decision(tool="mark_step_complete", source="request", intervention=False)}
    update = await record_outcome(state, CONFIG, deps=deps)
    assert update["settled"][0]["outcome"] == outcome.value
    assert (await element(stack, InterventionMemory).get("maya", previous)).outcome is outcome


async def test_a_pending_intervention_from_before_a_restart_is_settled(deps: CompanionDeps, stack: MemoryStack
                                                                      ) -> None:
    earlier = await store(stack, "maya", "I can't start", "create_microsteps")
    update = await record_outcome({**said(SUCCESS_REPLY), "evidence": Evidence(outcome=Outcome.TASK_PROGRESS)},
                                  CONFIG, deps=deps)
    assert [s["id"] for s in update["settled"]] == [earlier]
    assert (await element(stack, InterventionMemory).get("maya", earlier)).outcome is Outcome.TASK_PROGRESS


# --- reflect -------------------------------------------------------------------------------------


async def session_log(stack: MemoryStack) -> tuple[list[dict[str, Any]], str]:
    """A session: microsteps helped, a sensory check did not, a breathing exercise is still pending."""
    ids = [await store(stack, "maya", s, t) for s, t in (("I can't start my essay", "create_microsteps"),
                                                         ("It's too loud here", "sensory_check"),
                                                         ("I'm panicking", "start_breathing_exercise"))]
    interventions = element(stack, InterventionMemory)
    await interventions.settle("maya", ids[0], Outcome.TASK_COMPLETED)
    await interventions.settle("maya", ids[1], Outcome.ABANDONED)
    entries = [
        {"kind": "intervention", "id": ids[0], "tool": "create_microsteps", "said": "I can't start my essay"},
        {"kind": "outcome", "id": ids[0], "outcome": "task_completed"},
        {"kind": "intervention", "id": ids[1], "tool": "sensory_check", "said": "It's too loud here"},
        {"kind": "outcome", "id": ids[1], "outcome": "abandoned"},
        {"kind": "intervention", "id": ids[2], "tool": "start_breathing_exercise", "said": "I'm panicking"},
    ]
    return entries, ids[2]


async def test_reflect_remembers_the_lesson_and_updates_state_and_feedback(deps: CompanionDeps, stack: MemoryStack
                                                                          ) -> None:
    entries, pending = await session_log(stack)
    await element(stack, FeedbackMemory).save("maya", {"rating": 2, "tags": ["too long"], "comment": "wordy"})
    update = await reflect({**said("/end"), "session_log": entries}, CONFIG, deps=deps)

    [reflection] = await element(stack, ReflectionMemory).recent("maya")
    assert reflection.insight == 'Breaking the task into small steps helped when they said "I can\'t start my essay".'
    assert reflection.tags == ["create_microsteps"]
    assert update["reflection"] == reflection.insight and update["ended"] is True
    assert update["messages"][0].content == f"Session saved. {reflection.insight}"
    state = await element(stack, CurrentStateMemory).get_or_default("maya")
    assert state.recent_wins == ['"I can\'t start my essay": task completed']
    assert state.recent_losses == ['"It\'s too loud here": sensory_check did not help']
    assert state.mood is Mood.FOCUSED
    summary = await element(stack, FeedbackMemory).summary("maya")
    assert summary is not None and summary.entries == 1 and summary.negatives == ["too long"]
    assert (await element(stack, InterventionMemory).get("maya", pending)).outcome is Outcome.UNKNOWN


async def test_reflect_keeps_the_drafted_lesson_when_the_model_invents_another(
    stack: MemoryStack, tmp_path: Path
) -> None:
    entries, _ = await session_log(stack)
    deps = await scripted(stack, tmp_path, structured={"insight": "Maya loves pizza on Fridays."})
    update = await reflect({**said("/end"), "session_log": entries}, CONFIG, deps=deps)
    assert update["reflection"].startswith("Breaking the task into small steps helped")


async def test_an_empty_session_ends_without_inventing_a_lesson(deps: CompanionDeps, stack: MemoryStack) -> None:
    update = await reflect(said("/end"), CONFIG, deps=deps)
    assert update["reflection"] is None and update["ended"] is True
    assert "No lesson yet" in update["messages"][0].content
    assert await element(stack, ReflectionMemory).recent("maya") == []
