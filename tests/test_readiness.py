"""``/readyz`` (can this process take a conversation now?) next to ``/healthz`` (is it alive?),
on the real server: ready over the test Redis; not ready, with the reason, once its Redis is
gone (a Redis of its own, stopped mid-test), while liveness stays 200."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from app.companion import Companion
from app.embedded_redis import EmbeddedRedis
from app.settings import Settings
from app.web.server import create_app
from memories.embeddings import LocalMiniLMEmbeddings
from tests.companion_fixtures import Rig, fresh_namespace, open_rig
from tests.test_hardening import QuietSpeech
from tests.test_voice_server import serving

PARTS = ["Redis", "Redis modules", "Embedder", "Chat model", "Speech"]


def offline_app(rig: Rig) -> Any:
    quiet: Any = QuietSpeech()
    return create_app(Settings(), companion=Companion(deps=rig.deps, graph=rig.graph), mode="offline",
                      speech=(quiet, quiet))


async def test_ready_lists_every_check(rig: Rig) -> None:
    async with serving(offline_app(rig)) as base, httpx.AsyncClient() as http:
        answer = await http.get(f"http://{base}/readyz")
        again = await http.get(f"http://{base}/readyz")
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["ok"] is True and [c["part"] for c in report["checks"]] == PARTS
    assert all(c["ok"] for c in report["checks"])
    checks = {c["part"]: c["detail"] for c in report["checks"]}
    assert "search" in checks["Redis modules"] and "json" in checks["Redis modules"]
    assert "384 dimensions" in checks["Embedder"] and "offline speech" in checks["Speech"]
    assert "checked" in {c["part"]: c["detail"] for c in again.json()["checks"]}["Embedder"]  # remembered a while


async def test_not_ready_when_redis_is_gone_but_still_alive(tmp_path: Path, minilm: LocalMiniLMEmbeddings) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    url = server.start()
    try:
        async with open_rig(url, minilm, fresh_namespace(), tmp_path) as rig, serving(offline_app(rig)) as base, \
                httpx.AsyncClient(timeout=15) as http:
            assert (await http.get(f"http://{base}/readyz")).status_code == 200
            server.stop()
            answer = await http.get(f"http://{base}/readyz")
            health = await http.get(f"http://{base}/healthz")
    finally:
        server.stop()
    assert answer.status_code == 503
    report = answer.json()
    checks = {c["part"]: c for c in report["checks"]}
    assert report["ok"] is False and checks["Redis"]["ok"] is False and checks["Redis"]["detail"]
    assert checks["Redis modules"] == {"part": "Redis modules", "ok": False,
                                       "detail": "not checked: Redis is not answering"}
    assert checks["Embedder"]["ok"] is True  # the parts that do not need Redis are still told apart
    assert health.status_code == 200 and health.json()["ok"] is True
