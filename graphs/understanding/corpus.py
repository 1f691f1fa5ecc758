"""The labelled corpus (``corpus/*.jsonl``, described in ``corpus/README.md``) and its splits.

``train_*`` and ``crisis_train`` are split into train and validation by a stable hash of
the text; ``heldout`` and ``crisis_heldout`` were written by other writers and are only
ever reported on, never tuned on.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError, field_validator

from graphs.understanding.acts import Act, CrisisKind, Question, Request, Sign
from memories.errors import InvalidInput
from memories.records import MAX_TEXT_CHARS

CORPUS_DIR = Path(__file__).with_name("corpus")
TRAIN_FILES = ("train_a.jsonl", "train_b.jsonl", "train_c.jsonl", "train_outcomes.jsonl", "train_prototypes.jsonl",
               "outcomes_train_3.jsonl", "outcomes_train_4.jsonl", "crisis_train.jsonl", "crisis_train_2.jsonl",
               "crisis_train_3.jsonl", "crisis_train_4.jsonl", "crisis_dev.jsonl")
HELDOUT_FILES = ("heldout.jsonl", "crisis_heldout_2.jsonl", "heldout_3.jsonl", "everyday_heldout_4.jsonl")
VALIDATION_SHARE = 15  # percent of the training files' messages kept back for tuning


class Split(StrEnum):
    """Which part of the corpus a message belongs to."""

    TRAIN = "train"
    VALIDATION = "validation"
    HELDOUT = "heldout"


class Labelled(BaseModel):
    """One labelled message."""

    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    act: Act
    also: list[Act] = Field(default_factory=list)
    outcome: Sign
    steps: int | str | None = None
    request: Request | None = None
    question: Question | None = None
    crisis: str | None = None
    crisis_kind: CrisisKind | None = None
    hyperbole: bool = False
    style: list[str] = Field(default_factory=list)
    source: str = ""

    @field_validator("steps")
    @classmethod
    def _steps(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, str) and value != "all":
            raise ValueError('steps is a number, "all" or null')
        return value


def split_of(text: str, file: str) -> Split:
    """The split of a message: held-out files as they are; the rest by a hash of the text."""
    if file in HELDOUT_FILES:
        return Split.HELDOUT
    digest = int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16)
    return Split.VALIDATION if digest % 100 < VALIDATION_SHARE else Split.TRAIN


def load_file(path: Path) -> list[Labelled]:
    """Read one corpus file; an invalid line is an error naming the file and line."""
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append(Labelled.model_validate({**json.loads(line), "source": path.name}))
        except (json.JSONDecodeError, ValidationError) as exc:
            raise InvalidInput(f"{path.name}:{number}: {exc}", field="corpus") from None
    return out


def load_corpus(directory: Path = CORPUS_DIR, *, heldout: bool = True) -> dict[Split, list[Labelled]]:
    """Every labelled message by split. Training passes ``heldout=False``: its code never even
    reads the held-out files."""
    splits: dict[Split, list[Labelled]] = {s: [] for s in Split}
    for name in (*TRAIN_FILES, *(HELDOUT_FILES if heldout else ())):
        path = directory / name
        if not path.exists():
            raise InvalidInput(f"missing corpus file {path}", field="corpus")
        for item in load_file(path):
            splits[split_of(item.text, name)].append(item)
    return splits
