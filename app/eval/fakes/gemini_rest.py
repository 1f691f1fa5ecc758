"""A tiny fake of the Gemini REST API (``generateContent`` and ``streamGenerateContent?alt=sse``)
speaking the real wire JSON on 127.0.0.1, so the unmodified ``ChatGoogleGenerativeAI`` can be
driven offline. It records every request and answers with scripted replies.

google-genai builds ``{base_url}/v1beta/models/{model}:generateContent`` and sends plain HTTP
to an ``http://`` base URL, so no TLS is needed (unlike Gemini Live's websocket).
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class RecordedRequest:
    """One request the fake received."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def system_text(self) -> str:
        """The text of the request's ``systemInstruction`` (empty if none)."""
        parts = (self.body.get("systemInstruction") or {}).get("parts", [])
        return "".join(part.get("text", "") for part in parts)

    @property
    def user_texts(self) -> list[str]:
        """The texts of the ``user`` turns, in order."""
        return [
            part.get("text", "")
            for content in self.body.get("contents", [])
            if content.get("role") == "user"
            for part in content.get("parts", [])
            if "text" in part
        ]


@dataclass
class FakeGemini:
    """The fake server. Queue replies with :meth:`reply_text` / :meth:`reply_call`; when the
    queue is empty it answers ``default_text``. Use as a context manager."""

    default_text: str = "OK."
    model_version: str = "gemini-2.5-flash"
    requests: list[RecordedRequest] = field(default_factory=list)
    _replies: deque[dict[str, Any]] = field(default_factory=deque)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        """The base URL to give the client (``http://127.0.0.1:PORT``)."""
        assert self._server is not None, "FakeGemini is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def reply_text(self, text: str) -> None:
        """Answer the next request with a text part."""
        self._replies.append({"text": text})

    def reply_call(self, name: str, args: dict[str, Any]) -> None:
        """Answer the next request with a function call."""
        self._replies.append({"functionCall": {"name": name, "args": args}})

    def start(self) -> FakeGemini:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                fake._record(RecordedRequest("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                if ":generateContent" not in self.path and ":streamGenerateContent" not in self.path:
                    self._send(404, "application/json", _error(404, f"unknown method {self.path}"))
                    return
                if not self.headers.get("x-goog-api-key") and "key=" not in self.path:
                    self._send(403, "application/json", _error(403, "API key missing"))
                    return
                payload = json.dumps(fake._response()).encode()
                if ":streamGenerateContent" in self.path:  # server-sent events, one chunk
                    self._send(200, "text/event-stream", b"data: " + payload + b"\r\n\r\n")
                else:
                    self._send(200, "application/json", payload)

            def _send(self, status: int, content_type: str, data: bytes) -> None:
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-gemini", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeGemini:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _response(self) -> dict[str, Any]:
        with self._lock:
            part = self._replies.popleft() if self._replies else {"text": self.default_text}
        return {
            "candidates": [{"content": {"parts": [part], "role": "model"}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 5, "totalTokenCount": 17},
            "modelVersion": self.model_version,
            "responseId": "fake-response",
        }


def _error(code: int, message: str) -> bytes:
    status = {403: "PERMISSION_DENIED", 404: "NOT_FOUND"}.get(code, "INVALID_ARGUMENT")
    return json.dumps({"error": {"code": code, "message": message, "status": status}}).encode()
