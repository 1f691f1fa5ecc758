"""A durable, bounded queue of writes that wait while Redis is unreachable, flushed in
order when it returns.

The mechanism only: which writes exist and how one is applied (exactly once, by its
``key``) is the caller's, given as a pydantic ``TypeAdapter`` of the write list and an
``apply`` coroutine. The companion's writes (memory records, settles, tool state) and their
``apply`` are in ``graphs.outbox``.

* **Durable.** With a ``directory``, each outbox keeps its own file
  (``outbox-<pid>-<token>.json``, atomically replaced on every change) and holds an
  exclusive lock on its ``.lock`` file for as long as it lives. A new outbox adopts the
  files of every outbox whose lock is free (its process is gone), so a crash or a restart
  loses nothing; two processes on one data dir never share a file.
* **Bounded.** It holds at most ``limit`` writes; a write beyond that raises
  :class:`OutboxFull` and the person is told.
* **One flusher.** Flushes are serialised by a lock; a flush that finds one running returns.
* **Idempotent queueing.** A write whose ``(op, key)`` is queued already is not queued twice.

Hand-written because the writes are our own typed operations and a broker would need the
very Redis that is down.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Any, Generic, Protocol, TypeVar

from pydantic import TypeAdapter

from memories.errors import MemoryBusy, MemoryLayerError, MemoryUnavailable, RecordNotFound
from memories.registry import MemoryRegistry

log = logging.getLogger(__name__)


class QueuedWrite(Protocol):
    """What the outbox needs of a write: its kind, its idempotency key and whose it is."""

    op: str
    key: str
    user_id: str


W = TypeVar("W", bound=QueuedWrite)
Apply = Callable[..., Awaitable[None]]  # apply(write, registry, *, replay: bool)


class OutboxFull(MemoryLayerError):
    """The outbox holds ``limit`` writes already; this one could not be kept."""


class Outbox(Generic[W]):
    """A bounded FIFO of writes, optionally kept in a per-process file; see the module docstring.
    ``codec`` reads and writes the list of writes; ``apply(write, registry, replay=...)`` performs
    one (exactly once per key: the outbox may replay a write whose first attempt landed)."""

    def __init__(self, codec: TypeAdapter[list[W]], apply: Apply, *, limit: int = 1000,
                 directory: Path | None = None) -> None:
        self._codec = codec
        self._apply = apply
        self.limit = limit
        self.directory = directory
        self._queue: deque[W] = deque()
        self._flushing = asyncio.Lock()
        self._refused: dict[str, int] = {}  # writes refused because the outbox was full, per person
        self._lock_file: IO[bytes] | None = None
        self.path: Path | None = None
        self.adopted = 0  # writes taken over from earlier processes' files
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            name = f"outbox-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            self.path = directory / f"{name}.json"
            self._lock_file = _locked(directory / f"{name}.lock")
            if self._lock_file is None:  # a fresh random name is never locked; be loud if it is
                raise OSError(f"could not lock {directory / name}.lock")
            self.adopted = self._adopt_leftovers()

    def __len__(self) -> int:
        return len(self._queue)

    def __bool__(self) -> bool:
        # An outbox is an object, not a collection: ``outbox or Outbox()`` must never replace
        # an empty one (that once dropped the on-disk path of the real app's outbox).
        return True

    def pending(self, user_id: str | None = None) -> list[W]:
        """Queued writes, oldest first (of one user when given)."""
        return [w for w in self._queue if user_id is None or w.user_id == user_id]

    def put(self, write: W) -> None:
        """Queue a write; raises :class:`OutboxFull` rather than silently dropping one. A write
        whose key is queued already is not queued twice."""
        if any(w.key == write.key and w.op == write.op for w in self._queue):
            return
        if len(self._queue) >= self.limit:
            self._refused[write.user_id] = self._refused.get(write.user_id, 0) + 1
            raise OutboxFull(f"the outbox already holds {self.limit} writes waiting for Redis")
        self._queue.append(write)
        self._save()

    def drop(self, user_id: str) -> int:
        """Remove the person's queued writes (they asked to be forgotten: nothing of theirs may
        land afterwards); returns how many were dropped."""
        kept = deque(w for w in self._queue if w.user_id != user_id)
        dropped = len(self._queue) - len(kept)
        if dropped:
            self._queue = kept
            self._save()
        return dropped

    def take_refused(self, user_id: str) -> int:
        """How many of the person's writes were refused (outbox full) since the last call."""
        return self._refused.pop(user_id, 0)

    async def run_or_queue(self, write: W, registry: MemoryRegistry) -> bool:
        """Perform ``write`` now if nothing is queued before it and Redis answers, else queue it.
        Returns True when it was written now."""
        if not self._queue:
            try:
                await self._apply(write, registry, replay=False)
                return True
            except MemoryUnavailable:
                log.warning("memory unavailable; queued %s for later", write.op)
        self.put(write)
        return False

    async def flush(self, registry: MemoryRegistry) -> int:
        """Write out queued writes in order; stops (keeping the rest) at the first outage.
        Only one flush runs at a time: a flush that finds another running returns 0."""
        if self._flushing.locked():
            return 0
        done = 0
        async with self._flushing:
            while self._queue:
                write = self._queue[0]
                try:
                    await self._apply(write, registry, replay=True)
                except (MemoryUnavailable, MemoryBusy):
                    break
                except RecordNotFound as exc:  # e.g. the person asked to be forgotten meanwhile
                    log.warning("outbox: dropped %s: %s", write.op, exc)
                except MemoryLayerError as exc:  # refused on replay: it can never succeed, keep going
                    log.error("outbox: dropped %s that Redis refused: %s", write.op, exc)
                self._queue.popleft()
                done += 1
            if done:
                log.info("outbox: flushed %d writes, %d left", done, len(self._queue))
                self._save()
        return done

    def close(self) -> None:
        """Release this outbox's file lock (its file stays, for the next process to adopt)."""
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def _adopt_leftovers(self) -> int:
        """Take over the writes of every outbox file whose owner is gone (its lock is free)."""
        assert self.directory is not None
        adopted: list[tuple[Path, Path, IO[bytes]]] = []
        for other in sorted(self.directory.glob("outbox*.json"), key=_mtime):
            if other == self.path:
                continue
            lock_path = other.with_suffix(".lock")
            handle = _locked(lock_path)
            if handle is None:
                continue  # a live outbox (this process or another) owns it
            try:
                writes = self._codec.validate_json(other.read_bytes())
            except FileNotFoundError:  # adopted by someone else just before we locked it
                handle.close()
                continue
            except ValueError as exc:
                log.error("outbox: %s is unreadable (%s); left in place", other, exc)
                handle.close()
                continue
            for write in writes:
                if not any(w.key == write.key and w.op == write.op for w in self._queue):
                    self._queue.append(write)
            adopted.append((other, lock_path, handle))
        count = len(self._queue)
        if adopted:
            self._save()  # ours is on disk before theirs go: a crash in between replays, never loses
            for other, lock_path, handle in adopted:
                other.unlink(missing_ok=True)
                lock_path.unlink(missing_ok=True)
                handle.close()
            log.info("outbox: adopted %d writes from %d earlier outbox file(s)", count, len(adopted))
        return count

    def _save(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_suffix(".tmp")  # this outbox's own name: no one else writes it
        with open(tmp, "wb") as handle:
            handle.write(self._codec.dump_json(list(self._queue)))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)  # atomic: a crash leaves the old or the new queue, never half

    def as_json(self) -> list[dict[str, Any]]:
        """The queue as plain data (for export and debugging)."""
        return json.loads(self._codec.dump_json(list(self._queue)))


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _locked(path: Path) -> IO[bytes] | None:
    """``path`` opened and exclusively locked (held until closed), or None if someone holds it."""
    handle = open(path, "ab")  # noqa: SIM115 - kept open: the lock lives as long as the handle
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle

