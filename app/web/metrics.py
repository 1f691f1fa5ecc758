"""``/metrics`` of ``sam2voice serve``: Prometheus text format through ``prometheus-client``.

One :class:`ServerMetrics` per server app, on a ``CollectorRegistry`` of its own (never the
process-wide default), installed as the observer of every request and websocket the app
serves (:class:`ObservedApp`; ``memories.tracing.observing``). Labels are code names only
(node, memory operation, outcome kind, turn kind): never a user id, never anything said.

With ``--workers N`` each worker keeps its own figures and a scrape reaches one of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from memories.embeddings import CachedEmbeddings
from memories.outcomes import Outcome
from memories.tracing import Event, OpKind, observing

__all__ = ["CONTENT_TYPE_LATEST", "ObservedApp", "ServerMetrics"]
NODE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
MEMORY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
TURN_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_OUTCOMES = {o.value for o in Outcome}


class EmbeddingCacheCollector(Collector):
    """The embedding cache's hits and misses, read from the embedder at scrape time."""

    def __init__(self) -> None:
        self.embeddings: CachedEmbeddings | None = None

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily("sam2voice_embedding_cache_lookups", "Texts looked up in the embedding "
                                     "cache, by result (hit: no embedding needed).", labels=["result"])
        if self.embeddings is not None:
            family.add_metric(["hit"], self.embeddings.hits)
            family.add_metric(["miss"], self.embeddings.misses)
        yield family


class ServerMetrics:
    """The metrics of one server app; an ``Observer`` (``memories.tracing``)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.node_seconds = Histogram("sam2voice_node_seconds", "Time in each companion-graph node (per turn).",
                                      ["node", "result"], buckets=NODE_BUCKETS, registry=r)
        self.memory_seconds = Histogram("sam2voice_memory_operation_seconds", "Time of each memory operation.",
                                        ["operation", "result"], buckets=MEMORY_BUCKETS, registry=r)
        self.tool_seconds = Histogram("sam2voice_tool_seconds", "Time of each coaching tool call (the graph's "
                                      "tools node).", ["tool", "result"], buckets=NODE_BUCKETS, registry=r)
        self.turn_seconds = Histogram("sam2voice_turn_seconds", "A whole turn (one graph run) by kind: text, "
                                      "heard, tool_call, refresh, feedback, end.", ["kind", "result"],
                                      buckets=TURN_BUCKETS, registry=r)
        self.outcomes = Counter("sam2voice_outcomes_settled", "Intervention outcomes settled by a turn, by kind.",
                                ["outcome"], registry=r)
        self.safety_events = Counter("sam2voice_safety_events", "Turns answered with the safety reply (a count "
                                     "only).", registry=r)
        self.outbox_depth = Gauge("sam2voice_outbox_depth", "Writes waiting in this process's outbox for Redis.",
                                  registry=r)
        self.degraded_sessions = Gauge("sam2voice_degraded_sessions", "Open voice sessions whose last turn ran "
                                       "without memory.", registry=r)
        self.active_sockets = Gauge("sam2voice_active_sockets", "Open voice websockets of this process.", registry=r)
        self.cache = EmbeddingCacheCollector()
        r.register(self.cache)
        self._histograms: dict[OpKind, Histogram] = {"node": self.node_seconds, "memory": self.memory_seconds,
                                                     "tool": self.tool_seconds, "turn": self.turn_seconds}

    def timed(self, kind: OpKind, name: str, seconds: float, *, failed: bool) -> None:
        """Observer: one operation's duration into its histogram."""
        self._histograms[kind].labels(name, "error" if failed else "ok").observe(seconds)

    def counted(self, event: Event, kind: str | None = None) -> None:
        """Observer: a settled outcome (by kind) or a safety reply."""
        if event == "outcome_settled":
            self.outcomes.labels(kind if kind in _OUTCOMES else "other").inc()
        elif event == "safety_event":
            self.safety_events.inc()

    def watch(self, *, outbox: Callable[[], int], sockets: Callable[[], int], degraded: Callable[[], int],
              embeddings: CachedEmbeddings) -> None:
        """Read the levels at scrape time: outbox depth, open sockets, degraded sessions, the cache."""
        self.outbox_depth.set_function(outbox)
        self.active_sockets.set_function(sockets)
        self.degraded_sessions.set_function(degraded)
        self.cache.embeddings = embeddings

    def exposition(self) -> bytes:
        """The registry in Prometheus text format (``CONTENT_TYPE_LATEST``)."""
        return generate_latest(self.registry)


class ObservedApp:
    """ASGI middleware: everything the app runs for a request, a websocket or its lifespan
    (and the tasks started from there) reports to ``metrics``."""

    def __init__(self, app: Any, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        with observing(self.metrics):
            await self.app(scope, receive, send)
