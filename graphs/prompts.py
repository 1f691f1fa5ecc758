"""The prompts of the reply model: coaching rules, memory context and the graph's draft.

Kept short on purpose: the offline model has a 2,048-token window and reads ~300 tokens/s
on two cores, so every prompt token is latency. The draft goes last in the system message
(``Draft reply: ...``): small models echo what they read last, and the template model reads it.
"""

from __future__ import annotations

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from graphs.style import StyleProfile

COACH_RULES = (
    "You are Sam, a kind coach for people with ADHD. "
    "Rewrite the draft reply for the user in one or two short sentences. "
    "Keep its one tiny step. Be warm. Never blame or judge."
)
LITERAL_RULES = "Use plain, literal words with no idioms. Keep any heads-up about what comes next."


def reply_messages(
    *, context: str, history: list[BaseMessage], message: str, draft: str, profile: StyleProfile
) -> list[BaseMessage]:
    """The messages the reply model gets: rules, memory ``context`` (rendered; may be empty) and
    ``Draft reply: {draft}`` as the system message's last line; then the ``history`` messages (the
    caller keeps ``CompanionSettings.history_messages`` of them) and the user's ``message``."""
    parts = [COACH_RULES]
    if profile.literal:
        parts.append(LITERAL_RULES)
    if context.strip():
        parts.append(context.strip())
    parts.append(f"Draft reply: {' '.join(draft.split())}")
    return [SystemMessage("\n".join(parts)), *history, HumanMessage(message)]
