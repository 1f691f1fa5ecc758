"""Local fakes of the paid remote APIs (Gemini REST, Gemini Live) and their TLS helpers, speaking
the real wire formats so the unmodified clients run offline. Used by the tests and the benchmarks
only: nothing the companion runs (``serve``, ``chat``, voice) imports this package."""
