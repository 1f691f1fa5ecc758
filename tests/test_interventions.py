"""InterventionMemory: recording, settling, and few-shot retrieval ranked by what worked."""

from __future__ import annotations

import time

import pytest
from langchain_core.prompts import FewShotPromptTemplate, PromptTemplate

from memories.errors import InvalidInput, RecordNotFound
from memories.interventions import InterventionMemory
from memories.langchain_faces import InterventionExampleSelector, InterventionRetriever
from memories.outcomes import Outcome
from memories.stack import MemoryStack
from tests.conftest import element


@pytest.fixture
def interventions(stack: MemoryStack) -> InterventionMemory:
    return element(stack, InterventionMemory)


async def test_recorded_interventions_start_pending_and_settle_by_id(interventions: InterventionMemory) -> None:
    [item] = await interventions.record_many("maya", [{
        "text": "Let's write just the title.", "tool_name": "create_microsteps", "tool_args": {"task": "essay"},
        "user_context": "I can't start my essay", "task": "essay", "situation_tags": ["Task-Start"],
    }])
    assert item.outcome is Outcome.PENDING
    assert [p.id for p in await interventions.pending("maya")] == [item.id]

    previous = await interventions.settle("maya", item.id, "task_completed")
    assert previous is Outcome.PENDING
    stored = await interventions.get("maya", item.id)
    assert stored.outcome is Outcome.TASK_COMPLETED and stored.settled_at is not None
    assert stored.tool_args == {"task": "essay"} and stored.situation_tags == ["task-start"]
    assert await interventions.pending("maya") == []
    rates = await interventions.success_rates("maya")
    assert rates["create_microsteps"].settled == 1


async def test_resettling_moves_the_counters_instead_of_double_counting(interventions: InterventionMemory) -> None:
    item_id = await interventions.save("maya", {"text": "Break?", "tool_name": "suggest_break", "user_context": "meh"})
    await interventions.settle("maya", item_id, "abandoned")
    await interventions.settle("maya", item_id, "task_completed")
    stats = (await interventions.success_rates("maya"))["suggest_break"]
    assert stats.settled == 1 and stats.value_sum == pytest.approx(1.0)


async def test_unknown_outcome_and_foreign_ids_are_refused(interventions: InterventionMemory) -> None:
    item_id = await interventions.save("maya", {"text": "x", "user_context": "y"})
    with pytest.raises(InvalidInput, match="unknown outcome"):
        await interventions.settle("maya", item_id, "great")
    with pytest.raises(RecordNotFound):
        await interventions.settle("leo", item_id, "task_completed")  # not leo's record
    with pytest.raises(RecordNotFound):
        await interventions.settle("maya", "no-such-id", "task_completed")
    with pytest.raises(RecordNotFound):
        await interventions.get("leo", item_id)
    assert (await interventions.get("maya", item_id)).outcome is Outcome.PENDING


async def test_few_shot_prefers_what_worked_for_this_user(interventions: InterventionMemory) -> None:
    said = "I can't get myself to start cleaning the kitchen"
    break_id = await interventions.save("maya", {"text": "Take a break first.", "tool_name": "suggest_break",
                                                 "user_context": said})
    steps_id = await interventions.save("maya", {"text": "Just put the cups in the sink.",
                                                 "tool_name": "create_microsteps",
                                                 "user_context": "The kitchen is a mess and I'm stuck"})
    situation = "I can't start cleaning the kitchen"
    before = await interventions.similar_successes("maya", situation)
    assert before[0].intervention.id == break_id  # most similar wins while nothing is known

    await interventions.settle("maya", break_id, "abandoned")
    await interventions.settle("maya", steps_id, "task_completed")
    after = await interventions.similar_successes("maya", situation, contrast=True)
    assert after[0].intervention.id == steps_id
    assert after[0].success_rate > 0.5
    assert after[-1].contrast and after[-1].intervention.id == break_id  # the failure, as contrast only
    assert all(not e.contrast for e in after[:-1])
    assert [e.intervention.id for e in await interventions.similar_successes("maya", situation)] == [steps_id]


async def test_recency_breaks_ties_between_equal_examples(interventions: InterventionMemory) -> None:
    old = time.time() - 60 * 86400
    records = [
        {"text": "Old advice", "tool_name": "create_microsteps", "user_context": "I can't start", "created_at": old,
         "outcome": "task_completed"},
        {"text": "New advice", "tool_name": "create_microsteps", "user_context": "I can't start",
         "outcome": "task_completed"},
    ]
    await interventions.record_many("maya", records)
    ranked = await interventions.similar_successes("maya", "I can't start")
    assert [e.intervention.text for e in ranked] == ["New advice", "Old advice"]
    assert ranked[0].recency > ranked[1].recency


async def test_load_gives_a_prompt_section_with_the_ids_used(interventions: InterventionMemory) -> None:
    item_id = await interventions.save("maya", {"text": "Breathe with me.", "tool_name": "start_breathing_exercise",
                                                "user_context": "I'm overwhelmed", "outcome": "re_engaged"})
    section = await interventions.load("maya", {"message": "I feel so overwhelmed"})
    assert section.used_ids == [item_id]
    assert "Breathe with me." in section.prompt and "start_breathing_exercise" in section.prompt
    empty = await interventions.load("maya", {})
    assert empty.prompt == "" and empty.used_ids == []


async def test_retriever_and_example_selector_are_langchain_native(interventions: InterventionMemory) -> None:
    selector = InterventionExampleSelector(interventions, "maya", k=2)
    await selector.aadd_example({"situation": "I keep checking my phone", "intervention": "Phone in another room?",
                                 "tool_name": "suggest_break", "outcome": "re_engaged"})
    retriever = InterventionRetriever(memory=interventions, user_id="maya", k=2)
    docs = await retriever.ainvoke("I'm distracted by my phone")
    assert docs and docs[0].metadata["text"] == "Phone in another room?"

    prompt = FewShotPromptTemplate(
        example_selector=selector,
        example_prompt=PromptTemplate.from_template("Situation: {situation}\nYou: {intervention}"),
        suffix="Situation: {situation}\nYou:", input_variables=["situation"],
    )
    text = await prompt.aformat(situation="my phone keeps pulling me away")
    assert "Phone in another room?" in text
    with pytest.raises(NotImplementedError, match="async"):
        retriever.invoke("sync is refused")


async def test_the_retriever_takes_k_at_call_time(interventions: InterventionMemory) -> None:
    await interventions.record_many("maya", [{"text": f"Try {n}.", "tool_name": "suggest_break",
                                              "user_context": f"I keep checking my phone {n}", "outcome": "re_engaged"}
                                             for n in range(4)])
    retriever = InterventionRetriever(memory=interventions, user_id="maya", k=3)
    assert len(await retriever.ainvoke("my phone keeps distracting me")) == 3
    assert len(await retriever.ainvoke("my phone keeps distracting me", k=1)) == 1
    with pytest.raises(InvalidInput, match="k must be"):
        await retriever.ainvoke("my phone keeps distracting me", k=0)


async def test_a_batch_with_one_bad_record_writes_nothing(interventions: InterventionMemory) -> None:
    good = {"text": "ok", "user_context": "fine"}
    with pytest.raises(InvalidInput):
        await interventions.record_many("maya", [good, {"text": "", "user_context": "empty text"}])
    with pytest.raises(InvalidInput, match="batch limit"):
        await interventions.record_many("maya", [good] * (interventions.settings.max_batch + 1))
    assert await interventions.index.count("maya") == 0


async def test_ranking_weights_can_be_overridden_per_call(interventions: InterventionMemory) -> None:
    from memories.config import RankingWeights

    await interventions.record_many("maya", [
        {"text": "close", "tool_name": "a", "user_context": "I cannot start my essay", "outcome": "task_progress"},
        {"text": "far", "tool_name": "b", "user_context": "Essay writing is hard for me today",
         "outcome": "task_completed"},
    ])
    only_similarity = RankingWeights(similarity=1, success_rate=0, outcome=0, recency=0)
    ranked = await interventions.similar_successes("maya", "I cannot start my essay", weights=only_similarity)
    assert [e.intervention.text for e in ranked] == ["close", "far"]
    assert ranked[0].score == pytest.approx(ranked[0].similarity)


async def test_a_neighbourhood_with_vectors_returns_every_pooled_try_with_its_stored_vector(
        interventions: InterventionMemory) -> None:
    """The policy re-judges "the same kind of moment" itself (graphs.situations): it gets the whole
    pool, faint matches included, each with the vector that was stored for it, and only this
    person's records."""
    await interventions.record_many("maya", [
        {"text": "Title first.", "tool_name": "create_microsteps", "user_context": "I can't start my essay",
         "outcome": "task_progress"},
        {"text": "Water break.", "tool_name": "suggest_break", "user_context": "the dog ate my sandwich lol",
         "outcome": "abandoned"},
    ])
    await interventions.save("leo", {"text": "x", "tool_name": "suggest_break", "user_context": "I can't start"})
    vector = await interventions.backend.embeddings.aembed_query("I can't start my essay")
    plain = await interventions.neighborhood("maya", vector)
    full = await interventions.neighborhood("maya", vector, with_vectors=True)
    assert plain.vectors is None
    assert len(full.neighbors) == 2 > len(plain.neighbors)  # the faint one is below min_similarity
    assert full.vectors is not None and full.vectors.shape == (2, len(vector))
    stored = dict(zip([n.tool_name for n in full.neighbors], full.vectors, strict=True))
    assert float(stored["create_microsteps"] @ vector) == pytest.approx(1.0, abs=1e-4)  # the same words
    assert [n.tool_name for n in plain.neighbors] == ["create_microsteps"]
    assert [e.intervention.tool_name for e in full.examples] == ["create_microsteps"]  # examples keep the cut


async def test_a_badly_said_reply_is_never_shown_as_an_example_but_its_outcome_still_counts(
        interventions: InterventionMemory) -> None:
    from graphs.style import reply_problems, reply_quality

    said = "I can't start my essay"
    judging = "Why didn't you just start it earlier? That's lazy."
    assert reply_quality(reply_problems(judging, user_message=said)) == 0.0
    kind = "Let's write only the title."
    assert reply_quality(reply_problems(kind, user_message=said)) == 1.0
    bad_id = await interventions.save("maya", {"text": judging, "tool_name": "create_microsteps",
                                               "user_context": said, "quality": 0.0})
    good_id = await interventions.save("maya", {"text": kind, "tool_name": "create_microsteps",
                                                "user_context": "cant get going on the essay", "quality": 1.0})
    legacy_id = await interventions.save("maya", {"text": "Open the file.", "tool_name": "create_microsteps",
                                                  "user_context": "essay wont start"})
    await interventions.settle("maya", bad_id, "task_completed")
    assert (await interventions.get("maya", bad_id)).quality == 0.0
    assert (await interventions.get("maya", legacy_id)).quality is None

    found = await interventions.neighborhood("maya", await interventions.backend.embeddings.aembed_query(said),
                                             contrast=True)
    shown = {e.intervention.id for e in found.examples}
    assert bad_id not in shown and {good_id, legacy_id} <= shown  # unscored (older) replies are still shown
    assert Outcome.TASK_COMPLETED in {n.outcome for n in found.neighbors}  # the choice still learns from it
    assert (await interventions.success_rates("maya"))["create_microsteps"].settled == 1

    interventions.settings = interventions.settings.model_copy(update={"few_shot_min_quality": 0.0})
    everything = await interventions.similar_successes("maya", said)
    assert bad_id in {e.intervention.id for e in everything}


async def test_a_quality_outside_zero_to_one_is_refused(interventions: InterventionMemory) -> None:
    with pytest.raises(InvalidInput, match="quality"):
        await interventions.save("maya", {"text": "x", "user_context": "y", "quality": 1.5})
