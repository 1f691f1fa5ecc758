"""What a voice session tells its front end (web page, terminal): typed events.

The JSON events are exactly the server → page frames of ``docs/voice-protocol.md``
(``event.model_dump()`` is the frame); :class:`AudioOut` goes as a binary frame.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from graphs.turn import Decision, FewShot

OUTPUT_RATE = 24_000  # Gemini Live (and the offline voice) speak 24 kHz PCM16 mono
INPUT_RATE = 16_000  # what the Live API and the offline speech-to-text hear


class AudioOut(BaseModel):
    """A chunk of the companion's voice: PCM16LE mono at 24 kHz."""

    pcm: bytes = Field(description="Raw PCM16LE samples.", repr=False)


class Ready(BaseModel):
    """The session is open; the front end can stream audio."""

    type: Literal["ready"] = "ready"
    user: str = Field(description="Who the session is for (from the token).")
    mode: Literal["live", "offline"] = Field(description="Gemini Live, or offline speech-to-text/text-to-speech.")
    input_rate: int = Field(INPUT_RATE, description="Sample rate the session expects.")
    output_rate: int = Field(OUTPUT_RATE, description="Sample rate of the audio it sends.")


class Transcript(BaseModel):
    """The words so far of one turn (whole text, not a delta)."""

    type: Literal["transcript"] = "transcript"
    role: Literal["user", "assistant"] = Field(description="Who said it.")
    turn: int = Field(description="Turn number within this connection.")
    text: str = Field(description="The turn's words so far.")
    final: bool = Field(False, description="True once the turn is complete.")


class Interrupted(BaseModel):
    """The person spoke over the reply: stop playback and drop queued audio."""

    type: Literal["interrupted"] = "interrupted"


class MemoryUsed(BaseModel):
    """Which of the person's memories the reply to a turn draws on."""

    type: Literal["memory"] = "memory"
    turn: int = Field(description="The turn the memories were retrieved for.")
    memories: list[dict[str, Any]] = Field(default_factory=list, description="id, tool, outcome, said per memory.")
    suggested: str | None = Field(None, description="The tool the person's history suggests.")
    why: str | None = Field(None, description="Why that tool, in words for the person (whose evidence it stands on).")

    @classmethod
    def of(cls, turn: int, decision: Decision | None, few_shot: list[FewShot]) -> MemoryUsed:
        """The frame for a turn's decision and the examples it drew on (id, tool, outcome, said)."""
        return cls(turn=turn, suggested=decision.suggested if decision else None,
                   why=decision.suggested_why if decision else None,
                   memories=[m.model_dump(mode="json", include={"id", "tool", "outcome", "said"}) for m in few_shot])


class PlanInfo(BaseModel):
    """The current step and the next check-in."""

    type: Literal["plan"] = "plan"
    step: str | None = Field(None, description="The step to do now, if a plan is open.")
    task: str | None = Field(None, description="What the plan is for.")
    steps: list[str] = Field(default_factory=list, description="Every step of the plan, in order.")
    current: int | None = Field(None, description="1-based number of the step to do now (None once done).")
    done: bool = Field(False, description="True when every step is done.")
    next_checkin: dict[str, Any] | None = Field(None, description="{what, due_at} of the next check-in or reminder.")


class FeedbackNoted(BaseModel):
    """The person's thumbs up or down was taken: what it settled."""

    type: Literal["feedback"] = "feedback"
    helped: bool = Field(description="What they said: it helped (thumbs up) or not.")
    settled: bool = Field(description="True when it settled the last suggestion (there was one to settle).")


class ToolRan(BaseModel):
    """A tool ran (for the activity log)."""

    type: Literal["tool"] = "tool"
    name: str = Field(description="The tool's name.")
    result: str = Field(description="What it returned, in words.")


class Status(BaseModel):
    """What the companion is doing, in words for the page."""

    type: Literal["status"] = "status"
    state: Literal["listening", "thinking", "speaking", "reconnecting", "degraded"] = Field(description="State.")
    text: str = Field("", description="The same in plain words.")


class ErrorEvent(BaseModel):
    """Something was wrong; ``message`` says what in plain words."""

    type: Literal["error"] = "error"
    code: str = Field(description="A stable code (see docs/voice-protocol.md).")
    message: str = Field(description="What went wrong and what to do.")


class Ended(BaseModel):
    """The session ended."""

    type: Literal["ended"] = "ended"
    reflection: str | None = Field(None, description="What the session taught the companion, if anything.")


VoiceEvent = (AudioOut | Ready | Transcript | Interrupted | MemoryUsed | PlanInfo | ToolRan | Status | ErrorEvent
              | Ended | FeedbackNoted)
