"""The registry: builds the enabled memory elements and loads a turn's context from all of them.

Graph code talks to the registry, never to a concrete element list, so an element
is switched off with a setting and a new one is added with :func:`register_element`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from memories.base import MemoryBackend, MemoryElement
from memories.current_state import CurrentStateMemory
from memories.errors import UnknownElement
from memories.feedback import FeedbackMemory
from memories.interventions import InterventionMemory
from memories.profile import ProfileMemory
from memories.records import MemorySection, TurnInputs
from memories.reflections import ReflectionMemory
from memories.tracing import traced
from memories.validation import parse, validate_user_id

log = logging.getLogger(__name__)

ElementFactory = Callable[[MemoryBackend], MemoryElement[Any]]
E = TypeVar("E", bound=MemoryElement[Any])

#: Known element factories by name; the built-in five, plus any registered at import time.
ELEMENT_FACTORIES: dict[str, ElementFactory] = {
    cls.name: cls
    for cls in (ProfileMemory, InterventionMemory, ReflectionMemory, FeedbackMemory, CurrentStateMemory)
}


def register_element(name: str, factory: ElementFactory) -> None:
    """Make a new kind of memory element available to ``MemorySettings.enabled``."""
    ELEMENT_FACTORIES[name] = factory


class MemoryRegistry:
    """The enabled memory elements of one backend, in a fixed order."""

    def __init__(self, backend: MemoryBackend, enabled: list[str] | None = None) -> None:
        names = backend.settings.enabled if enabled is None else enabled
        unknown = [n for n in names if n not in ELEMENT_FACTORIES]
        if unknown:
            raise UnknownElement(f"unknown memory element(s) {unknown}; known: {sorted(ELEMENT_FACTORIES)}")
        self.backend = backend
        self.elements: dict[str, MemoryElement[Any]] = {n: ELEMENT_FACTORIES[n](backend) for n in names}

    def __iter__(self) -> Iterator[MemoryElement[Any]]:
        return iter(self.elements.values())

    def __contains__(self, name: object) -> bool:
        return name in self.elements

    def get(self, kind: type[E]) -> E | None:
        """The enabled element of a class (``registry.get(InterventionMemory)``), or None if off."""
        found = next((e for e in self.elements.values() if isinstance(e, kind)), None)
        return found  # type: ignore[return-value]

    async def setup(self) -> None:
        """Create every enabled element's index."""
        await asyncio.gather(*(e.setup() for e in self))

    @traced("registry.load")
    async def load(self, user_id: str, inputs: TurnInputs | dict[str, Any] | None = None) -> dict[str, MemorySection]:
        """Every element's section for a turn, loaded concurrently."""
        validate_user_id(user_id)
        turn = parse(TurnInputs, inputs or {})
        sections = await asyncio.gather(*(e.load(user_id, turn) for e in self))
        return {s.element: s for s in sections}

    async def aload_memory_variables(self, user_id: str, inputs: dict[str, Any] | None = None) -> dict[str, str]:
        """LangChain-style: ``{memory_variable: prompt}`` over all elements."""
        sections = await self.load(user_id, inputs)
        return {e.memory_variables[0]: sections[e.name].prompt for e in self}

    @traced("registry.forget")
    async def forget(self, user_id: str) -> dict[str, int]:
        """Delete everything about ``user_id`` in every element; counts per element."""
        validate_user_id(user_id)
        counts = await asyncio.gather(*(e.forget(user_id) for e in self))
        log.info("forgot user: %s", dict(zip(self.elements, counts, strict=True)))
        return dict(zip(self.elements, counts, strict=True))

    @traced("registry.export")
    async def export(self, user_id: str) -> dict[str, list[dict[str, Any]]]:
        """Everything about ``user_id``, per element."""
        validate_user_id(user_id)
        data = await asyncio.gather(*(e.export(user_id) for e in self))
        return dict(zip(self.elements, data, strict=True))
