"""The companion LangGraph graph (state, nodes, wiring). Built in the graph issue (#3)."""
