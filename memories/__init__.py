"""The memory layer of sam2voice: five pluggable memory elements on RedisVL indexes.

Open it with :func:`memories.stack.open_memory`; reach elements through the
:class:`~memories.registry.MemoryRegistry`. See docs/architecture.md.
"""
