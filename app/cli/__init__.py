"""The command-line wing: ``sam2voice`` (``main``), the text chat, terminal voice, the demo and inspection."""

from app.cli.main import DEFAULT_CONVERSATIONS, app, console, main

__all__ = ["DEFAULT_CONVERSATIONS", "app", "console", "main"]
