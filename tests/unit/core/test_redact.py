"""Secrets are masked in URLs, in named values, in configuration dumps and in log records."""

from __future__ import annotations

import logging

import pytest

from core import redact
from core.redact import MASK, install_log_redaction, is_secret_name, mask_data, mask_text


@pytest.mark.parametrize(("text", "expected"), [
    ("http://root:hunter2@etcd:2379", f"http://root:{MASK}@etcd:2379"),
    ("no etcd at https://u:p%40ss@h1:1, http://h2:2 (refused)",
     f"no etcd at https://u:{MASK}@h1:1, http://h2:2 (refused)"),
    ("sasl_ssl://svc:tok@kafka:9093/x", f"sasl_ssl://svc:{MASK}@kafka:9093/x"),
    ("https://user@host/path", "https://user@host/path"),  # no password: nothing to hide
    ("https://h/?x=1&token=abc123&y=2", f"https://h/?x=1&token={MASK}&y=2"),
    ("password=hunter2 user=root", f"password={MASK} user=root"),
    ("{'api_key': 'k-123', 'url': 'u'}", f"{{'api_key': '{MASK}', 'url': 'u'}}"),
    ('{"aws_secret_access_key": "abc"}', f'{{"aws_secret_access_key": "{MASK}"}}'),
    ("plain text: nothing here", "plain text: nothing here"),
])
def test_secrets_inside_text_are_masked(text: str, expected: str) -> None:
    assert mask_text(text) == expected
    assert mask_text(expected) == expected  # masking twice changes nothing


@pytest.mark.parametrize(("name", "secret"), [
    ("password", True), ("sasl_password", True), ("api_key", True), ("aws_secret_access_key", True),
    ("aws_session_token", True), ("token", True), ("password_file", False), ("key_file", False),
    ("username", False), ("sse_kms_key_id", False), ("url", False),
])
def test_secret_names(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_nested_data_masks_secret_fields_and_url_credentials_but_keeps_unset_ones() -> None:
    data = {"sinks": {"etcd": {"servers": "http://a:b@h:1", "password": "pw", "username": "root"},
                      "elasticsearch": {"api_key": None, "url": "https://h"}}, "list": ["x://u:p@h"]}
    assert mask_data(data) == {"sinks": {"etcd": {"servers": f"http://a:{MASK}@h:1", "password": MASK,
                                                  "username": "root"},
                                         "elasticsearch": {"api_key": None, "url": "https://h"}},
                               "list": [f"x://u:{MASK}@h"]}


def test_log_records_are_masked_whoever_logs_them(caplog: pytest.LogCaptureFixture) -> None:
    install_log_redaction()
    install_log_redaction()  # idempotent
    logger = logging.getLogger("some.library")
    with caplog.at_level(logging.INFO):
        logger.info("connecting to %s", "https://svc:s3cr3t@search:9200")
        try:
            raise RuntimeError("refused by http://root:hunter2@etcd:2379")
        except RuntimeError:
            logger.exception("sink failed")
    assert "s3cr3t" not in caplog.text and "hunter2" not in caplog.text
    assert f"https://svc:{MASK}@search:9200" in caplog.text and f"http://root:{MASK}@etcd:2379" in caplog.text


def test_a_record_is_masked_when_formatted_not_when_made(monkeypatch: pytest.MonkeyPatch) -> None:
    """A record no handler takes (a debug call under a root logger at DEBUG) costs no masking: faust
    and aiokafka make thousands a second, some quoting whole Kafka records."""
    install_log_redaction()
    calls: list[str] = []
    real_mask = redact.mask_text
    monkeypatch.setattr(redact, "mask_text", lambda text: calls.append(text) or real_mask(text))
    record = logging.getLogRecordFactory()("lib", logging.DEBUG, __file__, 1, "dsn %s", ("http://u:pw@h:1",), None)
    assert calls == []
    assert record.getMessage() == f"dsn http://u:{MASK}@h:1"
    record.msg, record.args = "rewritten by a filter: %s", ("token=abc",)
    assert record.getMessage() == f"rewritten by a filter: token={MASK}"


def test_records_of_another_factorys_class_are_masked_when_made(monkeypatch: pytest.MonkeyPatch) -> None:
    class Custom(logging.LogRecord):
        pass

    before = logging.getLogRecordFactory()
    monkeypatch.setattr(redact, "_installed", set())
    logging.setLogRecordFactory(Custom)
    try:
        install_log_redaction()
        record = logging.getLogRecordFactory()("lib", logging.INFO, __file__, 1, "dsn %s", ("http://u:pw@h:1",), None)
    finally:
        logging.setLogRecordFactory(before)
    assert type(record) is Custom
    assert record.msg == f"dsn http://u:{MASK}@h:1" and record.args is None
