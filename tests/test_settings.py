"""Settings from the environment and .env, with the documented names."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.settings import Settings

REPO = Path(__file__).resolve().parent.parent


def test_defaults_are_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("REDIS_URL", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.redis_url is None and settings.google_key is None
    assert settings.embedding_provider == "local"
    assert settings.memory.intervention_ttl_days == 30 and settings.memory.reflection_ttl_days == 90


def test_environment_and_dotenv_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("GOOGLE_API_KEY=from-dotenv\nSAM2VOICE_MEMORY__FEW_SHOT_K=5\n")
    monkeypatch.setenv("REDIS_URL", "redis://example:6379")
    monkeypatch.setenv("SAM2VOICE_MEMORY__ENABLED", '["profile","interventions"]')
    monkeypatch.setenv("SAM2VOICE_MEMORY__INTERVENTION_TTL_DAYS", "14")
    settings = Settings()
    assert settings.redis_url == "redis://example:6379"
    assert settings.google_key == "from-dotenv" and "from-dotenv" not in repr(settings)
    assert settings.memory.enabled == ["profile", "interventions"]
    assert settings.memory.intervention_ttl_days == 14 and settings.memory.few_shot_k == 5


def test_every_example_setting_parses(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    lines = (REPO / ".env.example").read_text().splitlines()
    uncommented = [line.removeprefix("# ") for line in lines if line.startswith("# ") and "=" in line
                   and line.removeprefix("# ").split("=")[0].isupper()]
    assert len(uncommented) >= 15
    (tmp_path / ".env").write_text("\n".join(line.split("  #")[0].strip() for line in uncommented) + "\n")
    settings = Settings()
    assert settings.redis_url and settings.embedded_port == 6479


@pytest.mark.parametrize("name,value", [("SAM2VOICE_EMBEDDING_PROVIDER", "openai"),
                                        ("SAM2VOICE_MEMORY__INTERVENTION_TTL_DAYS", "-1"),
                                        ("SAM2VOICE_MEMORY__NAMESPACE", "Bad Name")])
def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, value: str) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()
