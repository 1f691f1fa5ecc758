"""The Gemini Live voice session: the person's audio to the Live model and its voice back,
with every memory, tool and outcome going through the companion graph (``voice.link``).

* **Context at connect.** The system instruction is the graph's ``load_context`` (profile,
  current state, reflections, feedback summary).
* **Few-shot context per turn, without a fake user turn.** When the person's words are
  transcribed, the graph retrieves what helped them in similar moments and the policy
  suggests a tool; the instruction is replaced with ``send_context_update``. We checked the
  SDK (google-genai 2.34): ``send_client_content(turn_complete=False)`` adds a *user* turn
  to the conversation and holds the model's replies until a ``turn_complete=True`` follows
  (its docstring), which puts words in the person's mouth and stalls a realtime audio
  conversation (the SDK also warns against mixing it with realtime input).
  ``send_context_update`` changes the system instruction in order with the other input,
  adds no turn and triggers no reply. Its cost is a prefix-cache miss, so it is sent only
  when the instruction changed.
* **Tools.** A Live ``toolCall`` runs the same tools through the graph, which records the
  intervention; outcomes settle from the next transcribed words (the graph's
  ``record_outcome``); ``end`` runs ``reflect``.
* **Resilience.** ``interrupted`` flushes playback; ``goAway`` or a dropped connection
  reconnects with the last session-resumption handle (the server keeps the conversation);
  context-window compression keeps long sessions going; cancelled tool calls get no
  response; check-ins are spoken when they fall due.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Any

from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from langchain_core.tools import BaseTool
from pydantic import BaseModel, Field
from websockets.exceptions import WebSocketException

from graphs.session import MEMORY_OFFLINE_NOTICE
from graphs.turn import DueItem
from voice.base import EventSink, VoiceUnavailable
from voice.events import (
    INPUT_RATE,
    AudioOut,
    Ended,
    ErrorEvent,
    Interrupted,
    MemoryUsed,
    Ready,
    Status,
    ToolRan,
    Transcript,
)
from voice.instructions import due_prompt
from voice.link import CompanionLink, ToolCall

log = logging.getLogger(__name__)
#: The Live connection to Gemini broke (not Redis: memory outages are ``memories.connection.OUTAGE``).
LIVE_LOST = (genai_errors.APIError, WebSocketException, OSError, asyncio.TimeoutError)
AUDIO_MIME = f"audio/pcm;rate={INPUT_RATE}"


class LiveOptions(BaseModel):
    """Tunables of a Live voice session."""

    model: str = Field("gemini-live-2.5-flash-preview", description="The Gemini Live model.")
    voice: str | None = Field(None, description="A prebuilt voice name (None: the model's default).")
    reconnect_attempts: int = Field(4, ge=0, le=20, description="Reconnects in a row before giving up.")
    reconnect_backoff_s: float = Field(0.5, ge=0, le=30, description="First wait before a reconnect (doubles).")
    checkin_poll_s: float = Field(5.0, gt=0, le=300, description="How often to look for due check-ins.")
    compression_trigger_tokens: int = Field(
        24_000, ge=1_000, description="Context size at which the server compresses old turns (sliding window).")
    buffer_audio_s: float = Field(3.0, ge=0, le=30, description="Microphone audio kept while reconnecting.")


def function_declarations(tools: list[BaseTool]) -> list[types.FunctionDeclaration]:
    """The graph's tools as Live function declarations (their pydantic argument schemas)."""
    declarations = []
    for tool in tools:
        schema = tool.tool_call_schema.model_json_schema() if tool.args_schema else {"type": "object"}
        declarations.append(types.FunctionDeclaration(
            name=tool.name, description=tool.description, parameters_json_schema=schema))
    return declarations


class LiveVoiceSession:
    """One person's Gemini Live conversation (see the module docstring)."""

    def __init__(self, link: CompanionLink, client: genai.Client, sink: EventSink, *,
                 tools: list[BaseTool], options: LiveOptions | None = None) -> None:
        self.link = link
        self.client = client
        self.sink = sink
        self.options = options or LiveOptions()
        self.declarations = function_declarations(tools)
        self.metrics: dict[str, list[float]] = {"memory_path_ms": [], "first_audio_ms": []}
        self.reconnects = 0
        self._live: Any = None  # the connected AsyncSession, None while (re)connecting
        self._resume_handle: str | None = None
        self._closing = False
        self._sent_instruction: str | None = None
        self._pending_audio: deque[bytes] = deque()
        self._stream_end_pending = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._cancelled: set[str] = set()
        self._turn = 0
        self._heard = ""
        self._heard_final = False
        self._said = ""
        self._last_said = ""
        self._turn_ended_at: float | None = None
        self._first_audio_seen = False

    # ------------------------------------------------------------------ front-end API
    @property
    def degraded(self) -> bool:
        """True while memory is unavailable (the last turn ran without it)."""
        return self.link.degraded

    async def run(self) -> None:
        """Connect and serve until :meth:`end`; reconnect on goAway or a dropped connection."""
        _, due = await self.link.open()
        failures, ready = 0, False
        while not self._closing:
            try:
                async with self.client.aio.live.connect(model=self.options.model, config=self._config()) as live:
                    self._live, failures = live, 0
                    self._sent_instruction = self.link.instruction  # what this connection's setup carried
                    if not ready:  # "ready" once the model can hear: audio sent before is kept meanwhile
                        ready = True
                        await self.sink(Ready(user=self.link.user_id, mode="live"))
                        await self.sink(await self.link.plan_info())
                    await self._flush_pending_audio()
                    if due:
                        await self._speak_due(due)
                        due = []
                    await self.sink(Status(state="listening", text="Listening"))
                    ticker = asyncio.create_task(self._due_loop())  # not in _tasks: end() waits for those
                    try:
                        await self._receive(live)
                    finally:
                        ticker.cancel()
            except LIVE_LOST as exc:
                if self._closing:
                    break
                failures += 1
                if failures > self.options.reconnect_attempts:
                    message = "I lost my voice connection and couldn't get it back. Everything you did is saved."
                    await self.sink(ErrorEvent(code="voice_unavailable", message=message))
                    raise VoiceUnavailable(f"Gemini Live unreachable after {failures} attempts: {exc}") from exc
                log.warning("live: connection lost (%s); reconnecting (attempt %d)", exc, failures)
                await self.sink(Status(state="reconnecting", text="Reconnecting…"))
                await asyncio.sleep(self.options.reconnect_backoff_s * 2 ** (failures - 1))
            finally:
                self._live = None
            if not self._closing:
                self.reconnects += 1

    async def push_audio(self, pcm: bytes) -> None:
        """Send microphone audio (PCM16LE, 16 kHz); kept briefly while reconnecting."""
        if self._live is None:
            self._buffer(pcm)
            return
        try:
            await self._live.send_realtime_input(audio=types.Blob(data=pcm, mime_type=AUDIO_MIME))
        except LIVE_LOST:
            self._buffer(pcm)  # the receive loop sees the drop and reconnects

    async def end_of_speech(self) -> None:
        """The person is done talking (e.g. a button): tell the server the audio stream paused."""
        self._turn_ended_at = time.perf_counter()
        self._first_audio_seen = False
        if self._live is None:
            self._stream_end_pending = True  # sent after the buffered audio once connected
            return
        with contextlib.suppress(*LIVE_LOST):
            await self._live.send_realtime_input(audio_stream_end=True)

    async def send_text(self, text: str) -> None:
        """A typed turn: heard at once (no transcription comes for text), then sent to the model."""
        await self.sink(Transcript(role="user", turn=self._turn, text=text, final=True))
        self._heard, self._heard_final = text, True
        self._turn_ended_at, self._first_audio_seen = time.perf_counter(), False
        self._spawn(self._on_heard(text, self._last_said, self._turn_ended_at, self._turn))
        if self._live is not None:
            with contextlib.suppress(*LIVE_LOST):
                await self._live.send_realtime_input(text=text)

    @property
    def pending_turns(self) -> int:
        """Graph work in flight (turns, tools): the websocket refuses more typed turns past its limit."""
        return len(self._tasks)

    async def feedback(self, helped: bool) -> None:
        """A thumbs up or down on the last suggestion: settled through the graph, then the plan."""
        await self.sink(await self.link.feedback(helped))
        await self.sink(await self.link.plan_info())

    async def close(self) -> None:
        """Leave without ending (the person disconnected): graph work already started finishes
        and is saved, the Live connection closes; the conversation resumes next time."""
        self._closing = True
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._live is not None:
            with contextlib.suppress(*LIVE_LOST):
                await self._live.close()

    async def end(self) -> str | None:
        """End the conversation: the graph reflects, the connection closes."""
        await self.close()
        reflection = await self.link.end()
        await self.sink(Ended(reflection=reflection))
        return reflection

    # ------------------------------------------------------------------ connection
    def _config(self) -> types.LiveConnectConfig:
        speech = None
        if self.options.voice:
            speech = types.SpeechConfig(voice_config=types.VoiceConfig(
                prebuilt_voice_config=types.PrebuiltVoiceConfig(voice_name=self.options.voice)))
        return types.LiveConnectConfig(
            response_modalities=[types.Modality.AUDIO],
            speech_config=speech,
            system_instruction=self.link.instruction,
            tools=[types.Tool(function_declarations=self.declarations)],
            input_audio_transcription=types.AudioTranscriptionConfig(),
            output_audio_transcription=types.AudioTranscriptionConfig(),
            session_resumption=types.SessionResumptionConfig(handle=self._resume_handle),
            context_window_compression=types.ContextWindowCompressionConfig(
                trigger_tokens=self.options.compression_trigger_tokens, sliding_window=types.SlidingWindow()),
        )

    async def _receive(self, live: Any) -> None:
        """Handle server messages until goAway (returns) or the connection drops (raises)."""
        while not self._closing:
            async for message in live.receive():  # ends at each turnComplete: loop it
                if message.go_away is not None:
                    log.info("live: goAway (time left %s); resuming on a new connection", message.go_away.time_left)
                    return
                await self._handle(message)

    async def _handle(self, message: types.LiveServerMessage) -> None:
        update = message.session_resumption_update
        if update is not None and update.resumable and update.new_handle:
            self._resume_handle = update.new_handle
        if message.tool_call is not None:
            await self._finish_heard()
            calls = [ToolCall(id=c.id or f"call_{c.name}", name=c.name or "", args=dict(c.args or {}))
                     for c in message.tool_call.function_calls or []]
            self._spawn(self._run_tools(calls))
        if message.tool_call_cancellation is not None:
            # The graph run is not interrupted half-way (its memory writes stay consistent);
            # the cancelled calls just get no response.
            self._cancelled.update(message.tool_call_cancellation.ids or [])
        content = message.server_content
        if content is None:
            return
        if content.input_transcription is not None and content.input_transcription.text:
            self._heard += content.input_transcription.text
            await self.sink(Transcript(role="user", turn=self._turn, text=self._heard.strip(),
                                       final=self._heard_final))
        if content.model_turn is not None:
            await self._finish_heard()
            for part in content.model_turn.parts or []:
                if part.inline_data is not None and part.inline_data.data:
                    await self._audio_out(part.inline_data.data)
        if content.output_transcription is not None and content.output_transcription.text:
            await self._finish_heard()
            self._said += content.output_transcription.text
            await self.sink(Transcript(role="assistant", turn=self._turn, text=self._said.strip()))
        if content.interrupted:
            self._said = f"{self._said.strip()}…" if self._said.strip() else ""
            await self.sink(Interrupted())
            await self.sink(Status(state="listening", text="Listening"))
        if content.turn_complete:
            await self._finish_heard()
            if self._said.strip():
                await self.sink(Transcript(role="assistant", turn=self._turn, text=self._said.strip(), final=True))
            self._last_said, self._said, self._heard, self._heard_final = self._said.strip(), "", "", False
            self._turn += 1
            await self.sink(Status(state="listening", text="Listening"))
            self._spawn(self._send_plan())

    async def _audio_out(self, pcm: bytes) -> None:
        if not self._first_audio_seen and self._turn_ended_at is not None:
            self._first_audio_seen = True
            self.metrics["first_audio_ms"].append((time.perf_counter() - self._turn_ended_at) * 1000)
            await self.sink(Status(state="speaking", text="Speaking"))
        await self.sink(AudioOut(pcm=pcm))

    # ------------------------------------------------------------------ graph work
    async def _finish_heard(self) -> None:
        """The person's words are complete once the model answers: run the graph on them."""
        if self._heard_final or not self._heard.strip():
            return
        self._heard_final = True
        ended = time.perf_counter()
        if self._turn_ended_at is None or self._first_audio_seen:
            self._turn_ended_at, self._first_audio_seen = ended, False
        await self.sink(Transcript(role="user", turn=self._turn, text=self._heard.strip(), final=True))
        self._spawn(self._on_heard(self._heard.strip(), self._last_said, ended, self._turn))

    async def _on_heard(self, text: str, said: str, ended: float, turn: int) -> None:
        async def send_context(instruction: str) -> None:
            if instruction == self._sent_instruction or self._live is None:
                return
            with contextlib.suppress(*LIVE_LOST):
                await self._live.send_context_update(system_instruction=instruction)
                self._sent_instruction = instruction
                self.metrics["memory_path_ms"].append((time.perf_counter() - ended) * 1000)

        heard = await self.link.heard(text, said=said, on_context=send_context)
        if heard.safety and self._live is not None:
            # Safety first: the model may already be answering; this note makes it say the safety reply now.
            with contextlib.suppress(*LIVE_LOST):
                await self._live.send_realtime_input(text=heard.safety)
        await self.sink(MemoryUsed.of(turn, heard.decision, heard.memories))
        if heard.degraded:
            await self.sink(Status(state="degraded", text=MEMORY_OFFLINE_NOTICE))
        if heard.due:
            await self._speak_due(heard.due)

    async def _run_tools(self, calls: list[ToolCall]) -> None:
        results = await self.link.tool_calls(calls)
        responses = [types.FunctionResponse(id=r.id, name=r.name,
                                            response={"output": r.content} if r.ok else {"error": r.content})
                     for r in results if r.id not in self._cancelled]
        if responses and self._live is not None:
            with contextlib.suppress(*LIVE_LOST):
                await self._live.send_tool_response(function_responses=responses)
        for result in results:
            if result.id in self._cancelled:
                log.info("live: tool call %s (%s) was cancelled; no response sent", result.id, result.name)
                continue
            await self.sink(ToolRan(name=result.name, result=result.content))
        await self._send_plan()

    async def _send_plan(self) -> None:
        await self.sink(await self.link.plan_info())

    async def _due_loop(self) -> None:
        """Speak check-ins and reminders when they fall due, without waiting for the person.
        A failed poll is logged and the next one tried: one error never stops check-ins."""
        while True:
            await asyncio.sleep(self.options.checkin_poll_s)
            try:
                if due := await self.link.due_now():
                    await self._speak_due(due)
            except Exception as exc:
                log.warning("live: a check-in poll failed (%s); trying again at the next", type(exc).__name__)

    async def _speak_due(self, due: list[DueItem]) -> None:
        if self._live is None:
            return
        # A note the model answers out loud now. It is realtime text, marked as the app's note,
        # because speaking first is the point here (unlike the few-shot context above).
        with contextlib.suppress(*LIVE_LOST):
            await self._live.send_realtime_input(text=due_prompt(due))
        await self._send_plan()

    # ------------------------------------------------------------------ helpers
    def _buffer(self, pcm: bytes) -> None:
        self._pending_audio.append(pcm)
        limit = int(self.options.buffer_audio_s * INPUT_RATE * 2)
        while sum(len(c) for c in self._pending_audio) > limit:
            self._pending_audio.popleft()

    async def _flush_pending_audio(self) -> None:
        while self._pending_audio and self._live is not None:
            await self._live.send_realtime_input(audio=types.Blob(data=self._pending_audio.popleft(),
                                                                  mime_type=AUDIO_MIME))
        if self._stream_end_pending and self._live is not None:
            self._stream_end_pending = False
            await self._live.send_realtime_input(audio_stream_end=True)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("live: background step failed: %r", task.exception(), exc_info=task.exception())
