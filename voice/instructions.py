"""The Live model's system instruction, built from what the graph loaded and retrieved.

Sent at connect and replaced with ``send_context_update`` after each heard turn, so the
few-shot context (what helped this person in similar moments) and the policy's suggestion
reach the model without being put in the person's mouth (see ``voice.live``).
"""

from __future__ import annotations

from typing import Any

from graphs.style import StyleProfile
from graphs.turn import NO_DECISION, DueItem
from graphs.understanding.acts import CrisisKind
from graphs.understanding.safety import safety_reply

VOICE_RULES = (
    "You are Sam, a warm voice coach for people with ADHD and autism. You are speaking out loud: "
    "use one or two short sentences, offer one tiny step at a time, and never blame or judge. "
    "Use your tools to break tasks into steps, schedule check-ins and reminders, help regulate "
    "when things get overwhelming, and celebrate small wins. Say a tool's result in your own words."
)
LITERAL_RULES = ("Use plain, literal words with no idioms or sarcasm. Before any activity, say what it will "
                 "be and how long it takes.")


def live_instruction(values: dict[str, Any]) -> str:
    """The whole system instruction for the graph state ``values`` (context, few-shot, decision, due)."""
    parts = [VOICE_RULES]
    if StyleProfile(**(values.get("style") or {})).literal:
        parts.append(LITERAL_RULES)
    if context := (values.get("context") or "").strip():
        parts.append(context)
    if few_shot := (values.get("few_shot_prompt") or "").strip():
        parts.append(f"What helped this person in similar moments (most useful first):\n{few_shot}")
    decision = values.get("decision") or NO_DECISION
    if decision.safety:
        parts.append(safety_instruction(values))
        return "\n\n".join(parts)
    if decision.suggested and decision.activity:
        why = f" ({decision.reason})" if decision.reason else ""
        parts.append(f"Suggested for what they just said: the tool {decision.suggested}, {decision.activity}{why}. "
                     "Use it unless they asked for something else.")
    return "\n\n".join(parts)


def due_prompt(due: list[DueItem]) -> str:
    """What to say when check-ins or reminders fall due (sent as a note, so the model speaks now),
    in the items' own wording (the same the text chat and the offline voice say)."""
    return ("[Note from the app, not the person] Due now: " + " ".join(d.message for d in due)
            + " Say it to them now, briefly and kindly.")


def safety_instruction(values: dict[str, Any]) -> str:
    """What the Live model must do after words the safety gate caught: the safety reply, no tool."""
    kind = (values.get("understanding") or {}).get("crisis_kind")
    reply = safety_reply(CrisisKind(kind) if kind else None, values.get("country"))
    return ("SAFETY FIRST. What the person just said may mean they are in danger. Do not call any tool and do "
            "not coach. Answer calmly and warmly, say their safety matters most, and give them these resources, "
            f"in these words or very close to them: {reply} Stay with them and keep listening.")


def safety_prompt(values: dict[str, Any]) -> str:
    """The note that makes the Live model give the safety reply now (it may have started answering)."""
    return "[Note from the app, not the person] " + safety_instruction(values)
