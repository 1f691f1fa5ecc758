"""The registry: elements are pluggable, switched off by settings, loaded together."""

from __future__ import annotations

from typing import Any

import pytest

from memories.base import MemoryBackend, MemoryElement
from memories.errors import UnknownElement
from memories.interventions import InterventionMemory
from memories.records import MemorySection
from memories.registry import ELEMENT_FACTORIES, MemoryRegistry, register_element
from memories.stack import MemoryStack, open_memory
from memories.storage import UserScopedIndex
from tests.conftest import memory_settings


async def test_every_element_contributes_a_section(stack: MemoryStack) -> None:
    registry = stack.registry
    assert list(registry.elements) == ["profile", "interventions", "reflections", "feedback", "current_state"]
    await registry.get(InterventionMemory).save("ada", {"text": "Tiny step", "user_context": "stuck"})  # type: ignore[union-attr]
    sections = await registry.load("ada", {"message": "I'm stuck"})
    assert set(sections) == set(registry.elements)
    assert "Tiny step" in sections["interventions"].prompt
    variables = await registry.aload_memory_variables("ada", {"message": "I'm stuck"})
    assert set(variables) == {"profile", "few_shot_examples", "reflections", "feedback_summary", "current_state"}


async def test_an_element_can_be_switched_off(redis_url: str, minilm) -> None:  # type: ignore[no-untyped-def]
    settings = memory_settings(enabled=["profile", "current_state"])
    stack = await open_memory(redis_url, settings, base_embeddings=(minilm, minilm.model_id, minilm.dims))
    try:
        assert list(stack.registry.elements) == ["profile", "current_state"]
        assert stack.registry.get(InterventionMemory) is None
        assert set(await stack.registry.load("ada", {"message": "hi"})) == {"profile", "current_state"}
    finally:
        await stack.aclose()


async def test_unknown_elements_are_named(stack: MemoryStack) -> None:
    with pytest.raises(UnknownElement, match="moods"):
        MemoryRegistry(stack.registry.backend, enabled=["profile", "moods"])


class GratitudeMemory(MemoryElement[dict]):
    """A new kind of element, added without touching any other code."""

    name = "gratitude"
    memory_variables = ["gratitude"]

    def _build_index(self) -> UserScopedIndex:
        return UserScopedIndex(self.backend.client, name=self.backend.index_name(self.name, with_vectors=False),
                               storage="hash", fields=[{"name": "text", "type": "text"}])

    async def save(self, user_id: str, record: dict | Any) -> str:
        key = self.index.key(user_id, "1")
        await self.index.index.load([{"user_id": user_id, "text": record["text"]}], keys=[key])
        return key

    async def load(self, user_id: str, inputs: Any = None) -> MemorySection:
        rows = await self.index.find(user_id, return_fields=["text"])
        return MemorySection(element=self.name, prompt="; ".join(r["text"] for r in rows))


async def test_a_new_element_plugs_in_through_the_registry(stack: MemoryStack) -> None:
    register_element("gratitude", GratitudeMemory)
    try:
        backend: MemoryBackend = stack.registry.backend
        registry = MemoryRegistry(backend, enabled=["profile", "gratitude"])
        await registry.setup()
        await registry.get(GratitudeMemory).save("ada", {"text": "thankful for tea"})  # type: ignore[union-attr]
        sections = await registry.load("ada")
        assert sections["gratitude"].prompt == "thankful for tea"
        assert (await registry.forget("ada"))["gratitude"] == 1
    finally:
        ELEMENT_FACTORIES.pop("gratitude")


async def test_export_then_forget_removes_everything_about_a_person(stack: MemoryStack) -> None:
    registry = stack.registry
    await registry.get(InterventionMemory).save("ada", {"text": "t", "user_context": "c",  # type: ignore[union-attr]
                                                        "outcome": "task_completed"})
    for element in registry:
        if element.name in ("profile", "current_state"):
            await element.update("ada", {})  # type: ignore[attr-defined]
    exported = await registry.export("ada")
    assert exported["interventions"] and exported["profile"] and exported["current_state"]
    await registry.forget("ada")
    assert all(rows == [] for rows in (await registry.export("ada")).values())
    keys = [k async for k in stack.client.scan_iter(match=f"{registry.backend.settings.namespace}:*")
            if b"embedcache" not in k]
    assert keys == []


async def test_several_processes_starting_at_once_on_a_fresh_redis_all_come_up(redis_url: str, minilm) -> None:  # type: ignore[no-untyped-def]
    """`serve --workers 2` on a fresh Redis: every worker creates the indexes at the same moment.
    Once the loser's create failed with "Index already exists" and the worker died."""
    import asyncio

    from app.companion import checkpointer_for

    settings = memory_settings()
    stacks = await asyncio.gather(*(open_memory(redis_url, settings, base_embeddings=(minilm, minilm.model_id,
                                                                                      minilm.dims))
                                    for _ in range(4)))
    try:
        await asyncio.gather(*(checkpointer_for(stack) for stack in stacks))
        for stack in stacks:
            assert len(await stack.registry.export("anyone")) == len(stack.registry.elements)
    finally:
        for stack in stacks:
            await stack.aclose()
