"""LangGraph Studio: ``langgraph dev`` serves the companion graph from ``langgraph.json``.

The server runs as its own process, offline, against the test session's Redis. The test
drives it with ``langgraph_sdk``, the API Studio itself uses: threads, runs, state and history.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from memories.config import MemorySettings
from memories.embeddings import LocalMiniLMEmbeddings
from memories.interventions import InterventionMemory
from memories.outcomes import Outcome
from memories.stack import MemoryStack, open_memory
from tests.conftest import element, free_port, memory_settings

REPO = Path(__file__).resolve().parents[1]
LANGGRAPH = Path(sys.executable).with_name("langgraph")
START_TIMEOUT_S = 60.0
USER = "studio-user"
# A fixed seed makes the agent's (otherwise random) choice of tool repeatable.
CONFIG = {"configurable": {"user_id": USER, "seed": "studio-test"}}


@dataclass
class DevServer:
    """A running ``langgraph dev`` and the memory namespace it writes to."""

    url: str
    namespace: str
    log: Path


def _human(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "human", "content": text}]}


def _stop(process: subprocess.Popen[bytes]) -> None:
    """End the server's whole process group: politely, then for good."""
    for sig, wait_s in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _wait_until_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"langgraph dev exited with {process.returncode}:\n{log.read_text()[-6000:]}")
        try:
            # Uvicorn answers only after the lifespan opened the companion.
            if httpx.get(f"{url}/ok", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"langgraph dev did not answer within {START_TIMEOUT_S:.0f} s:\n{log.read_text()[-6000:]}")


@pytest.fixture(scope="module")
def dev_server(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    """``langgraph dev`` on a free port, in a temp dir (so neither a developer's ``.env`` nor
    the repo's ``.langgraph_api/`` threads are involved), in a fresh memory namespace."""
    workdir = tmp_path_factory.mktemp("studio")
    namespace = memory_settings().namespace
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "LANGSMITH_", "LANGCHAIN_", "WANDB_"))}
    env.update({
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",  # the CLI would report usage to LangChain
        "LANGGRAPH_NO_VERSION_CHECK": "true",  # the server would ask PyPI for a newer release
        "LANGSMITH_TRACING": "false",
        "REDIS_URL": redis_url,
        "SAM2VOICE_CHAT_PROVIDER": "template",
        "SAM2VOICE_DATA_DIR": str(workdir / "data"),
        "SAM2VOICE_MEMORY__NAMESPACE": namespace,
    })
    log = workdir / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(LANGGRAPH), "dev", "--config", str(REPO / "langgraph.json"), "--host", "127.0.0.1",
             "--port", str(port), "--no-browser", "--no-reload"],
            cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_until_ready(process, url, log)
        yield DevServer(url=url, namespace=namespace, log=log)
    finally:
        _stop(process)
    assert process.returncode is not None, "langgraph dev outlived the test"


@pytest.fixture
def client(dev_server: DevServer) -> LangGraphClient:
    return get_client(url=dev_server.url)


@pytest.fixture
async def server_memory(dev_server: DevServer, redis_url: str, minilm: LocalMiniLMEmbeddings
                        ) -> AsyncIterator[MemoryStack]:
    """The memory layer the server writes to, opened by the test."""
    stack = await open_memory(redis_url, MemorySettings(namespace=dev_server.namespace),
                              base_embeddings=(minilm, minilm.model_id, minilm.dims))
    yield stack
    await stack.aclose()


async def test_a_studio_thread_answers_keeps_its_history_and_teaches_memory(
    client: LangGraphClient, server_memory: MemoryStack, dev_server: DevServer
) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]

    first = await client.runs.wait(tid, "companion", input=_human("I can't start my essay, it's too big"),
                                   config=CONFIG, raise_error=False)
    assert "__error__" not in first, f"{first}\n{dev_server.log.read_text()[-4000:]}"
    state = (await client.threads.get_state(tid))["values"]
    assert state["messages"][-1]["type"] == "ai" and state["messages"][-1]["content"] == state["reply"]
    assert state["reply"].strip()
    # The run's output has the turn's scratch (Studio shows it per step); the checkpoint does not.
    assert first["decision"]["tool"] and first["decision"]["intervention"] is True
    assert "few_shot" in first  # a new person: nothing to show yet, but the step ran
    assert not {"decision", "few_shot", "neighbors", "timings"} & set(state), set(state)
    intervention_id = state["last_intervention_id"]
    assert intervention_id
    assert len(await client.threads.get_history(tid)) >= 2  # Studio's time travel reads these

    second = await client.runs.wait(tid, "companion", input=_human("that helped, I got started"), config=CONFIG,
                                    raise_error=False)
    assert "__error__" not in second, f"{second}\n{dev_server.log.read_text()[-4000:]}"
    state = (await client.threads.get_state(tid))["values"]
    human = [m["content"] for m in state["messages"] if m["type"] == "human"]
    assert human == ["I can't start my essay, it's too big", "that helped, I got started"]  # one thread, both turns
    assert [s["id"] for s in second["settled"]] == [intervention_id]
    settled = Outcome(second["settled"][0]["outcome"])
    assert settled in {Outcome.TASK_PROGRESS, Outcome.TASK_COMPLETED, Outcome.RE_ENGAGED}

    stored = await element(server_memory, InterventionMemory).get(USER, intervention_id)
    assert stored.user_context == "I can't start my essay, it's too big"
    assert stored.outcome == settled


async def test_studio_gets_the_input_and_user_fields_it_renders(client: LangGraphClient) -> None:
    (assistant,) = await client.assistants.search(graph_id="companion")
    schemas = await client.assistants.get_schemas(assistant["assistant_id"])
    assert set(schemas["input_schema"]["properties"]) == {"messages", "live"}  # live: the voice runs
    assert "user_id" in schemas["context_schema"]["required"]
    nodes = {n["id"] for n in (await client.assistants.get_graph(assistant["assistant_id"]))["nodes"]}
    assert {"load_context", "choose_intervention", "respond", "record_outcome", "reflect"} <= nodes


async def test_a_run_for_nobody_fails_and_says_user_id(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    result = await client.runs.wait(thread["thread_id"], "companion", input=_human("hello"), raise_error=False)
    assert "user_id" in result["__error__"]["message"]
    context_run = await client.runs.wait(thread["thread_id"], "companion", input=_human("hello"),
                                         context={"user_id": USER}, raise_error=False)
    assert "__error__" not in context_run  # Studio's context form works as well as configurable
