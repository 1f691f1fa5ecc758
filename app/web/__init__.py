"""The web wing: the voice server (``sam2voice serve``), its sockets, sign-in, voice setup and the page."""
