"""Bearer tokens: stored as sha256 digests, a presented token is ok, missing or wrong."""

from __future__ import annotations

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


def test_settings_take_digests_and_refuse_a_plain_token() -> None:
    worker = load_settings(environ={"LOGWEAVE_WORKER__API_TOKENS": ",".join(DIGESTS)}).worker
    assert worker.api_tokens == DIGESTS and worker.web_host == "127.0.0.1"
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"LOGWEAVE_WORKER__API_TOKENS": "my-plain-token"})
    assert "worker.api_tokens" in str(caught.value) and "my-plain-token" not in str(caught.value)


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
