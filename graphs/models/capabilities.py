"""What a chat model is good for, declared by the model rather than guessed from its class.

The graph asks two things of a chat model beyond talking:

* ``rewords``: make the graph's drafted reply warmer and personal (the style guard still
  falls back to the draft when the words break the coaching style);
* ``writes``: write tool content (step lists, reframes) and read messages with
  structured output (the understanding step's second reader, the tool proposal).

A model class says what it can with a ``capabilities`` class attribute. A model that says
nothing (Gemini through ``langchain-google-genai``, or any other LangChain chat model) is
taken as capable of both: that is what a hosted model is for.
"""

from __future__ import annotations

from langchain_core.language_models import BaseChatModel
from pydantic import BaseModel, ConfigDict, Field


class ModelCapabilities(BaseModel):
    """What the graph may ask of a chat model."""

    model_config = ConfigDict(frozen=True)

    rewords: bool = Field(True, description="May reword the drafted reply (within the style guard).")
    writes: bool = Field(True, description="May write tool content and read messages with structured output.")


FULL = ModelCapabilities()


def capabilities_of(model: BaseChatModel) -> ModelCapabilities:
    """The capabilities ``model`` declares (a model that declares none is taken as fully capable)."""
    declared = getattr(type(model), "capabilities", None)
    return declared if isinstance(declared, ModelCapabilities) else FULL
