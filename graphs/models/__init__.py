"""Chat models behind LangChain's ``BaseChatModel``: the offline SmolLM2 on llama.cpp, Gemini
when a key is set, and a deterministic template model for evaluations and benchmarks."""
