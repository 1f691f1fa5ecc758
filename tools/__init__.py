"""LangChain tools of the coaching repertoire. Built in the graph issue (#3)."""
