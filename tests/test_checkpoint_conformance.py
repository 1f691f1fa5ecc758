"""LangGraph's checkpointer conformance suite (langgraph-checkpoint-conformance) against the
saver the companion runs on: ``AsyncShallowRedisSaver`` as ``checkpointer_for`` sets it up, on
the real embedded server.

Every check of the suite is one test here. The ones langgraph-checkpoint-redis 0.5.2 fails are
strict expected failures naming the upstream cause: if a check starts passing (an upgrade fixed
it), the test fails until its mark is removed, and any other failing check fails outright.
Most of them follow from the saver being *shallow* on purpose: it keeps each thread's latest
checkpoint only (one small write per turn; see ``app/companion.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.report import ProgressCallbacks
from langgraph.checkpoint.conformance.spec.test_copy_thread import ALL_COPY_THREAD_TESTS
from langgraph.checkpoint.conformance.spec.test_delete_for_runs import ALL_DELETE_FOR_RUNS_TESTS
from langgraph.checkpoint.conformance.spec.test_delete_thread import ALL_DELETE_THREAD_TESTS
from langgraph.checkpoint.conformance.spec.test_get_tuple import ALL_GET_TUPLE_TESTS
from langgraph.checkpoint.conformance.spec.test_list import ALL_LIST_TESTS
from langgraph.checkpoint.conformance.spec.test_prune import ALL_PRUNE_TESTS
from langgraph.checkpoint.conformance.spec.test_put import ALL_PUT_TESTS
from langgraph.checkpoint.conformance.spec.test_put_writes import ALL_PUT_WRITES_TESTS
from langgraph.checkpoint.redis.ashallow import AsyncShallowRedisSaver

from app.companion import checkpointer_for
from memories.stack import MemoryStack, open_memory
from tests.conftest import memory_settings

SUITES = {
    "put": ALL_PUT_TESTS, "put_writes": ALL_PUT_WRITES_TESTS, "get_tuple": ALL_GET_TUPLE_TESTS,
    "list": ALL_LIST_TESTS, "delete_thread": ALL_DELETE_THREAD_TESTS, "delete_for_runs": ALL_DELETE_FOR_RUNS_TESTS,
    "copy_thread": ALL_COPY_THREAD_TESTS, "prune": ALL_PRUNE_TESTS,
}
#: Capabilities the saver does not have at all (the suite skips them: no such method).
ABSENT = {"delete_for_runs", "copy_thread"}

UPSTREAM = "langgraph-checkpoint-redis 0.5.2 (langgraph/checkpoint/redis/ashallow.py)"
NO_HISTORY = (
    "the shallow saver keeps one checkpoint per thread and namespace (aput overwrites it), so there are no "
    "earlier checkpoints, parent links or history to get or list; by design, and why the companion uses it")
ANY_ID = "aget_tuple reads the thread's one checkpoint and ignores the checkpoint_id asked for"
ROOT_NAMESPACE = (
    'alist skips a checkpoint_ns filter of "" (it tests the value for truth), so listing the root namespace '
    "lists every namespace of the thread")
BEFORE = (
    "alist reads the `before` cursor as a ULID and silently ignores it otherwise, and LangGraph's checkpoint "
    "ids are uuid6")
CUSTOM_FILTER = (
    "alist filters on source, step, thread_id and run_id only and silently ignores other metadata keys")
SUMMARY_LIST = (
    "alist returns summaries: no channel values, only source/step metadata and always pending_writes=[]")
OLD_WRITES = (
    "aput deliberately keeps the pending writes of the checkpoint it replaces (for interrupts), until "
    "adelete_thread or a TTL removes them")
EMPTY_PRUNE = "aprune([]) raises ValueError('thread_ids must be a non-empty sequence') instead of doing nothing"

EXPECTED_FAILURES: dict[tuple[str, str], str] = {
    ("put", "test_put_multiple_checkpoints_same_thread"): NO_HISTORY,
    ("put", "test_put_parent_config"): NO_HISTORY,
    ("put", "test_put_incremental_channel_update"): NO_HISTORY,
    ("put_writes", "test_put_writes_cleared_on_next_checkpoint"): OLD_WRITES,
    ("get_tuple", "test_get_tuple_specific_checkpoint_id"): f"{NO_HISTORY}; {ANY_ID}",
    ("get_tuple", "test_get_tuple_parent_config"): NO_HISTORY,
    ("get_tuple", "test_get_tuple_nonexistent_checkpoint_id"): ANY_ID,
    ("list", "test_list_all"): NO_HISTORY,
    ("list", "test_list_by_thread"): NO_HISTORY,
    ("list", "test_list_by_namespace"): ROOT_NAMESPACE,
    ("list", "test_list_ordering"): NO_HISTORY,
    ("list", "test_list_metadata_filter_single_key"): NO_HISTORY,
    ("list", "test_list_metadata_filter_step"): NO_HISTORY,
    ("list", "test_list_metadata_custom_keys"): f"{NO_HISTORY}; {CUSTOM_FILTER}",
    ("list", "test_list_before"): f"{NO_HISTORY}; {BEFORE}",
    ("list", "test_list_limit"): NO_HISTORY,
    ("list", "test_list_limit_plus_before"): f"{NO_HISTORY}; {BEFORE}",
    ("list", "test_list_combined_thread_and_filter"): NO_HISTORY,
    ("list", "test_list_includes_pending_writes"): SUMMARY_LIST,
    ("list", "test_list_multiple_namespaces"): ROOT_NAMESPACE,
    ("prune", "test_prune_keep_latest_across_namespaces"): ROOT_NAMESPACE,
    ("prune", "test_prune_empty_list_noop"): EMPTY_PRUNE,
}


def _checks() -> list[object]:
    params: list[object] = []
    for capability, tests in SUITES.items():
        for check in tests:
            key = (capability, check.__name__)
            reason = EXPECTED_FAILURES.get(key)
            marks = [pytest.mark.xfail(strict=True, reason=f"{UPSTREAM}: {reason}")] if reason else []
            params.append(pytest.param(*key, marks=marks, id=f"{capability}::{check.__name__}"))
    return params


Outcomes = dict[tuple[str, str], str | None]  # (capability, check) -> None when passed, else the error


@pytest.fixture(scope="module")
async def outcomes(redis_url: str, minilm) -> AsyncIterator[Outcomes]:  # type: ignore[no-untyped-def]
    """Every check's outcome, from one run of the suite (~1 s; each capability gets a fresh saver)."""
    stacks: list[MemoryStack] = []

    @checkpointer_test(name="AsyncShallowRedisSaver")
    async def companion_saver() -> AsyncIterator[AsyncShallowRedisSaver]:
        stack = await open_memory(redis_url, memory_settings(), base_embeddings=(minilm, minilm.model_id, minilm.dims),
                                  create_indexes=False)
        stacks.append(stack)
        yield await checkpointer_for(stack)  # the companion's own saver (its threads are uuid4: no clashes)

    seen: Outcomes = {}

    def record(capability: str, check: str, passed: bool, error: str | None) -> None:
        seen[(capability, check)] = None if passed else (error or "failed")

    try:
        report = await validate(companion_saver, progress=ProgressCallbacks(on_test_result=record))
        for capability in ABSENT:
            assert report.results[capability].detected is False, f"{capability} is implemented now: test it"
        yield seen
    finally:
        for stack in stacks:
            await stack.aclose()


@pytest.mark.parametrize(("capability", "check"), _checks())
def test_conformance(outcomes: Outcomes, capability: str, check: str) -> None:
    if capability in ABSENT:
        pytest.skip(f"AsyncShallowRedisSaver has no {capability} (the suite finds no such method)")
    assert (capability, check) in outcomes, "the suite did not run this check"
    error = outcomes[(capability, check)]
    assert error is None, error


def test_every_expected_failure_is_a_check_of_the_suite() -> None:
    # A renamed or removed check would otherwise leave a stale mark behind unnoticed.
    names = {(capability, check.__name__) for capability, tests in SUITES.items() for check in tests}
    assert set(EXPECTED_FAILURES) <= names
