"""The companion graph's nodes, one module per step of a turn. Each is a plain
``async def node(state, config, *, deps)``; ``graphs.graph`` binds ``deps`` and wires them."""
