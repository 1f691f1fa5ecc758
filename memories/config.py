"""Configuration of the memory layer: one typed object, grouped by concern.

``app.settings.Settings`` nests this model, so every field can be overridden
from the environment as ``SAM2VOICE_MEMORY__<FIELD>`` (e.g.
``SAM2VOICE_MEMORY__INTERVENTION_TTL_DAYS=14``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

ELEMENT_NAMES = ("profile", "interventions", "reflections", "feedback", "current_state")


class RankingWeights(BaseModel):
    """How few-shot retrieval combines its signals into one score (weights sum freely)."""

    similarity: float = Field(0.55, ge=0, le=10, description="Cosine similarity to the situation.")
    success_rate: float = Field(
        0.25, ge=0, le=10, description="This user's observed success rate for the intervention's tool."
    )
    outcome: float = Field(0.15, ge=0, le=10, description="How this very intervention turned out.")
    recency: float = Field(0.05, ge=0, le=10, description="Exponential decay with the record's age.")
    min_similarity: float = Field(0.2, ge=-1, le=1, description="Candidates less similar than this are ignored.")
    recency_half_life_days: float = Field(7.0, gt=0, le=365, description="Age at which recency is 0.5.")


class MemorySettings(BaseModel):
    """Settings of the memory elements, their storage and their limits."""

    # Which elements the registry builds; drop a name to switch an element off.
    enabled: list[str] = Field(
        default_factory=lambda: list(ELEMENT_NAMES), description="Memory elements to build, by name."
    )
    namespace: str = Field(
        "sam2voice", pattern=r"^[a-z][a-z0-9_]{1,31}$", description="Prefix of every Redis key and index."
    )

    # Lifetimes
    intervention_ttl_days: float = Field(30, gt=0, le=3650, description="Interventions expire after this.")
    reflection_ttl_days: float = Field(90, gt=0, le=3650, description="Reflections expire after this.")
    feedback_ttl_days: float | None = Field(None, gt=0, le=3650, description="Feedback entries expire (None: never).")
    embedding_cache_ttl_s: int = Field(24 * 3600, gt=0, description="Cached query embeddings expire after this.")

    # Limits; text and tag limits are fixed in memories/records.py (docs/memory.md).
    max_batch: int = Field(1000, ge=1, le=100_000, description="Most records in one batched write.")
    max_list_items: int = Field(10, ge=1, le=100, description="Items kept in bounded lists (recent wins, ...).")

    # Retrieval
    few_shot_k: int = Field(3, ge=1, le=50, description="Examples returned by few-shot retrieval.")
    candidate_pool: int = Field(24, ge=1, le=500, description="Nearest neighbours re-ranked per retrieval.")
    few_shot_min_quality: float = Field(
        0.5, ge=0, le=1, description="Replies scored below this (graphs.style.reply_quality) are never shown as "
        "few-shot examples; their outcomes still count. Unscored replies are shown.")
    ranking: RankingWeights = Field(default_factory=RankingWeights)
    reflection_merge_threshold: float = Field(
        0.88, gt=0, le=1, description="Cosine similarity at which a new insight merges into an old one."
    )
    # float16 halves vector memory (~2.9 KB instead of ~4.5 KB per intervention, see
    # docs/benchmarks.md); cosine similarities moved by at most 7.5e-5 there and the
    # top-3 examples were identical.
    vector_datatype: Literal["float32", "float16"] = Field(
        "float16", description="Storage type of vectors in the indexes."
    )
