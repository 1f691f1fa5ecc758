"""What the companion graph's nodes run against, built once per process by ``app``.

Nodes receive this object bound in (``functools.partial``) rather than importing module
globals, so two graphs with different memories or models can live in one process (tests,
the learning evaluation's memory-on and memory-off arms) and nothing about a session
lives outside Redis and the checkpointer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool

from graphs.configuration import CompanionSettings
from graphs.outbox import Outbox
from graphs.relevance import ToolRelevance
from graphs.situations import SituationSpace
from graphs.understanding.reader import UnderstandingReader
from memories.stack import MemoryStack
from tools.store import CoachingStore


@dataclass
class CompanionDeps:
    """The memory layer, coaching store, tools, chat model and tunables of one companion."""

    memory: MemoryStack
    store: CoachingStore
    tools: list[BaseTool]
    chat_model: BaseChatModel
    understanding: UnderstandingReader
    relevance: ToolRelevance
    settings: CompanionSettings = field(default_factory=CompanionSettings)
    outbox: Outbox = field(default_factory=Outbox)
    #: Let the chat model reword the drafted reply. Off for the 135M offline model: its
    #: free text failed the style guard in 24 of 24 measured replies and cost ~0.9 s each.
    reword_replies: bool = True
    #: A chat model that reads messages too (structured output); None offline. Only capable models
    #: (Gemini) get it: the offline reader is better than the 135M model and always runs anyway.
    understanding_model: BaseChatModel | None = None
    #: "The same kind of moment" for the policy (``graphs.situations``); built on first use.
    situations: SituationSpace | None = None

    @property
    def tools_by_name(self) -> dict[str, BaseTool]:
        """The tools keyed by name."""
        return {t.name: t for t in self.tools}
