"""llama.cpp in-process (xllamacpp): one server per model file, loaded on first use, whole answers
or token by token.

llama.cpp's server object is not thread-safe, so every request holds the lock, a streamed one
until its last token. A streamed request runs in a worker thread that hands the OpenAI-style
chunks over a queue; closing the iterator early cancels the generation.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graphs.models.errors import LocalModelError, OfflineModelMissing

logger = logging.getLogger(__name__)

# The shipped SmolLM2 file is 98,362,432 bytes; anything far smaller is a truncated install.
_MIN_GGUF_BYTES = 50_000_000

_DONE = object()  # the worker's last item on the queue


@dataclass
class LlamaServer:
    """The llama.cpp server of one GGUF file (see module doc)."""

    model_path: Path
    n_ctx: int
    n_threads: int
    _server: Any = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def complete(self, payload: dict[str, Any]) -> dict[str, Any]:
        """One blocking OpenAI-style chat completion; LocalModelError when llama.cpp refuses it."""
        with self._lock:
            server = self._load()
            try:
                response = server.handle_chat_completions(payload)
            except ValueError as exc:  # raised for requests llama.cpp cannot turn into a grammar
                raise LocalModelError(f"llama.cpp refused the request: {exc}") from exc
        return _checked(response)

    def stream(self, payload: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The completion's OpenAI-style chunks as llama.cpp produces them (the last one carries
        the usage); LocalModelError when llama.cpp refuses the request."""
        chunks: queue.Queue[Any] = queue.Queue()
        cancelled = threading.Event()

        def on_chunk(chunk: Any) -> bool:
            chunks.put(chunk)
            return cancelled.is_set()  # True makes llama.cpp stop generating

        def produce() -> None:
            try:
                with self._lock:
                    self._load().handle_chat_completions(
                        {**payload, "stream": True, "stream_options": {"include_usage": True}}, on_chunk)
            except BaseException as exc:  # handed to the reading thread, which raises it
                chunks.put(exc)
            finally:
                chunks.put(_DONE)

        worker = threading.Thread(target=produce, name="llamacpp-stream", daemon=True)
        worker.start()
        try:
            while (item := chunks.get()) is not _DONE:
                if isinstance(item, ValueError):
                    raise LocalModelError(f"llama.cpp refused the request: {item}") from item
                if isinstance(item, BaseException):
                    raise item
                yield _checked(item)
        finally:
            cancelled.set()  # the reader stopped early (or failed): end the generation, free the lock
            worker.join()

    def _load(self) -> Any:
        """The llama.cpp server, created on first use (lock held)."""
        if self._server is None:
            import xllamacpp  # deferred: importing it costs time and most processes never need it

            check_gguf(self.model_path)
            params = xllamacpp.CommonParams()
            params.model.path = str(self.model_path)
            params.n_ctx = self.n_ctx
            params.n_parallel = 1
            params.use_jinja = True
            params.cpuparams.n_threads = self.n_threads
            params.cpuparams_batch.n_threads = self.n_threads
            params.verbosity = 0  # llama.cpp logs every request to stderr otherwise
            params.warmup = False
            self._server = xllamacpp.Server(params)
            logger.info("loaded %s (n_ctx=%d, threads=%d)", self.model_path.name, self.n_ctx, self.n_threads)
        return self._server


def check_gguf(path: Path) -> None:
    """Raise OfflineModelMissing unless ``path`` looks like a complete GGUF file."""
    if not path.is_file():
        raise OfflineModelMissing(f"{path} does not exist")
    size = path.stat().st_size
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic != b"GGUF" or size < _MIN_GGUF_BYTES:
        raise OfflineModelMissing(f"{path} is not a complete GGUF file ({size} bytes)")


def _checked(response: Any) -> dict[str, Any]:
    if not isinstance(response, dict):
        raise LocalModelError(f"llama.cpp answered {type(response).__name__}, not a JSON object")
    if "error" in response:
        error = response["error"]
        message = error.get("message", error) if isinstance(error, dict) else error
        raise LocalModelError(f"llama.cpp refused the request: {message}")
    return response
