"""No input can reach another user's records: adversarial ids, property-based."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memories.errors import InvalidInput
from memories.feedback import FeedbackMemory
from memories.interventions import InterventionMemory
from memories.profile import ProfileMemory
from memories.reflections import ReflectionMemory
from memories.stack import MemoryStack
from memories.validation import validate_user_id

ADVERSARIAL = ["a|b", "*", "{x}", "@user_id:{other}", "other", "a,b", "a b", "A", "a", "a*", "-a", "\\", "ü💥",
               "用户", "$x", "'q'", '"q"', "(a)", "a||b", "x" * 128, "@user_id:{a} | @user_id:{b}", "%%", "a\\,b"]

valid_ids = st.text(min_size=1, max_size=40).filter(lambda s: s == s.strip() and s.isprintable())


async def _seed(stack: MemoryStack, user: str) -> None:
    await stack.registry.get(InterventionMemory).save(user, {"text": f"for {user}", "user_context": "stuck again"})  # type: ignore[union-attr]
    await stack.registry.get(ProfileMemory).update(user, {"name": "Someone"})  # type: ignore[union-attr]
    await stack.registry.get(ReflectionMemory).remember(user, {"insight": f"insight of {user}"})  # type: ignore[union-attr]
    await stack.registry.get(FeedbackMemory).save(user, {"rating": 4, "comment": f"note of {user}"})  # type: ignore[union-attr]


async def test_adversarial_ids_see_only_their_own_records(stack: MemoryStack) -> None:
    for user in ADVERSARIAL:
        await _seed(stack, user)
    interventions = stack.registry.get(InterventionMemory)
    for user in ADVERSARIAL:
        found = await interventions.similar_successes(user, "stuck again", k=50)  # type: ignore[union-attr]
        assert [e.intervention.text for e in found] == [f"for {user}"], user
        exported = await stack.registry.export(user)
        owners = {row.get("user_id") for rows in exported.values() for row in rows if "user_id" in row}
        assert owners == {user}, user
    await stack.registry.forget("*")
    await stack.registry.forget("a|b")
    for user in ADVERSARIAL:
        count = await interventions.index.count(user)  # type: ignore[union-attr]
        assert count == (0 if user in ("*", "a|b") else 1), user


@pytest.mark.parametrize("bad", ["", " a", "a ", "a\tb", "a\nb", "x" * 129, "\x00", "a\u2028b", "\u3000", None, 7])
async def test_malformed_ids_are_refused_before_any_io(stack: MemoryStack, bad: object) -> None:
    with pytest.raises(InvalidInput, match="user_id"):
        validate_user_id(bad)
    with pytest.raises(InvalidInput, match="user_id"):
        await stack.registry.load(bad, {"message": "hi"})  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="user_id"):
        await stack.registry.get(InterventionMemory).save(bad, {"text": "x", "user_context": "y"})  # type: ignore[union-attr, arg-type]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=valid_ids, second=valid_ids)
async def test_property_two_users_never_see_each_other(stack: MemoryStack, first: str, second: str) -> None:
    if first == second:
        return
    interventions = stack.registry.get(InterventionMemory)
    profile = stack.registry.get(ProfileMemory)
    assert interventions and profile
    for user in (first, second):
        await interventions.save(user, {"text": f"for {user!r}", "user_context": "cannot focus"})
        await profile.update(user, {"name": "N"})
    try:
        for user in (first, second):
            texts = [e.intervention.text for e in await interventions.similar_successes(user, "cannot focus", k=50)]
            assert texts == [f"for {user!r}"]
            assert await interventions.index.count(user) == 1
        await stack.registry.forget(first)
        assert await interventions.index.count(second) == 1 and await profile.get(second) is not None
    finally:
        await stack.registry.forget(first)
        await stack.registry.forget(second)
