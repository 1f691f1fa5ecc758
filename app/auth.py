"""Who is on the other end of a voice websocket: a token the server issued at sign-in.

The token is signed with the server's secret (itsdangerous, HMAC-SHA256 with a timestamp),
so the user id in it cannot be changed or made up by the browser; the websocket trusts
nothing else the client says about who it is.
"""

from __future__ import annotations

import secrets
import time

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from memories.errors import InvalidInput
from memories.validation import validate_user_id


class BadToken(ValueError):
    """A missing, forged or expired sign-in token."""


class TokenSigner:
    """Issues and checks sign-in tokens for one server (secret: fixed or random per process)."""

    def __init__(self, secret: str | None = None, *, ttl_s: int = 12 * 3600) -> None:
        # A random secret means tokens die with the process: a restart asks people to sign in again.
        self._serializer = URLSafeTimedSerializer(secret or secrets.token_urlsafe(32), salt="sam2voice-voice")
        self.ttl_s = ttl_s

    def issue(self, name: str) -> tuple[str, str, float]:
        """A token for ``name`` (validated as a user id): ``(token, user_id, expires_at)``."""
        user = validate_user_id(name.strip() if isinstance(name, str) else name)
        return self._serializer.dumps({"user": user}), user, time.time() + self.ttl_s

    def verify(self, token: str | None) -> str:
        """The user id in a valid token; :class:`BadToken` otherwise."""
        if not token:
            raise BadToken("sign in first (no token)")
        try:
            data = self._serializer.loads(token, max_age=self.ttl_s)
        except SignatureExpired as exc:
            raise BadToken("your sign-in expired; sign in again") from exc
        except BadSignature as exc:
            raise BadToken("this sign-in token is not valid; sign in again") from exc
        try:
            return validate_user_id(data["user"])
        except (InvalidInput, KeyError, TypeError) as exc:
            raise BadToken("this sign-in token is not valid; sign in again") from exc
