"""ReflectionMemory (dedup by meaning) and FeedbackMemory (episodes + summary)."""

from __future__ import annotations

import pytest

from memories.errors import InvalidInput
from memories.feedback import FeedbackMemory
from memories.reflections import ReflectionMemory
from memories.stack import MemoryStack
from tests.conftest import element


@pytest.fixture
def reflections(stack: MemoryStack) -> ReflectionMemory:
    return element(stack, ReflectionMemory)


@pytest.fixture
def feedback(stack: MemoryStack) -> FeedbackMemory:
    return element(stack, FeedbackMemory)


async def test_a_near_duplicate_insight_merges_instead_of_repeating(reflections: ReflectionMemory) -> None:
    first = await reflections.remember("ada", {"insight": "Body doubling helps Ada start the dishes"})
    again = await reflections.remember("ada", {"insight": "Body doubling helps Ada start the dishes.",
                                               "tags": ["chores"]})
    other = await reflections.remember("ada", {"insight": "Loud music makes Ada anxious in the evening"})
    assert not first.merged and again.merged and not other.merged
    assert again.reflection.id == first.reflection.id and again.reflection.support == 2
    assert again.similarity is not None and again.similarity >= reflections.settings.reflection_merge_threshold
    assert await reflections.index.count("ada") == 2
    assert (await reflections.remember("bob", {"insight": "Body doubling helps Ada start the dishes"})).merged is False


async def test_reflections_by_recency_and_by_relevance(reflections: ReflectionMemory) -> None:
    await reflections.remember("ada", {"insight": "Breathing exercises calm Ada when overwhelmed"})
    await reflections.remember("ada", {"insight": "Ada likes to be told how many steps are left"})
    recent = await reflections.recent("ada", limit=1)
    assert recent[0].insight == "Ada likes to be told how many steps are left"
    [(best, similarity)] = await reflections.relevant("ada", "I'm so overwhelmed right now", limit=1)
    assert best.insight.startswith("Breathing") and similarity > 0.3
    section = await reflections.load("ada", {"message": "everything is too much"})
    assert len(section.used_ids) == 2 and "Breathing" in section.prompt


async def test_feedback_entries_and_summary(feedback: FeedbackMemory) -> None:
    await feedback.save("ada", {"rating": 5, "tags": ["breathing"], "comment": "The breathing really helped"})
    await feedback.save("ada", {"rating": 1, "tags": ["too long"], "comment": "Too many words at once"})
    await feedback.save("ada", {"rating": 4, "tags": ["breathing"], "interaction_id": "turn-7"})
    summary = await feedback.refresh_summary("ada")
    assert summary.positives == ["breathing"] and summary.negatives == ["too long"]
    assert summary.entries == 3 and summary.average_rating == pytest.approx(10 / 3)
    assert (await feedback.summary("ada")) == summary
    [(match, _)] = await feedback.similar_comments("ada", "it was far too wordy", limit=1)
    assert match.comment == "Too many words at once"
    assert "breathing" in (await feedback.load("ada")).prompt
    exported = await feedback.export("ada")
    assert len(exported) == 4  # three entries and the summary
    assert await feedback.forget("ada") == 4
    assert await feedback.summary("ada") is None


@pytest.mark.parametrize("bad", [
    {"rating": 0}, {"rating": 6}, {"rating": 3.5}, {"rating": float("nan")},
    {"rating": 3, "comment": "x" * 2001}, {"rating": 3, "tags": [f"t{i}" for i in range(17)]},
    {"rating": 3, "created_at": float("inf")},
])
async def test_bad_feedback_is_refused(feedback: FeedbackMemory, bad: dict) -> None:
    with pytest.raises(InvalidInput):
        await feedback.save("ada", bad)
    assert await feedback.index.count("ada") == 0
