"""Secrets masked wherever Logweave shows text: configuration dumps, error lines and log records.

One module so every place masks the same things the same way:
- values of settings whose name says they are secret (`password`, `api_key`, `*secret*`, `*token*`,
  ...; a `*_file` path to a secret is not itself secret and stays visible);
- the password in a URL's user info (`scheme://user:password@host`), anywhere in a text;
- the value of a secret-named query parameter or `name=value` pair (`?token=...`, `password=...`).

`install_log_redaction()` wraps the log record factory, so every record of the process, whoever
logs it and whatever handler prints it, is masked when it is formatted (`MaskedLogRecord`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

MASK = "********"
_SECRET_WORDS = ("password", "passwd", "secret", "token", "api_key", "apikey", "credential", "private_key",
                 "signature", "session_key")
_NOT_SECRET_SUFFIXES = ("_file", "_path", "_dir", "_id_file")
_URL_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+._\-]*://[^\s/:@'\"]*):(?P<secret>[^\s/@'\"]*)@")
_NAMED_VALUE = re.compile(r"(?P<head>\b(?P<name>[A-Za-z_\-]*(?:" + "|".join(_SECRET_WORDS).replace("_", "[_-]?")
                          + r")[A-Za-z_\-]*)(?:=|\":\s*\"|':\s*'|: ))(?P<secret>[^\s&,'\"}]+)", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    """Whether a setting or field called `name` holds a secret (its value is never shown)."""
    lowered = name.lower().replace("-", "_")
    if lowered.endswith(_NOT_SECRET_SUFFIXES):
        return False
    return any(word in lowered for word in _SECRET_WORDS)


def mask_text(text: str) -> str:
    """`text` with URL passwords and secret-named `name=value` values replaced by MASK."""
    if ":" not in text and "=" not in text:
        return text
    text = _URL_USERINFO.sub(lambda m: f"{m['head']}:{MASK}@" if m["secret"] else m[0], text)
    return _NAMED_VALUE.sub(lambda m: m["head"] + MASK if m["secret"] != MASK else m[0], text)


def mask_value(name: str, value: Any) -> Any:
    """A value as it may be shown: MASK under a secret name, URL credentials masked inside text."""
    if is_secret_name(name) and value not in (None, "", [], {}):
        return MASK
    return mask_data(value)


def mask_data(data: Any) -> Any:
    """Plain data (dicts, lists, strings) with every secret masked, for printing or logging."""
    if isinstance(data, dict):
        return {key: mask_value(str(key), value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [mask_data(item) for item in data]
    if isinstance(data, str):
        return mask_text(data)
    return data


class MaskedLogRecord(logging.LogRecord):
    """A log record whose message is masked when it is formatted, not when it is made: a record no
    handler takes (a debug call below every handler's level, of which faust and aiokafka make thousands
    a second when the root logger is at DEBUG) costs no formatting and no masking. Masked on every call,
    so a filter that rewrites `msg` and `args` after the record was made is masked too."""

    def getMessage(self) -> str:
        return mask_text(super().getMessage())


_installed: set[str] = set()


def install_log_redaction() -> None:
    """Mask every log record of this process from now on (idempotent)."""
    if "factory" in _installed:
        return
    _installed.add("factory")
    previous: Callable[..., logging.LogRecord] = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if type(record) is logging.LogRecord:
            record.__class__ = MaskedLogRecord  # masked when a handler formats it
        else:  # another factory's class: masked now, as it cannot be told to mask later
            try:
                message = record.getMessage()
            except Exception:  # a malformed record: leave it to logging's own error report
                return record
            masked = mask_text(message)
            if masked != message:
                record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = mask_text(logging.Formatter().formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(factory)
