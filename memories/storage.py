"""One RedisVL index per memory element, scoped to a user in exactly one place.

Every read goes through :meth:`UserScopedIndex.scope`, which validates the user id
and ANDs a ``user_id`` tag filter (escaped by RedisVL) onto the query. The tag
field is case-sensitive and uses an ASCII record separator as tag separator, so
ids such as ``Alice``/``alice`` or ``a,b``/``a`` stay distinct users; ids are
stored encoded (``validation.user_tag``) so no character can alter a query.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import redis.asyncio as aioredis
from redis.exceptions import ResponseError
from redisvl.exceptions import RedisSearchError
from redisvl.index import AsyncSearchIndex
from redisvl.query import CountQuery, FilterQuery, VectorQuery
from redisvl.query.filter import FilterExpression, Tag
from redisvl.schema import IndexSchema

from memories.connection import unavailable_as_typed_error
from memories.keys import person_tag
from memories.validation import user_tag, validate_user_id

log = logging.getLogger(__name__)

TAG_SEPARATOR = "\x1e"  # never in a valid user id or tag: validation refuses non-printables
USER_FIELD = {"name": "user_id", "type": "tag", "attrs": {"separator": TAG_SEPARATOR, "case_sensitive": True}}
EXPORT_PAGE = 500


def tag_field(name: str) -> dict[str, Any]:
    """A tag field with the same separator rules as ``user_id``."""
    return {"name": name, "type": "tag", "attrs": {"separator": TAG_SEPARATOR}}


def join_tags(tags: Sequence[str]) -> str:
    """Tags as one stored string (HASH storage)."""
    return TAG_SEPARATOR.join(tags)


def split_tags(value: str | None) -> list[str]:
    """Inverse of :func:`join_tags`."""
    return [t for t in (value or "").split(TAG_SEPARATOR) if t]


class UserScopedIndex:
    """A RedisVL ``AsyncSearchIndex`` whose every query is confined to one user."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        name: str,
        storage: Literal["hash", "json"],
        fields: list[dict[str, Any]],
        vector_dims: int | None = None,
        vector_datatype: str = "float32",
    ) -> None:
        self.name = name
        self.prefix = name
        self.vector_datatype = vector_datatype
        all_fields = [USER_FIELD, *fields]
        if vector_dims:
            all_fields.append({
                "name": "embedding",
                "type": "vector",
                "attrs": {"dims": vector_dims, "algorithm": "flat", "distance_metric": "cosine",
                          "datatype": vector_datatype},
            })
        if storage == "json":
            all_fields = [{**f, "path": f"$.{f['name']}"} for f in all_fields]
        self.schema = IndexSchema.from_dict(
            {"index": {"name": name, "prefix": name, "storage_type": storage}, "fields": all_fields}
        )
        self.client = client
        self.index = AsyncSearchIndex(self.schema, redis_client=client)

    def key(self, user_id: str, record_id: str | None = None) -> str:
        """The Redis key of a record of ``user_id``: ``{prefix}:{<user_tag>}:{record_id}``, or
        ``{prefix}:{<user_tag>}`` for an element's one document per person. The person's hash
        tag keeps all their keys in one Redis Cluster slot (``memories.keys``); the index
        finds the records by ``prefix`` all the same."""
        base = f"{self.prefix}:{person_tag(user_id)}"
        return base if record_id is None else f"{base}:{record_id}"

    @staticmethod
    def record_id(key: str) -> str:
        """The record id of a key (query results carry the key as ``id``): its last part."""
        return key.rsplit(":", 1)[-1]

    def vector_bytes(self, vector: Sequence[float]) -> bytes:
        """A vector in the index's storage format (HASH storage)."""
        return np.asarray(vector, dtype=self.vector_datatype).tobytes()

    def vector_of(self, row: dict[str, Any]) -> np.ndarray:
        """The stored vector of a row read ``with_vectors``."""
        return np.frombuffer(row["embedding"], dtype=self.vector_datatype)

    @unavailable_as_typed_error
    async def create(self) -> None:
        """Create the index if it does not exist yet (existing data is kept)."""
        if await self.index.exists():
            return
        try:
            await self.index.create(overwrite=False)
        except RedisSearchError as exc:
            # Another process (a second `serve --workers` worker) created it between our check
            # and our create: that is the outcome we wanted.
            if "already exists" not in str(exc).lower() or not await self.index.exists():
                raise
            log.debug("index %s was created by another process meanwhile", self.name)
            return
        log.info("created index %s", self.name)

    @staticmethod
    def scope(user_id: str, extra: FilterExpression | None = None) -> FilterExpression:
        """The filter every query of ``user_id`` carries; the only place it is built."""
        user = Tag("user_id") == user_tag(user_id)
        return user & extra if extra is not None else user

    @unavailable_as_typed_error
    async def nearest(
        self,
        user_id: str,
        vector: Sequence[float],
        *,
        k: int,
        return_fields: list[str],
        extra: FilterExpression | None = None,
        with_vectors: bool = False,
    ) -> list[dict[str, Any]]:
        """The ``k`` records of ``user_id`` nearest to ``vector`` (``vector_distance`` is cosine
        distance); with ``with_vectors``, each row's stored vector too, as raw bytes under
        ``embedding`` (see :meth:`vector_of`)."""
        query = VectorQuery(
            vector=list(vector),
            vector_field_name="embedding",
            return_fields=return_fields,
            filter_expression=self.scope(user_id, extra),
            num_results=k,
            dtype=self.vector_datatype,
        )
        if with_vectors:
            query.return_fields(*return_fields, "embedding", skip_decode=["embedding"])
            return_fields = [*return_fields, "embedding"]
        # RedisVL builds the query (and the user's filter); the reply is read here: redis-py's
        # search ``Result`` and RedisVL's post-processing of it cost ~0.8 ms of CPU per 24-row
        # search (profiled, issue #14), a third of the whole ranking.
        params = [part for item in query.params.items() for part in item]
        try:
            raw = await self.client.execute_command("FT.SEARCH", self.name, *query.get_args(),
                                                    "PARAMS", len(params), *params)
        except ResponseError as exc:  # as RedisVL raises it, so callers see one error type
            raise RedisSearchError(f"Error while searching: {exc}") from exc
        return _complete(_search_rows(raw, binary={"embedding"}), return_fields)

    @unavailable_as_typed_error
    async def find(
        self,
        user_id: str,
        *,
        extra: FilterExpression | None = None,
        return_fields: list[str] | None = None,
        sort_by: str | None = None,
        ascending: bool = False,
        limit: int = 10,
    ) -> list[dict[str, Any]]:
        """Records of ``user_id`` matching ``extra``, optionally sorted."""
        query = FilterQuery(self.scope(user_id, extra), return_fields=return_fields, num_results=limit)
        if sort_by:
            query.sort_by(sort_by, asc=ascending)
        return _complete(await self.index.query(query), return_fields or [])

    @unavailable_as_typed_error
    async def count(self, user_id: str, extra: FilterExpression | None = None) -> int:
        """How many records ``user_id`` has (matching ``extra``)."""
        return int(await self.index.query(CountQuery(self.scope(user_id, extra))))

    @unavailable_as_typed_error
    async def keys_of(self, user_id: str) -> list[str]:
        """Every key of ``user_id`` in this index."""
        keys: list[str] = []
        async for page in self.index.paginate(FilterQuery(self.scope(user_id), return_fields=["id"]), EXPORT_PAGE):
            keys.extend(r["id"] for r in page)
        return keys

    @unavailable_as_typed_error
    async def export(self, user_id: str) -> list[dict[str, Any]]:
        """Every stored field of every record of ``user_id`` (vectors omitted)."""
        keys = await self.keys_of(user_id)
        if not keys:
            return []
        owner = validate_user_id(user_id)  # stored tags are encoded; exports show the id as given
        async with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                if self.schema.index.storage_type.value == "json":
                    pipe.json().get(key)
                else:
                    pipe.hgetall(key)
            raw = await pipe.execute()
        out = []
        for key, doc in zip(keys, raw, strict=True):
            if not doc:
                continue  # expired between the query and the read
            if isinstance(doc, dict) and any(isinstance(k, bytes) for k in doc):
                doc = {k.decode(): v for k, v in doc.items() if k != b"embedding"}
                doc = {k: v.decode() if isinstance(v, bytes) else v for k, v in doc.items()}
            else:
                doc = {k: v for k, v in doc.items() if k != "embedding"}
            out.append({"key": key, **doc, "user_id": owner})
        return out

    @unavailable_as_typed_error
    async def forget(self, user_id: str) -> int:
        """Delete every record of ``user_id``; returns how many were deleted."""
        keys = await self.keys_of(user_id)
        deleted = 0
        for start in range(0, len(keys), EXPORT_PAGE):
            deleted += int(await self.client.unlink(*keys[start : start + EXPORT_PAGE]))
        return deleted


def _search_rows(raw: Any, *, binary: set[str]) -> list[dict[str, Any]]:
    """The documents of a raw ``FT.SEARCH`` reply (RESP3 map or RESP2 list) as RedisVL returns
    them: ``id`` and each returned field as text, but the ``binary`` ones as bytes."""
    raw_names = {name.encode() for name in binary}

    def row(key: bytes, fields: Any) -> dict[str, Any]:
        pairs = fields.items() if isinstance(fields, dict) else zip(fields[::2], fields[1::2], strict=True)
        out: dict[str, Any] = {name.decode(): value if name in raw_names else value.decode() for name, value in pairs}
        out["id"] = key.decode()
        return out

    if isinstance(raw, dict):
        return [row(r[b"id"], r.get(b"extra_attributes") or {}) for r in raw.get(b"results", [])]
    return [row(raw[i], raw[i + 1] or []) for i in range(1, len(raw) - 1, 2)]


def _complete(rows: list[dict[str, Any]], fields: Sequence[str]) -> list[dict[str, Any]]:
    """Rows that have every requested field. A record expiring (TTL) while the search runs
    can come back as a bare id; it is gone, so it is left out rather than half-read."""
    wanted = [f for f in fields if f != "vector_distance"]
    complete = [r for r in rows if all(f in r for f in wanted)]
    if len(complete) != len(rows):
        log.debug("skipped %d record(s) that expired during the search", len(rows) - len(complete))
    return complete
