"""Tokens map to tenants by digest; settings refuse clear-text tokens and anonymous public binds."""

from __future__ import annotations

import hashlib

import pytest

from collectors.intake.auth import AuthError, TenantDirectory
from core.errors import ConfigError
from core.settings import load_settings


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def test_bearer_tokens_resolve_to_their_tenant() -> None:
    settings = load_settings(environ={}, intake={"tenants": [
        {"name": "a", "token_sha256": [digest("t1"), digest("t2")], "rate_lines": 5},
        {"name": "b", "token_sha256": digest("t3")}]})
    directory = TenantDirectory(settings.intake)
    assert directory.bearer("Bearer t2").tenant == "a" and directory.bearer("Bearer t2").rate_lines == 5
    assert directory.bearer("bearer t3").tenant == "b"
    assert directory.bearer("Bearer t1").credential != directory.bearer("Bearer t2").credential
    for header in (None, "", "Bearer t4", "Basic t1", "Bearer "):
        with pytest.raises(AuthError) as refused:
            directory.bearer(header)
        assert "t1" not in str(refused.value)


def test_without_tenants_everyone_is_anonymous() -> None:
    directory = TenantDirectory(load_settings(environ={}).intake)
    assert directory.bearer(None).tenant == directory.bearer("Bearer x").tenant == "anonymous"


def test_settings_refuse_clear_tokens_and_open_public_listeners() -> None:
    with pytest.raises(ConfigError, match=r"intake.tenants.0.token_sha256.*sha256sum") as refused:
        load_settings(environ={}, intake={"tenants": [{"name": "a", "token_sha256": ["clear-token"]}]})
    assert "clear-token" not in str(refused.value)
    with pytest.raises(ConfigError, match=r"intake.*allow_anonymous"):
        load_settings(environ={}, intake={"host": "0.0.0.0"})
    with pytest.raises(ConfigError, match="unique") as refused:
        load_settings(environ={}, intake={"tenants": [{"name": "a", "forward_shared_key": "k-9"}, {"name": "a"}]})
    assert "k-9" not in str(refused.value)
    assert load_settings(environ={}, intake={"host": "0.0.0.0", "allow_anonymous": True}).intake.host == "0.0.0.0"


def test_tenants_from_an_environment_variable_and_shared_keys_never_printed() -> None:
    from commands.cli import masked

    settings = load_settings(environ={"LOGWEAVE_INTAKE__TENANTS": '[{"name": "a", "forward_shared_key": "k1"}]'})
    assert TenantDirectory(settings.intake).shared_keys()[0][0] == "k1"
    assert "k1" not in str(masked(settings)) and "k1" not in repr(settings)
