"""A scripted fake of the Gemini Live API (``BidiGenerateContent``) speaking the real wire JSON over
TLS on 127.0.0.1, so the unmodified google-genai client (``client.aio.live.connect``) runs offline.

Reaching it (verified with google-genai 2.34 and websockets 17.4):

- ``genai.Client(api_key="fake-key", http_options=server.http_options())``, i.e.
  ``HttpOptions(base_url="https://127.0.0.1:PORT", async_client_args={"ssl": ctx})``: the SDK hands
  ``async_client_args["ssl"]`` to ``websockets.connect`` (``BaseApiClient._ensure_websocket_ssl_ctx``),
  so no environment variable is needed.
- Or, without ``http_options``: ``GOOGLE_GEMINI_BASE_URL=https://127.0.0.1:PORT`` and
  ``SSL_CERT_FILE=<cert_path>``, both read when the ``Client`` is constructed (the SDK's default context
  is ``ssl.create_default_context(cafile=$SSL_CERT_FILE or certifi)``).

Wire facts relied on (SDK source plus a capture of what it sends): the client dials
``wss://HOST/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent`` with the key in
``x-goog-api-key``; top-level client keys are ``setup``, ``client_content``, ``realtime_input``,
``tool_response`` (snake) and ``contextUpdate`` (camel); the setup's own keys are camelCase but values
nested in them stay snake_case (``realtimeInputConfig.automatic_activity_detection``); audio arrives as
``{"audio": {"data": <urlsafe base64>, "mime_type": ...}}``. Like the real proto-JSON parser, the fake
accepts either spelling of a field name. Server messages are camelCase JSON in binary frames, as the
real server sends them.

Simplifications: transcriptions are sent only if the setup asked for them (as the real one does);
``audioStreamEnd`` / ``activityEnd`` end an utterance only if audio came since the last turn (trailing
silence after an energy endpoint does not count); a ``goAway`` is followed by a 1001 close after
``go_away_close_s``; protocol violations close with 1007 and a reason (also kept in ``rejections``).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
import math
import re
import secrets
import tempfile
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

import numpy as np
from google.genai import types
from pydantic import BaseModel, Field
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from app.eval.fakes.tls import write_self_signed_cert

logger = logging.getLogger(__name__)

WS_PATH = re.compile(r"^/+ws/google\.ai\.generativelanguage\.v1(alpha|beta)\.GenerativeService\.BidiGenerateContent$")
INPUT_MIME = "audio/pcm;rate=16000"
OUTPUT_MIME = "audio/pcm;rate=24000"
OUTPUT_RATE = 24_000
CHUNK_MS = 100
# Top-level fields of BidiGenerateContentSetup the SDK can produce (camelCase; snake_case is accepted too).
SETUP_KEYS = {
    "model", "generationConfig", "systemInstruction", "tools", "realtimeInputConfig", "sessionResumption",
    "contextWindowCompression", "inputAudioTranscription", "outputAudioTranscription", "proactivity",
    "historyConfig", "avatarConfig", "safetySettings", "labels",
}  # fmt: skip
REALTIME_KEYS = {"audio", "audioStreamEnd", "mediaChunks", "video", "text", "activityStart", "activityEnd"}
MESSAGE_KEYS = {"clientContent", "realtimeInput", "toolResponse", "contextUpdate"}


class LiveProtocolViolation(Exception):
    """A client message the real server would refuse; the fake closes with 1007 and this reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LiveTurn(BaseModel):
    """One scripted exchange: what the fake hears, the tools it calls, and what it says back."""

    transcript: str = Field(default="", description="What the fake 'hears': sent as inputTranscription chunks.")
    tool_calls: list[dict[str, Any]] = Field(
        default_factory=list,
        description='Calls like {"name": ..., "args": {...}}, sent as one toolCall; the reply waits for their ids.',
    )
    reply: str = Field(default="Okay.", description="Sent as outputTranscription chunks alongside the audio.")
    audio_ms: int = Field(default=600, ge=0, description="Length of the reply audio (24 kHz PCM16), ~100 ms chunks.")
    interrupt_after_chunks: int | None = Field(
        default=None, ge=0, description="Send interrupted after this many audio chunks and end the turn there."
    )
    go_away_after: bool = Field(default=False, description="After this turn send goAway, then close the socket.")


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _fields(obj: Any, allowed: set[str], where: str) -> dict[str, Any]:
    """``obj``'s fields keyed camelCase; unknown names are a violation, as in proto JSON."""
    if not isinstance(obj, dict):
        raise LiveProtocolViolation(f"Invalid JSON payload at '{where}': expected an object.")
    named = {_camel(key): value for key, value in obj.items()}
    unknown = sorted(set(named) - allowed)
    if unknown:
        raise LiveProtocolViolation(f"Invalid JSON payload: unknown name {unknown[0]!r} at '{where}'.")
    return named


def _split_text(text: str, parts: int) -> list[str]:
    """``text`` in at most ``parts`` chunks (whitespace kept) whose concatenation is the text."""
    words = re.findall(r"\s*\S+\s*$|\s*\S+", text)
    parts = max(1, min(parts, len(words)))
    bounds = [round(i * len(words) / parts) for i in range(parts + 1)]
    return ["".join(words[a:b]) for a, b in itertools.pairwise(bounds) if b > a]


def _tone(ms: int) -> bytes:
    """A quiet 220 Hz tone, 24 kHz PCM16 mono: audible in a recording, obviously not speech."""
    t = np.arange(OUTPUT_RATE * ms // 1000) / OUTPUT_RATE
    return (1500 * np.sin(2 * np.pi * 220 * t)).astype("<i2").tobytes()


class EnergyEndpointer:
    """Finds the end of an utterance in 16 kHz PCM16: >= ``speech_ms`` of frames louder than
    ``threshold`` RMS, then >= ``silence_ms`` below it (a browser streams forever, never audioStreamEnd)."""

    FRAME = 320  # bytes: 10 ms at 16 kHz PCM16

    def __init__(self, threshold: float, speech_ms: int = 200, silence_ms: int = 500) -> None:
        self.threshold, self.speech_ms, self.silence_ms = threshold, speech_ms, silence_ms
        self.voiced_ms = self.quiet_ms = 0
        self._carry = b""

    def feed(self, pcm: bytes) -> tuple[bool, bool]:
        """(an utterance ended in this audio, it held any voiced frame)."""
        data = self._carry + pcm
        usable = len(data) - len(data) % self.FRAME
        self._carry = data[usable:]
        frames = np.frombuffer(data[:usable], "<i2").astype(np.float32).reshape(-1, self.FRAME // 2)
        ended, voiced_any = False, False
        for rms in np.sqrt((frames**2).mean(axis=1)) if len(frames) else []:
            if rms >= self.threshold:
                self.voiced_ms, self.quiet_ms, voiced_any = self.voiced_ms + 10, 0, True
                continue
            self.quiet_ms += 10
            if self.quiet_ms >= self.silence_ms:
                # Enough speech then enough silence ends it; a short blip of noise is just forgotten.
                ended = ended or self.voiced_ms >= self.speech_ms
                self.voiced_ms = 0
        return ended, voiced_any


@dataclass
class _Session:
    """One logical Live session; resumption handles point at it across reconnects."""

    history: list[dict[str, str]] = field(default_factory=list)
    issued_ids: set[str] = field(default_factory=set)


@dataclass
class _Connection:
    ws: ServerConnection
    setup: dict[str, Any]
    session: _Session
    endpointer: EnergyEndpointer
    triggers: asyncio.Queue[bool] = field(default_factory=asyncio.Queue)  # True: spoken turn, False: text turn
    pending_ids: set[str] = field(default_factory=set)
    tools_settled: asyncio.Event = field(default_factory=asyncio.Event)
    utterance_open: bool = False  # audio arrived since the last turn trigger
    after_endpoint: bool = False  # the last trigger was an energy endpoint: trailing silence opens nothing

    def wants(self, key: str) -> bool:
        return key in self.setup

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message).encode())


class FakeLiveServer:
    """The fake Live server: queue :class:`LiveTurn` s with :meth:`script`, point the real client at
    :meth:`http_options`, then assert on what it recorded. Use as ``async with FakeLiveServer() as live``."""

    def __init__(
        self, *, cert_dir: Path | None = None, energy_threshold: float = 500.0,
        chunk_delay_s: float = 0.0, go_away_close_s: float = 0.1,
    ) -> None:  # fmt: skip
        self._tmp = None if cert_dir else tempfile.TemporaryDirectory(prefix="fake-live-")
        self._cert = write_self_signed_cert(cert_dir or Path(self._tmp.name))  # type: ignore[union-attr]
        self.cert_path: Path = self._cert.cert_path
        self.client_ssl = self._cert.client_context()
        self.energy_threshold, self.chunk_delay_s = energy_threshold, chunk_delay_s
        self.go_away_close_s = go_away_close_s
        self._script: deque[LiveTurn] = deque()
        self._handles: dict[str, _Session] = {}
        self._live: _Connection | None = None
        self._server: Server | None = None
        self._changed = asyncio.Condition()
        self._call_ids = itertools.count(1)
        # Recorded for assertions (raw bodies as received, inner objects of each message).
        self.setups: list[dict[str, Any]] = []
        self.context_updates: list[dict[str, Any]] = []
        self.client_contents: list[dict[str, Any]] = []
        self.tool_responses: list[dict[str, Any]] = []
        self.audio_in_bytes = 0
        self.connections = 0
        self.resumed_with: list[str | None] = []
        self.api_keys: list[str] = []
        self.turns_done = 0
        self.rejections: list[str] = []

    # -- lifecycle -------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1 with TLS."""
        self._server = await serve(
            self._handle, "127.0.0.1", 0, ssl=self._cert.server_context(), process_request=self._check_request
        )

    async def stop(self) -> None:
        """Close every connection (1001) and the listener; remove the temporary certificate."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if self._tmp is not None:
            self._tmp.cleanup()

    async def __aenter__(self) -> FakeLiveServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """``https://127.0.0.1:PORT`` (the SDK turns it into ``wss://``)."""
        assert self._server is not None, "FakeLiveServer is not started"
        return f"https://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    def http_options(self) -> types.HttpOptions:
        """Options for ``genai.Client(api_key="fake-key", http_options=...)`` that reach this fake."""
        return types.HttpOptions(base_url=self.base_url, async_client_args={"ssl": self.client_ssl})

    def script(self, *turns: LiveTurn) -> None:
        """Queue turns; each user turn (across reconnects) takes the next one, or ``LiveTurn()`` if none."""
        self._script.extend(turns)

    def history_of(self, handle: str) -> list[dict[str, str]]:
        """The turns (``{"role", "text"}``) of the session a resumption handle points at."""
        return list(self._handles[handle].history)

    # -- driving and waiting ---------------------------------------------------------------------------

    async def cancel_tool_calls(self, ids: list[str]) -> None:
        """Send ``toolCallCancellation`` on the live connection; a turn waiting on those ids goes on."""
        conn = self._require_live()
        await conn.send({"toolCallCancellation": {"ids": ids}})
        conn.pending_ids.difference_update(ids)
        if not conn.pending_ids:
            conn.tools_settled.set()

    async def drop_connection(self, code: int | None = 1011, reason: str = "Internal error encountered.") -> None:
        """Close the live socket without a goAway: with ``code``, or with no close frame at all if None."""
        conn = self._require_live()
        if code is None:
            conn.ws.transport.abort()
        else:
            await conn.ws.close(code, reason)

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` holds; it is re-checked whenever the fake records something."""
        try:
            async with self._changed:
                await asyncio.wait_for(self._changed.wait_for(predicate), timeout)
        except TimeoutError:
            raise TimeoutError(
                f"fake Live server: condition not met in {timeout}s (turns_done={self.turns_done}, "
                f"connections={self.connections}, rejections={self.rejections})"
            ) from None

    async def wait_turns(self, n: int, timeout: float = 5.0) -> None:
        """Wait until ``n`` turns have been fully answered (turnComplete sent) since start."""
        await self.wait_until(lambda: self.turns_done >= n, timeout)

    def _require_live(self) -> _Connection:
        if self._live is None:
            raise RuntimeError("fake Live server: no live connection")
        return self._live

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- one connection --------------------------------------------------------------------------------

    def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if not WS_PATH.match(request.path):
            self.rejections.append(f"unknown path {request.path}")
            return connection.respond(HTTPStatus.NOT_FOUND, f"Not found: {request.path}\n")
        if not request.headers.get("x-goog-api-key"):
            self.rejections.append("missing x-goog-api-key")
            return connection.respond(HTTPStatus.UNAUTHORIZED, "Missing x-goog-api-key header.\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        self.api_keys.append(ws.request.headers["x-goog-api-key"])  # type: ignore[union-attr]
        await self._notify()
        worker: asyncio.Task[None] | None = None
        try:
            conn = await self._open_session(ws, json.loads(await ws.recv()))
            self._live = conn
            await conn.send({"setupComplete": {}})
            await self._notify()
            worker = asyncio.create_task(self._turn_worker(conn))
            async for raw in ws:
                await self._on_message(conn, json.loads(raw))
                await self._notify()
        except LiveProtocolViolation as exc:
            logger.info("fake Live server rejects a client message: %s", exc.reason)
            self.rejections.append(exc.reason)
            await ws.close(1007, exc.reason.encode()[:120].decode(errors="ignore"))
        except json.JSONDecodeError as exc:
            self.rejections.append(f"not JSON: {exc}")
            await ws.close(1007, "Invalid JSON payload received.")
        except ConnectionClosed:
            pass
        finally:
            if worker is not None:
                worker.cancel()
            if self._live is not None and self._live.ws is ws:
                self._live = None
            await self._notify()

    async def _open_session(self, ws: ServerConnection, first: Any) -> _Connection:
        if not isinstance(first, dict) or list(first) != ["setup"]:
            raise LiveProtocolViolation("The first message must be a setup message.")
        setup = _fields(first["setup"], SETUP_KEYS, "setup")
        self.setups.append(first["setup"])
        if not str(setup.get("model", "")).startswith("models/"):
            raise LiveProtocolViolation("setup.model must be 'models/<name>'.")
        handle = (setup.get("sessionResumption") or {}).get("handle")
        if handle is not None and handle not in self._handles:
            raise LiveProtocolViolation(f"Unknown session resumption handle: {handle[:40]}")
        self.resumed_with.append(handle)
        session = self._handles[handle] if handle is not None else _Session()
        return _Connection(ws, setup, session, EnergyEndpointer(self.energy_threshold))

    async def _on_message(self, conn: _Connection, message: Any) -> None:
        if not isinstance(message, dict) or len(message) != 1:
            raise LiveProtocolViolation("A client message must have exactly one field.")
        kind, body = next(iter(_fields(message, MESSAGE_KEYS | {"setup"}, "message").items()))
        if kind == "setup":
            raise LiveProtocolViolation("setup may only be sent once, as the first message.")
        if kind == "realtimeInput":
            await self._on_realtime(conn, _fields(body, REALTIME_KEYS, "realtime_input"))
        elif kind == "clientContent":
            self.client_contents.append(body)
            content = _fields(body, {"turns", "turnComplete"}, "client_content")
            for turn in content.get("turns") or []:
                text = "".join(part.get("text", "") for part in turn.get("parts", []))
                conn.session.history.append({"role": turn.get("role", "user"), "text": text})
            if content.get("turnComplete"):
                conn.triggers.put_nowait(False)
        elif kind == "toolResponse":
            self.tool_responses.append(body)
            for response in _fields(body, {"functionResponses"}, "tool_response").get("functionResponses") or []:
                if response.get("id") not in conn.session.issued_ids:
                    raise LiveProtocolViolation(f"tool_response for unknown function call id {response.get('id')!r}.")
                conn.pending_ids.discard(response["id"])
            if not conn.pending_ids:
                conn.tools_settled.set()
        else:  # contextUpdate: takes effect silently, the model does not answer it
            _fields(body, {"systemInstruction", "tools"}, "contextUpdate")
            self.context_updates.append(body)

    async def _on_realtime(self, conn: _Connection, rt: dict[str, Any]) -> None:
        blobs = ([rt["audio"]] if "audio" in rt else []) + list(rt.get("mediaChunks") or [])
        for blob in blobs:
            mime = blob.get("mimeType", blob.get("mime_type"))
            if mime is not None and not str(mime).startswith("audio/"):
                continue  # a video frame: accepted, not listened to
            if mime != INPUT_MIME:
                raise LiveProtocolViolation(f"Unsupported audio mime type {mime!r}; expected {INPUT_MIME!r}.")
            pcm = base64.b64decode(blob.get("data", ""), altchars=b"-_")  # the SDK sends urlsafe base64
            if len(pcm) % 2:
                raise LiveProtocolViolation("PCM16 audio must have an even number of bytes.")
            self.audio_in_bytes += len(pcm)
            ended, voiced = conn.endpointer.feed(pcm)
            if ended:
                conn.triggers.put_nowait(True)
                conn.utterance_open, conn.after_endpoint = False, True
            elif voiced or not conn.after_endpoint:
                conn.utterance_open, conn.after_endpoint = True, False
        if (rt.get("audioStreamEnd") or "activityEnd" in rt) and conn.utterance_open:
            conn.triggers.put_nowait(True)
            conn.utterance_open = False
        if rt.get("text"):
            conn.session.history.append({"role": "user", "text": rt["text"]})
            conn.triggers.put_nowait(False)

    # -- one turn --------------------------------------------------------------------------------------

    async def _turn_worker(self, conn: _Connection) -> None:
        try:
            while True:
                spoken = await conn.triggers.get()
                turn = self._script.popleft() if self._script else LiveTurn()
                await self._play(conn, turn, spoken)
        except ConnectionClosed:
            pass
        except Exception as exc:  # a bug in the fake must fail the test, not hang it
            logger.exception("fake Live server crashed in a turn")
            self.rejections.append(f"fake crashed: {exc!r}")
            await conn.ws.close(1011, "fake Live server crashed (see log)")

    async def _play(self, conn: _Connection, turn: LiveTurn, spoken: bool) -> None:
        if spoken:
            conn.session.history.append({"role": "user", "text": turn.transcript})
            if turn.transcript and conn.wants("inputAudioTranscription"):
                for chunk in _split_text(turn.transcript, max(2, math.ceil(len(turn.transcript.split()) / 3))):
                    await conn.send({"serverContent": {"inputTranscription": {"text": chunk}}})
        if turn.tool_calls:
            calls = [{"id": f"function-call-{next(self._call_ids)}", **call} for call in turn.tool_calls]
            conn.session.issued_ids.update(call["id"] for call in calls)
            conn.pending_ids = {call["id"] for call in calls}
            conn.tools_settled.clear()
            await conn.send({"toolCall": {"functionCalls": calls}})
            await self._notify()
            await conn.tools_settled.wait()
        said = await self._speak(conn, turn)
        conn.session.history.append({"role": "model", "text": said})
        if turn.interrupt_after_chunks is None:
            await conn.send({"serverContent": {"generationComplete": True}})
        await conn.send({"serverContent": {"turnComplete": True}})
        if conn.wants("sessionResumption"):
            handle = f"fake-handle-{secrets.token_urlsafe(12)}"
            self._handles[handle] = conn.session
            await conn.send({"sessionResumptionUpdate": {"newHandle": handle, "resumable": True}})
        self.turns_done += 1
        await self._notify()
        if turn.go_away_after:
            await conn.send({"goAway": {"timeLeft": "1s"}})
            await asyncio.sleep(self.go_away_close_s)
            await conn.ws.close(1001, "Session time limit reached.")

    async def _speak(self, conn: _Connection, turn: LiveTurn) -> str:
        """Audio (or text, for TEXT modality) with output transcription; returns what was said."""
        modalities = (conn.setup.get("generationConfig") or {}).get("responseModalities") or ["AUDIO"]
        pcm = _tone(turn.audio_ms)
        step = OUTPUT_RATE * 2 * CHUNK_MS // 1000
        audio = [pcm[i : i + step] for i in range(0, len(pcm), step)] or [b""]
        texts = _split_text(turn.reply, len(audio))
        said = ""
        for i, chunk in enumerate(texts if "TEXT" in modalities else audio):
            if turn.interrupt_after_chunks is not None and i >= turn.interrupt_after_chunks:
                await conn.send({"serverContent": {"interrupted": True}})
                return said
            text = texts[i] if i < len(texts) else ""
            if "TEXT" in modalities:
                await conn.send({"serverContent": {"modelTurn": {"parts": [{"text": text}]}}})
            else:
                blob = {"mimeType": OUTPUT_MIME, "data": base64.b64encode(chunk).decode()}
                await conn.send({"serverContent": {"modelTurn": {"parts": [{"inlineData": blob}]}}})
                if text and conn.wants("outputAudioTranscription"):
                    await conn.send({"serverContent": {"outputTranscription": {"text": text}}})
            said += text
            if self.chunk_delay_s:
                await asyncio.sleep(self.chunk_delay_s)
        if turn.interrupt_after_chunks is not None:  # asked to interrupt after the last chunk
            await conn.send({"serverContent": {"interrupted": True}})
        return said
