"""Bearer tokens: stored as sha256 digests, a presented token is ok, missing or wrong; one setting
(auth.token_hashes) lists them for every route that returns log content, and the two earlier names
(worker.api_tokens, api.token_hashes) are still read into it with a deprecation warning."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from core.api_tokens import check_bearer, hash_token
from core.errors import ConfigError
from core.settings import load_settings

DIGESTS = [hash_token("first"), hash_token("second")]


@pytest.mark.parametrize(("header", "verdict"), [
    ("Bearer first", "ok"), ("bearer second", "ok"), ("Bearer  second ", "ok"),
    (None, "missing"), ("", "missing"), ("Basic Zmlyc3Q=", "missing"), ("Bearer ", "missing"),
    ("Bearer third", "wrong"), ("Bearer " + DIGESTS[0], "wrong"),  # the digest itself is not a token
])
def test_verdicts(header: str | None, verdict: str) -> None:
    assert check_bearer(header, DIGESTS) == verdict


def test_auth_token_hashes_take_digests_and_refuse_a_plain_token_without_echoing_it(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="core.settings"):
        settings = load_settings(environ={"LOGWEAVE_AUTH__TOKEN_HASHES": ",".join(d.upper() for d in DIGESTS)})
    assert settings.auth.token_hashes == DIGESTS and settings.worker.web_host == "127.0.0.1"
    assert "deprecated" not in caplog.text
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"LOGWEAVE_AUTH__TOKEN_HASHES": f"{DIGESTS[0]},my-plain-token"})
    assert "auth.token_hashes" in str(caught.value) and "entry 1 is not a sha256 hex digest" in str(caught.value)
    assert "my-plain-token" not in str(caught.value)


@pytest.mark.parametrize(("variable", "old_name"), [("LOGWEAVE_WORKER__API_TOKENS", "worker.api_tokens"),
                                                    ("LOGWEAVE_API__TOKEN_HASHES", "api.token_hashes")])
def test_an_earlier_name_is_read_into_auth_token_hashes_with_a_warning_naming_the_new_setting(
        variable: str, old_name: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="core.settings"):
        settings = load_settings(environ={variable: DIGESTS[1], "LOGWEAVE_AUTH__TOKEN_HASHES": DIGESTS[0]})
    assert settings.auth.token_hashes == DIGESTS  # one list: both tokens guard every content route
    warnings = [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()]
    assert len(warnings) == 1, caplog.text
    assert warnings[0].startswith(f"{old_name} ({variable}) is deprecated: use auth.token_hashes "
                                  "(LOGWEAVE_AUTH__TOKEN_HASHES)"), warnings[0]
    with pytest.raises(ConfigError) as caught:  # still validated under its own name
        load_settings(environ={variable: "my-plain-token"})
    assert old_name in str(caught.value) and "my-plain-token" not in str(caught.value)


def test_the_earlier_names_from_a_config_file_are_merged_once(tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    config = tmp_path / "logweave.yaml"
    config.write_text(f"worker:\n  api_tokens: [{DIGESTS[0]}]\napi:\n  token_hashes: [{DIGESTS[0]}, {DIGESTS[1]}]\n")
    with caplog.at_level(logging.WARNING, logger="core.settings"):
        settings = load_settings(config, environ={})
    assert settings.auth.token_hashes == DIGESTS
    assert f"worker.api_tokens (config file {config}) is deprecated" in caplog.text
    assert f"api.token_hashes (config file {config}) is deprecated" in caplog.text


def test_web_tls_needs_certificate_and_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"web_cert_file and worker\.web_key_file .* go together"):
        load_settings(environ={"LOGWEAVE_WORKER__WEB_CERT_FILE": __file__})
    with pytest.raises(ConfigError, match=r"^invalid setting worker.web_key_file .* no such file$"):
        load_settings(environ={"LOGWEAVE_WORKER__WEB_CERT_FILE": __file__,
                               "LOGWEAVE_WORKER__WEB_KEY_FILE": str(tmp_path / "absent.key")})


def test_hash_token_command_reads_stdin() -> None:
    result = subprocess.run([sys.executable, "-m", "commands.cli", "hash-token"], input="first\n",
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == DIGESTS[0]
