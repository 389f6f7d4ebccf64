"""Settings: environment over an optional YAML file, validated at start-up with messages a person
can act on."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from chatgate.core.config import ConfigError, ProviderConfig, Settings, load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CHATGATE_"):
            monkeypatch.delenv(name)


def write_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: Any) -> Path:
    path = tmp_path / "chatgate.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    monkeypatch.setenv("CHATGATE_CONFIG", str(path))
    return path


UPSTREAM = {
    "id": "upstream",
    "type": "openai",
    "base_url": "http://127.0.0.1:9100/v1",
    "api_key_env": "UPSTREAM_API_KEY",
}
SUPPORT = {
    "id": "support",
    "name": "Customer support",
    "provider": "upstream",
    "model": "gpt-4o-mini",
    "system_prompt": "You answer questions about orders.",
    "max_context_tokens": 3000,
}


def test_the_embedded_default() -> None:
    settings = load_settings()
    assert settings.database_url == "sqlite+aiosqlite:///./data/chatgate.db"
    assert settings.is_sqlite
    assert settings.auth_mode == "none"
    assert settings.redis_url is None
    assert [(p.id, p.type) for p in settings.providers] == [("local", "local")]
    assert settings.assistants and all(a.provider == "local" for a in settings.assistants)


def test_a_yaml_file_declares_providers_and_assistants(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(tmp_path, monkeypatch, {"providers": [UPSTREAM], "assistants": [SUPPORT]})
    settings = load_settings()
    assert [p.id for p in settings.providers] == ["upstream"]
    assert settings.providers[0].base_url == "http://127.0.0.1:9100/v1"
    assistant = settings.assistants[0]
    assert (assistant.id, assistant.provider, assistant.max_context_tokens) == (
        "support",
        "upstream",
        3000,
    )


def test_guards_are_seeded_on_for_engines_outside_the_deployment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = {**SUPPORT, "id": "offline", "provider": "local", "model": "smollm2"}
    named = {**SUPPORT, "id": "named", "guards": {"pii": "block"}}
    off = {**SUPPORT, "id": "off", "guards": {"pii": "off", "injection": "off"}}
    providers = [UPSTREAM, {"id": "local", "type": "local"}]
    assistants = [SUPPORT, local, named, off]
    write_config(tmp_path, monkeypatch, {"providers": providers, "assistants": assistants})
    guards = {a.id: (a.guards.pii, a.guards.injection) for a in load_settings().assistants}
    assert guards == {
        "support": ("mask", "flag"),  # an OpenAI-compatible engine: data leaves the building
        "offline": ("off", "off"),  # the bundled model
        "named": ("block", "off"),  # guards named: exactly as given
        "off": ("off", "off"),
    }


def test_the_bundled_assistants_have_a_fallback_answer_and_no_guards() -> None:
    for assistant in load_settings().assistants:
        assert assistant.fallback_answer
        assert (assistant.guards.pii, assistant.guards.injection) == ("off", "off")


def test_environment_variables_win_over_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(
        tmp_path,
        monkeypatch,
        {"database_url": "sqlite+aiosqlite:///from-file.db", "max_content_chars": 10},
    )
    monkeypatch.setenv("CHATGATE_DATABASE_URL", "sqlite+aiosqlite:///from-env.db")
    settings = load_settings()
    assert settings.database_url == "sqlite+aiosqlite:///from-env.db"
    assert settings.max_content_chars == 10


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"providers": [UPSTREAM], "assistants": [{**SUPPORT, "provider": "nowhere"}]},
            "names unknown provider 'nowhere'",
        ),
        (
            {"providers": [{**UPSTREAM, "type": "bard"}], "assistants": [SUPPORT]},
            "providers.0.type",
        ),
        (
            {"providers": [{**UPSTREAM, "base_url": None}], "assistants": [SUPPORT]},
            "needs a base_url",
        ),
        (
            {"providers": [UPSTREAM, UPSTREAM], "assistants": [SUPPORT]},
            "provider ids must be unique",
        ),
        (
            {"providers": [UPSTREAM], "assistants": [SUPPORT, SUPPORT]},
            "assistant ids must be unique",
        ),
        (
            {"providers": [UPSTREAM], "assistants": [{**SUPPORT, "max_answer_tokens": 3000}]},
            "max_answer_tokens must be below max_context_tokens",
        ),
        (
            {"providers": [UPSTREAM], "assistants": [{**SUPPORT, "id": "Has Spaces"}]},
            "assistants.0.id",
        ),
        ({"providers": [UPSTREAM], "assistants": []}, "at least one assistant"),
        ({"auth_mode": "jwt"}, "auth mode jwt needs CHATGATE_JWT_SECRET"),
        ({"auth_mode": "sometimes"}, "auth_mode"),
    ],
)
def test_bad_configuration_is_one_readable_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: dict[str, Any], expected: str
) -> None:
    write_config(tmp_path, monkeypatch, data)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith("invalid configuration:")
    assert expected in message
    assert "Traceback" not in message and "pydantic" not in message.lower()


def test_a_short_jwt_secret_is_refused_without_being_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATGATE_AUTH_MODE", "jwt")
    monkeypatch.setenv("CHATGATE_JWT_SECRET", "hunter2-short")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "at least 32 characters" in str(caught.value)
    assert "hunter2-short" not in str(caught.value)


def test_the_jwt_secret_never_shows_in_a_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "s" * 40
    monkeypatch.setenv("CHATGATE_AUTH_MODE", "jwt")
    monkeypatch.setenv("CHATGATE_JWT_SECRET", secret)
    monkeypatch.setenv("CHATGATE_JWT_AUDIENCE", "chatgate")
    settings = load_settings()
    assert settings.jwt_secret is not None and settings.jwt_secret.get_secret_value() == secret
    assert secret not in repr(settings) and secret not in str(settings.model_dump())


def test_jwt_mode_checks_the_audience_unless_told_not_to(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATGATE_AUTH_MODE", "jwt")
    monkeypatch.setenv("CHATGATE_JWT_SECRET", "s" * 40)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "CHATGATE_JWT_AUDIENCE" in str(caught.value)
    assert "CHATGATE_JWT_VERIFY_AUDIENCE=false" in str(caught.value)
    monkeypatch.setenv("CHATGATE_JWT_AUDIENCE", "chatgate")
    settings = load_settings()
    assert (settings.jwt_audience, settings.jwt_verify_audience) == ("chatgate", True)
    monkeypatch.setenv("CHATGATE_JWT_VERIFY_AUDIENCE", "false")
    with pytest.raises(ConfigError, match="choose one"):
        load_settings()
    monkeypatch.delenv("CHATGATE_JWT_AUDIENCE")
    assert load_settings().jwt_verify_audience is False
    # Mode none needs neither.
    monkeypatch.setenv("CHATGATE_AUTH_MODE", "none")
    monkeypatch.delenv("CHATGATE_JWT_VERIFY_AUDIENCE")
    assert load_settings().jwt_audience is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [("providers: [unclosed", "is not valid YAML"), ("- just\n- a list\n", "must hold a mapping")],
)
def test_a_config_file_that_is_not_a_mapping_of_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, expected: str
) -> None:
    write_config(tmp_path, monkeypatch, text)
    with pytest.raises(ConfigError, match=expected):
        load_settings()


def test_a_missing_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATGATE_CONFIG", str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings()


def test_an_api_key_variable_that_is_not_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UNSET_KEY_FOR_TEST", raising=False)
    provider = ProviderConfig(**{**UPSTREAM, "api_key_env": "UNSET_KEY_FOR_TEST"})
    with pytest.raises(ConfigError, match="UNSET_KEY_FOR_TEST is not set"):
        provider.api_key()
    monkeypatch.setenv("UNSET_KEY_FOR_TEST", "sk-set")
    assert provider.api_key() == "sk-set"
    assert ProviderConfig(id="local", type="local").api_key() is None


def test_settings_can_be_built_in_code() -> None:
    settings = Settings(database_url="postgresql+asyncpg://db/chatgate")
    assert not settings.is_sqlite
