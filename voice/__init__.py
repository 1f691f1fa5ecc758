"""Voice entry points (Gemini Live, offline speech). Built in the voice issue (#4)."""
