"""LangChain-native faces of InterventionMemory: a retriever and an example selector.

The memory layer is async-only (one code path); the sync methods LangChain
requires raise a clear error pointing to the async ones.
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.example_selectors import BaseExampleSelector
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from memories.errors import InvalidInput
from memories.interventions import FewShotExample, InterventionMemory, NewIntervention

_ASYNC_ONLY = "sam2voice memories are async: use {name} instead"


def example_as_document(example: FewShotExample) -> Document:
    """A few-shot example as a LangChain Document (the situation as content)."""
    item = example.intervention
    return Document(
        id=item.id,
        page_content=item.situation,
        metadata={**item.model_dump(mode="json"), "similarity": example.similarity,
                  "success_rate": example.success_rate, "score": example.score, "contrast": example.contrast},
    )


class InterventionRetriever(BaseRetriever):
    """Retrieves one user's best past interventions for a situation (``ainvoke(situation)``)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    memory: InterventionMemory
    user_id: str
    k: int = 3
    contrast: bool = False

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                k: int | None = None) -> list[Document]:
        # ``k`` here too: LangChain passes call-time arguments on only when this signature has them.
        raise NotImplementedError(_ASYNC_ONLY.format(name="ainvoke()"))

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        """``k`` at call time (``ainvoke(situation, k=1)``) overrides the retriever's own."""
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 50):
            raise InvalidInput(f"k must be a whole number from 1 to 50, not {k!r}", field="k")
        examples = await self.memory.similar_successes(self.user_id, query, k=k or self.k, contrast=self.contrast)
        return [example_as_document(e) for e in examples]


class InterventionExampleSelector(BaseExampleSelector):
    """Selects few-shot examples ``{"situation", "intervention", "outcome"}`` for a prompt template."""

    def __init__(self, memory: InterventionMemory, user_id: str, *, k: int = 3, input_key: str = "situation") -> None:
        self.memory = memory
        self.user_id = user_id
        self.k = k
        self.input_key = input_key

    def add_example(self, example: dict[str, str]) -> Any:
        raise NotImplementedError(_ASYNC_ONLY.format(name="aadd_example()"))

    def select_examples(self, input_variables: dict[str, str]) -> list[dict[str, Any]]:
        raise NotImplementedError(_ASYNC_ONLY.format(name="aselect_examples()"))

    async def aadd_example(self, example: dict[str, str]) -> Any:
        """Record ``{"situation", "intervention", "tool_name"?, "outcome"?}`` as an intervention."""
        record = NewIntervention.model_validate({
            "user_context": example.get(self.input_key, ""), "text": example.get("intervention", ""),
            "tool_name": example.get("tool_name"), "outcome": example.get("outcome", "pending"),
        })
        return await self.memory.save(self.user_id, record)

    async def aselect_examples(self, input_variables: dict[str, str]) -> list[dict[str, Any]]:
        """The best past interventions for ``input_variables[input_key]``."""
        examples = await self.memory.similar_successes(self.user_id, input_variables[self.input_key], k=self.k)
        return [
            {"situation": e.intervention.user_context, "intervention": e.intervention.text,
             "tool_name": e.intervention.tool_name or "", "outcome": e.intervention.outcome.value}
            for e in examples
        ]
