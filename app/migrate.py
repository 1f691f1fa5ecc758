"""``sam2voice redis migrate``: move per-person keys of the old layout to the cluster-ready one.

Before, a person's keys ended in their bare tag (``{ns}:coach:plan:maya``) and index records
had no tag at all (``{ns}:interventions:{vt}:<id>``), so one person's keys were spread over
Redis Cluster's hash slots and the multi-key scripts could not run on a cluster. Now every
per-person key carries the person's hash tag (``memories.keys``)::

    {ns}:coach:{kind}:maya                  -> {ns}:coach:{kind}:{maya}
    {ns}:session:maya                       -> {ns}:session:{maya}
    {ns}:session_threads:maya               -> {ns}:session_threads:{maya}
    {ns}:intervention_stats:{vt}:maya       -> {ns}:intervention_stats:{vt}:{maya}
    {ns}:feedback_summary:maya              -> {ns}:feedback_summary:{maya}
    {ns}:profile:maya (documents)           -> {ns}:profile:{maya}
    {ns}:interventions:{vt}:<id> (records)  -> {ns}:interventions:{vt}:{maya}:<id>

The tag of an index record comes from its own ``user_id`` field. Records are found through
the server's index list (``FT._LIST``), so indexes of earlier embedders (another vector tag)
move too. A record renamed within its index's prefix is re-indexed by RediSearch.

Moving is ``RENAMENX``: TTLs are kept, and a key whose new name exists already (written by
a newer process before the migration ran) is left alone and reported as a conflict. Keys
already in the new layout are not touched, so running it again changes nothing.
``RENAME`` of a key to another hash slot needs a single node: migrate before moving the
data to a cluster (a cluster refuses it, and :func:`migrate_keys` says so up front).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis import exceptions as redis_errors

from memories.documents import DocumentMemory
from memories.keys import hash_tag
from memories.registry import ELEMENT_FACTORIES
from tools.store import KINDS

SCAN_COUNT = 1000

#: Per-person keys outside any index: family -> (parts after the namespace, before the tag).
#: A ``*`` part is any one part (the vector tag of the stats).
TAGGED_FAMILIES: dict[str, tuple[str, ...]] = {
    **{f"coach:{kind}": ("coach", kind) for kind in KINDS},
    "session": ("session",),
    "session_threads": ("session_threads",),
    "intervention_stats": ("intervention_stats", "*"),
    "feedback_summary": ("feedback_summary",),
}


SINGLE_NODE = ("moving a key to another hash slot (RENAME) needs a single node. Run `sam2voice redis migrate` "
               "against the old single-node server first, then move the data to the cluster (docs/memory.md, "
               "'Migrating data from the old key layout').")


class ClusterNotSupported(RuntimeError):
    """The server is a cluster node: RENAME across hash slots is refused there."""


@dataclass(frozen=True)
class Move:
    """One key moved (or, in a dry run, to be moved) from ``old`` to ``new``."""

    kind: str
    old: str
    new: str


@dataclass
class KeyMigration:
    """What :func:`migrate_keys` did."""

    dry_run: bool
    moved: list[Move] = field(default_factory=list)
    conflicts: list[Move] = field(default_factory=list)  # the new key exists: both kept, nothing moved
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (key, why)
    current: int = 0  # keys already in the new layout

    def counts(self) -> dict[str, int]:
        """Keys moved per kind."""
        return dict(sorted(Counter(m.kind for m in self.moved).items()))

    def as_dict(self) -> dict[str, Any]:
        """Plain data (``--json``)."""
        return {
            "dry_run": self.dry_run, "moved": self.counts(), "already_current": self.current,
            "moves": [vars(m) for m in self.moved], "conflicts": [vars(m) for m in self.conflicts],
            "skipped": [{"key": k, "why": why} for k, why in self.skipped],
        }


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _is_tag(part: str) -> bool:
    return bool(part) and part.isascii() and part.isalnum()


async def _refuse_cluster(client: aioredis.Redis) -> None:
    try:
        info = await client.info("cluster")
    except redis_errors.ResponseError:
        return  # a server without the section is not a cluster
    if int(info.get("cluster_enabled", 0)):
        raise ClusterNotSupported(f"this server is a Redis Cluster node: {SINGLE_NODE}")


async def _move(client: aioredis.Redis, report: KeyMigration, move: Move) -> None:
    if report.dry_run:
        (report.conflicts if await client.exists(move.new) else report.moved).append(move)
        return
    try:
        renamed = await client.renamenx(move.old, move.new)
    except redis_errors.ResponseError as exc:
        if "no such key" not in str(exc).lower():  # CROSSSLOT: a sharded database behind a proxy
            raise ClusterNotSupported(f"{exc} (renaming {move.old}): {SINGLE_NODE}") from exc
        report.skipped.append((move.old, "expired before it was moved"))
        return
    (report.moved if renamed else report.conflicts).append(move)


async def _scan(client: aioredis.Redis, pattern: str) -> list[str]:
    return sorted({_text(k) async for k in client.scan_iter(match=pattern, count=SCAN_COUNT)})


def _family(namespace: str, key: str) -> tuple[str, list[str], str] | None:
    """(family, the parts before the last, the last part) of a key ending in a person's tag."""
    *head, last = key.split(":")
    for kind, parts in TAGGED_FAMILIES.items():
        if len(head) != len(parts) + 1 or head[0] != namespace:
            continue
        if all(p in ("*", h) for p, h in zip(parts, head[1:], strict=True)):
            return kind, head, last
    return None


async def _migrate_tagged(client: aioredis.Redis, namespace: str, key: str, report: KeyMigration) -> None:
    """A key ending in the person's tag: wrap the tag in braces."""
    found = _family(namespace, key)
    if found is None:
        return  # not a per-person key (the embedding cache, or not ours)
    kind, head, last = found
    if last.startswith("{"):
        report.current += 1
    elif _is_tag(last):
        await _move(client, report, Move(kind, key, ":".join((*head, hash_tag(last)))))
    else:
        report.skipped.append((key, "its last part is not a user tag"))


async def _indexes(client: aioredis.Redis, namespace: str) -> list[tuple[str, str, str]]:
    """(index name, key prefix, HASH or JSON) of every index under ``namespace``."""
    found = []
    for raw in await client.execute_command("FT._LIST"):
        name = _text(raw)
        if not name.startswith(f"{namespace}:"):
            continue
        info = await client.ft(name).info()
        definition = info.get("index_definition") or []
        if isinstance(definition, list):
            definition = {_text(k): v for k, v in zip(definition[::2], definition[1::2], strict=True)}
        key_type = _text(definition.get("key_type", "HASH")).upper()
        for prefix in definition.get("prefixes") or []:
            prefix = _text(prefix).rstrip(":")
            if prefix.startswith(f"{namespace}:"):
                found.append((name, prefix, key_type))
    return found


async def _owner(client: aioredis.Redis, key: str, key_type: str) -> str | None:
    if key_type == "JSON":
        value = await client.json().get(key, "$.user_id")
        value = value[0] if isinstance(value, list) and value else None
    else:
        value = await client.hget(key, "user_id")
    return _text(value) if value is not None else None


async def _migrate_record(client: aioredis.Redis, report: KeyMigration, key: str, kind: str, prefix: str,
                          key_type: str, document: bool) -> None:
    """An index record or document: put the owner's tag after the index prefix."""
    rest = key[len(prefix) + 1:]
    if rest.startswith("{"):
        report.current += 1
        return
    if ":" in rest or not _is_tag(rest):
        report.skipped.append((key, "not a record id after the index prefix"))
        return
    owner = await _owner(client, key, key_type)
    if owner is None or not _is_tag(owner):
        report.skipped.append((key, f"no usable user_id field ({owner!r})"))
    elif not document:
        await _move(client, report, Move(kind, key, f"{prefix}:{hash_tag(owner)}:{rest}"))
    elif owner != rest:
        report.skipped.append((key, f"a document of {rest!r} owned by {owner!r}"))
    else:
        await _move(client, report, Move(kind, key, f"{prefix}:{hash_tag(owner)}"))


async def migrate_keys(client: aioredis.Redis, namespace: str, *, dry_run: bool = False) -> KeyMigration:
    """Move every per-person key of ``namespace`` still in the old layout to the new one
    (see the module docstring); with ``dry_run`` only report what would move. Idempotent.
    One SCAN over the namespace's keys."""
    await _refuse_cluster(client)
    report = KeyMigration(dry_run=dry_run)
    documents = {f"{namespace}:{name}" for name, factory in ELEMENT_FACTORIES.items()
                 if isinstance(factory, type) and issubclass(factory, DocumentMemory)}
    # Longest prefix first: a key belongs to the most specific index that covers it.
    indexes = sorted(await _indexes(client, namespace), key=lambda i: len(i[1]), reverse=True)
    for key in await _scan(client, f"{namespace}:*"):
        index = next((i for i in indexes if key.startswith(f"{i[1]}:")), None)
        if index is None:
            await _migrate_tagged(client, namespace, key, report)
        else:
            name, prefix, key_type = index
            await _migrate_record(client, report, key, name.removeprefix(f"{namespace}:"), prefix, key_type,
                                  prefix in documents)
    return report
