"""ProfileMemory and CurrentStateMemory: one document per person, partial updates."""

from __future__ import annotations

import asyncio

import pytest

from memories.current_state import CurrentStateMemory, Mood
from memories.errors import InvalidInput
from memories.profile import Diagnosis, ProfileMemory
from memories.stack import MemoryStack
from tests.conftest import element


@pytest.fixture
def profile(stack: MemoryStack) -> ProfileMemory:
    return element(stack, ProfileMemory)


@pytest.fixture
def state(stack: MemoryStack) -> CurrentStateMemory:
    return element(stack, CurrentStateMemory)


async def test_partial_profile_updates_keep_other_fields(profile: ProfileMemory) -> None:
    assert await profile.get("ada") is None
    await profile.update("ada", {"name": "Ada", "diagnosis": "AUTISM", "diagnosis_source": "OFFICIAL"})
    await profile.update("ada", {"preferences": {"sensory_sensitivities": ["Bright light", "bright light"]}})
    updated = await profile.update("ada", {"preferences": {"checkin_interval_minutes": 5}})
    assert updated.name == "Ada" and updated.diagnosis is Diagnosis.AUTISM
    assert updated.preferences.sensory_sensitivities == ["bright light"]
    assert updated.preferences.checkin_interval_minutes == 5
    assert (await profile.get("ada")) == updated


async def test_the_diagnosis_reaches_the_prompt_only_with_consent(profile: ProfileMemory) -> None:
    await profile.update("ada", {"name": "Ada", "diagnosis": "BOTH", "diagnosis_source": "SELF"})
    assert "BOTH" not in (await profile.load("ada")).prompt
    await profile.update("ada", {"consent_diagnosis_in_prompts": True})
    section = await profile.load("ada")
    assert "Neurotype: BOTH (self-identified)" in section.prompt
    assert section.data.name == "Ada" and section.used_ids


@pytest.mark.parametrize("patch", [
    {"timezone": "Mars/Olympus"},
    {"diagnosis": "FLU"},
    {"preferences": {"checkin_interval_minutes": 0}},
    {"preferences": {"sensory_sensitivities": ["x" * 65]}},
    {"name": "   "},
    {"locale": "english please"},
    {"nickname": "unknown field"},
])
async def test_bad_profile_updates_are_refused_and_write_nothing(profile: ProfileMemory, patch: dict) -> None:
    await profile.update("ada", {"name": "Ada"})
    before = await profile.get("ada")
    with pytest.raises(InvalidInput):
        await profile.update("ada", patch)
    assert await profile.get("ada") == before


async def test_concurrent_partial_updates_of_different_fields_both_land(profile: ProfileMemory) -> None:
    await asyncio.gather(
        profile.update("ada", {"name": "Ada"}),
        profile.update("ada", {"timezone": "Asia/Tokyo"}),
        profile.update("ada", {"preferences": {"communication_style": "literal"}}),
    )
    final = await profile.get("ada")
    assert final is not None
    assert (final.name, final.timezone, final.preferences.communication_style.value) == ("Ada", "Asia/Tokyo", "literal")


async def test_current_state_updates_and_bounded_wins(state: CurrentStateMemory) -> None:
    await state.update("leo", {"mood": "overwhelmed", "pain_points": ["too much noise"]})
    for n in range(state.settings.max_list_items + 3):
        await state.add_win("leo", f"win {n}")
    await state.add_loss("leo", "skipped the call")
    current = await state.update("leo", {"energy": "low"})
    assert current.mood is Mood.OVERWHELMED and current.pain_points == ["too much noise"]
    assert len(current.recent_wins) == state.settings.max_list_items
    assert current.recent_wins[-1] == f"win {state.settings.max_list_items + 2}"
    assert current.recent_losses == ["skipped the call"]
    prompt = (await state.load("leo")).prompt
    assert "overwhelmed" in prompt and "skipped the call" in prompt
    with pytest.raises(InvalidInput):
        await state.add_win("leo", "   ")
    with pytest.raises(InvalidInput):
        await state.update("leo", {"mood": "ecstatic-ish"})


async def test_export_and_forget_a_document(profile: ProfileMemory) -> None:
    await profile.update("ada", {"name": "Ada"})
    [exported] = await profile.export("ada")
    assert exported["name"] == "Ada" and exported["user_id"] == "ada"
    assert await profile.forget("ada") == 1
    assert await profile.get("ada") is None and await profile.export("ada") == []
