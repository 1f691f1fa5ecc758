"""The offline voice session: turn-based speech-to-text → the companion graph → text-to-speech,
with no key and no network (faster-whisper and Piper models ship in PyPI packages).

It speaks the same events as the Live session, so the web page and the terminal work the
same either way; what differs is that a turn starts when the person stops talking (the
endpointer finds the pause, or they press "Done talking") and the reply comes whole. Typed
turns are answered on screen only, until the person uses the microphone.
Each turn is an ordinary text turn of the graph (``CompanionSession.send``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from graphs.session import InvalidInput, TurnResult
from voice.base import EventSink
from voice.endpoint import SpeechEndpointer
from voice.events import (
    INPUT_RATE,
    OUTPUT_RATE,
    AudioOut,
    Ended,
    ErrorEvent,
    MemoryUsed,
    Ready,
    Status,
    ToolRan,
    Transcript,
)
from voice.link import CompanionLink
from voice.speech import SpeechError, SpeechToText, TextToSpeech

log = logging.getLogger(__name__)
CHUNK_BYTES = OUTPUT_RATE * 2 // 5  # 200 ms of reply audio per frame


class OfflineVoiceSession:
    """One person's offline voice conversation (see the module docstring)."""

    def __init__(self, link: CompanionLink, sink: EventSink, *, stt: SpeechToText, tts: TextToSpeech,
                 endpointer: SpeechEndpointer | None = None, checkin_poll_s: float = 5.0) -> None:
        self.link = link
        self.sink = sink
        self.stt = stt
        self.tts = tts
        self.endpointer = endpointer or SpeechEndpointer(sample_rate=INPUT_RATE)
        self.checkin_poll_s = checkin_poll_s
        self.metrics: dict[str, list[float]] = {"stt_ms": [], "graph_ms": [], "tts_ms": [], "first_audio_ms": []}
        self._turns: asyncio.Queue[tuple[str, Any] | None] = asyncio.Queue()  # None: stop
        self._turn = 0
        self._stopped = False
        self._answering = False
        self._voice_in_use = False  # the microphone sent audio in this session

    async def run(self) -> None:
        """Open the person's session and answer turns until :meth:`end` or :meth:`close`."""
        ended = await self.link.resume()
        if ended is not None and ended.reflection:  # the insight can quote the person: DEBUG only
            log.info("offline voice: an idle session was closed first (its reflection was saved)")
            log.debug("offline voice: the idle session's reflection: %s", ended.reflection)
        await self.sink(Ready(user=self.link.user_id, mode="offline"))
        await self.sink(await self.link.plan_info())
        await self.sink(Status(state="listening", text="Listening (I answer when you pause)"))
        ticker = asyncio.create_task(self._due_loop())
        try:
            while (item := await self._turns.get()) is not None:
                self._answering = True
                try:
                    await self._answer(*item)
                finally:
                    self._answering = False
                    self._turns.task_done()
        finally:
            ticker.cancel()

    async def push_audio(self, pcm: bytes) -> None:
        """Microphone audio; each complete utterance becomes a turn."""
        self._voice_in_use = True
        # The endpointer's FFTs run in a thread so a flood of frames cannot stall the event loop.
        for utterance in await asyncio.to_thread(self.endpointer.push, pcm):
            await self._turns.put(("speech", (utterance, time.perf_counter())))

    async def end_of_speech(self) -> None:
        """The person pressed "Done talking": what they said so far is a turn now."""
        if (utterance := self.endpointer.flush()) is not None:
            await self._turns.put(("speech", (utterance, time.perf_counter())))

    async def send_text(self, text: str) -> None:
        """A typed turn."""
        await self._turns.put(("text", (text, time.perf_counter())))

    @property
    def degraded(self) -> bool:
        """True while memory is unavailable (the last turn ran without it)."""
        return self.link.degraded

    @property
    def pending_turns(self) -> int:
        """Turns waiting or being answered (the websocket refuses more past its limit)."""
        return self._turns.qsize() + int(self._answering)

    def drop_queued_turns(self) -> int:
        """Forget the typed turns not started yet (the person left); returns how many."""
        kept: list[tuple[str, Any] | None] = []
        dropped = 0
        while not self._turns.empty():
            item = self._turns.get_nowait()
            self._turns.task_done()
            if item is not None and item[0] == "text":
                dropped += 1
            else:
                kept.append(item)
        for item in kept:
            self._turns.put_nowait(item)
        return dropped

    async def feedback(self, helped: bool) -> None:
        """A thumbs up or down on the last suggestion: settled through the graph, then the plan."""
        await self.sink(await self.link.feedback(helped))
        await self.sink(await self.link.plan_info())

    async def close(self) -> None:
        """Leave without ending (the person disconnected): turns already heard are answered and
        saved; the conversation resumes next time."""
        if not self._stopped:
            self._stopped = True
            await self._drain()
            await self._turns.put(None)

    async def end(self) -> str | None:
        """End the conversation: the graph reflects."""
        await self.close()
        reflection = await self.link.end()
        await self.sink(Ended(reflection=reflection))
        return reflection

    async def _drain(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._turns.join(), timeout=30)

    async def _answer(self, kind: str, payload: tuple[Any, float]) -> None:
        data, heard_at = payload
        turn, self._turn = self._turn, self._turn + 1
        if kind == "speech":
            await self.sink(Status(state="thinking", text="Writing down what you said…"))
            start = time.perf_counter()
            try:
                text = await self.stt.transcribe(data, INPUT_RATE)
            except SpeechError as exc:
                await self.sink(ErrorEvent(code="speech_unavailable", message=str(exc)))
                return
            self.metrics["stt_ms"].append((time.perf_counter() - start) * 1000)
            if not text.strip():
                await self.sink(Status(state="listening", text="I didn't catch that; say it again?"))
                return
        else:
            text = data
        await self.sink(Transcript(role="user", turn=turn, text=text.strip(), final=True))
        await self.sink(Status(state="thinking", text="Thinking…"))
        start = time.perf_counter()
        try:
            result = await self.link.send_text(text)
        except InvalidInput as exc:
            await self.sink(ErrorEvent(code="bad_message", message=str(exc)))
            return
        self.metrics["graph_ms"].append((time.perf_counter() - start) * 1000)
        await self._show(turn, result)
        if kind == "speech" or self._voice_in_use:
            # Replies come the way the person talks: spoken once they use the microphone, on
            # screen only while they type (someone typing may be somewhere they can't listen;
            # and speech costs ~0.5 s of CPU a reply that typed turns need not pay).
            await self._say(result.reply, heard_at)
        await self.sink(await self.link.plan_info())
        await self.sink(Status(state="listening", text="Listening" if self._voice_in_use
                               else "Your turn: type, or press Start talking"))

    async def _show(self, turn: int, result: TurnResult) -> None:
        await self.sink(MemoryUsed.of(turn, result.decision, result.few_shot))
        if result.decision is not None and result.decision.tool:
            await self.sink(ToolRan(name=result.decision.tool, result=result.decision.reason))
        if result.notice:
            await self.sink(Status(state="degraded" if result.degraded else "thinking", text=result.notice))
        await self.sink(Transcript(role="assistant", turn=turn, text=result.reply, final=True))

    async def _say(self, text: str, heard_at: float | None) -> None:
        start = time.perf_counter()
        try:
            pcm = await self.tts.synthesize(text)
        except SpeechError as exc:
            await self.sink(ErrorEvent(code="speech_unavailable", message=str(exc)))
            return
        self.metrics["tts_ms"].append((time.perf_counter() - start) * 1000)
        if heard_at is not None:
            self.metrics["first_audio_ms"].append((time.perf_counter() - heard_at) * 1000)
        await self.sink(Status(state="speaking", text="Speaking"))
        for offset in range(0, len(pcm), CHUNK_BYTES):
            await self.sink(AudioOut(pcm=pcm[offset:offset + CHUNK_BYTES]))

    async def _due_loop(self) -> None:
        """Say check-ins and reminders out loud when they fall due. A failed poll is logged and
        the next one tried: one error never stops check-ins."""
        while True:
            await asyncio.sleep(self.checkin_poll_s)
            try:
                await self._say_due()
            except Exception as exc:
                log.warning("offline voice: a check-in poll failed (%s); trying again at the next",
                            type(exc).__name__)

    async def _say_due(self) -> None:
        if not (due := await self.link.due_now()):
            return
        for item in due:
            line = item.message
            await self.sink(Transcript(role="assistant", turn=self._turn, text=line, final=True))
            self._turn += 1
            await self._say(line, None)
        await self.sink(await self.link.plan_info())
