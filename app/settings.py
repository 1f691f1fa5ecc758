"""Application settings: one typed object read from the environment and ``.env``.

Unprefixed names are the conventional ones (``REDIS_URL``, ``GOOGLE_API_KEY``);
everything else is ``SAM2VOICE_<FIELD>``, memory settings
``SAM2VOICE_MEMORY__<FIELD>``. See ``.env.example``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from graphs.configuration import CompanionSettings
from graphs.models.factory import ChatProvider
from memories.config import MemorySettings


class Settings(BaseSettings):
    """Everything configurable about sam2voice."""

    model_config = SettingsConfigDict(
        env_prefix="SAM2VOICE_", env_file=".env", env_nested_delimiter="__", extra="ignore"
    )

    # --- Redis -------------------------------------------------------------
    redis_url: str | None = Field(
        None,
        validation_alias=AliasChoices("REDIS_URL", "SAM2VOICE_REDIS_URL"),
        description="Redis with Search + JSON. Unset: start the embedded server.",
    )
    data_dir: Path = Field(
        Path(platformdirs.user_data_dir("sam2voice")), description="Where the embedded server keeps its data."
    )
    embedded_port: int | None = Field(
        None, ge=1024, le=65535,
        description="Unset (the default): the embedded server listens on a private unix socket in the data dir "
        "and on no TCP port. Set: it listens on this port of 127.0.0.1 instead, with a generated password "
        "(kept 0600 in the data dir).")
    redis_connect_timeout_s: float = Field(1.0, gt=0, le=30, description="Fail fast when Redis is unreachable.")
    redis_socket_timeout_s: float = Field(2.0, gt=0, le=60, description="Fail fast when Redis stops answering.")
    redis_max_connections: int = Field(
        64, ge=2, le=10_000, description="Connections in the pool; more concurrent commands wait for one.")
    redis_pool_timeout_s: float = Field(
        10.0, gt=0, le=120, description="How long a command waits for a free pooled connection (load, not an outage).")

    # --- Google / Gemini ---------------------------------------------------
    google_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("GOOGLE_API_KEY", "SAM2VOICE_GOOGLE_API_KEY"),
        description="Enables Gemini models; unset means fully offline.",
    )
    chat_provider: ChatProvider = Field(
        "auto", description="auto (Gemini with a key, else local), local (SmolLM2 offline), gemini, template."
    )
    chat_model: str = Field("gemini-2.5-flash", description="Gemini chat model (used when a key is set).")
    live_model: str = Field("gemini-live-2.5-flash-preview", description="Gemini Live model for voice.")
    live_voice: str | None = Field(None, description="Gemini Live prebuilt voice name (unset: the model's default).")

    # --- Voice web server (sam2voice serve) --------------------------------
    serve_host: str = Field("127.0.0.1", description="Address the voice page listens on.")
    serve_port: int = Field(8765, ge=1, le=65535, description="Port of the voice page.")
    serve_secret: SecretStr | None = Field(
        None, description="Unused since sign-in moved to server-side sessions (app/accounts.py); kept so old "
        ".env files still load.")
    allowed_origins: str = Field(
        "", description="Comma-separated extra origins (e.g. https://voice.example.org) the page may be served "
        "from; the bind address and port (and localhost/127.0.0.1/[::1] for loopback) are always allowed.")
    max_body_bytes: int = Field(64 * 1024, ge=1024, le=16 << 20, description="Largest HTTP request body (413 above).")
    http_body_timeout_s: float = Field(10.0, gt=0, le=300, description="A request body that stalls this long: 408.")
    ws_hello_timeout_s: float = Field(15.0, gt=0, le=600, description="Close a websocket that sends no hello.")
    ws_idle_timeout_s: float = Field(300.0, gt=0, le=86_400, description="Close a websocket silent this long.")
    ws_max_frame_bytes: int = Field(64 * 1024, ge=4096, le=1 << 20,
                                    description="Largest websocket message (the page sends 3.2 kB audio frames).")
    http_header_timeout_s: float = Field(10.0, gt=0, le=300,
                                         description="Close a connection whose request line and headers take longer.")
    voice_recheck_s: float = Field(30.0, gt=0, le=3600, description="How often an open voice socket re-checks its "
                                   "sign-in (closing it once revoked or expired) and that it is still the newest.")

    # --- Embeddings --------------------------------------------------------
    embedding_provider: Literal["local", "google"] = Field(
        "local", description="'local' (offline MiniLM, 384-dim) or 'google' (needs GOOGLE_API_KEY)."
    )
    google_embedding_model: str = Field("gemini-embedding-001", description="Gemini embedding model.")
    google_embedding_dims: int = Field(768, ge=128, le=3072, description="Output dimensionality for Gemini.")

    # --- Memory ------------------------------------------------------------
    memory: MemorySettings = Field(default_factory=MemorySettings)

    # --- Companion graph ---------------------------------------------------
    companion: CompanionSettings = Field(default_factory=CompanionSettings)

    # --- Tracing -----------------------------------------------------------
    weave_project: str | None = Field(
        None, description="W&B project for weave traces; tracing is on only with this and WANDB_API_KEY."
    )
    weave_stats_interval_s: float = Field(
        300.0, ge=5, le=86_400, description="With tracing on: how often the memory statistics (records per "
        "element, embedding cache hit rate) are logged to Weave (also once when the companion closes).")

    # --- Logging -----------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("WARNING", description="Log level of the CLI.")
    log_format: Literal["text", "json"] = Field(
        "text", description="text: 'LEVEL logger: message' lines; json: one JSON object per line (ts, level, "
        "logger, message, turn, exc) for log shippers, also from `serve` and its workers. Lines logged during a "
        "turn carry its id either way; nothing at INFO or above carries what a person said.")

    @property
    def allowed_origin_list(self) -> list[str]:
        """``allowed_origins`` split at commas, without blanks or trailing slashes."""
        return [o.strip().rstrip("/") for o in self.allowed_origins.split(",") if o.strip()]

    @property
    def google_key(self) -> str | None:
        """The Google API key as plain text, if set."""
        return self.google_api_key.get_secret_value() if self.google_api_key else None
