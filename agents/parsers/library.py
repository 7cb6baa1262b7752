"""The built-in text parsers: grok patterns for the text logs common in clusters.

Each built-in is a list of (grok expression, how to read its time, how to read its level), tried in
order. Captures use canonical names (`time`, `level`, `message`, `trace_id`, `service`), which the
parse stage renames to the first configured alias of each field. Corpora of real-shaped lines for
every pattern are in tests/data/parsers/.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

LevelRule = Callable[[dict[str, Any]], None]

EXTRA_PATTERNS: dict[str, str] = {
    "HTTP_COMBINED": r"%{HTTP_COMBINED_FIELDS}\s*$",
    # the combined format's fields, for `log_format`s that append their own (`%{HTTP_COMBINED_FIELDS} %{...}`)
    "HTTP_COMBINED_FIELDS": r'%{IPORHOST:client_ip} %{HTTPDUSER:ident} %{HTTPDUSER:user} \[%{HTTPDATE:time}\] '
                     r'"(?:%{WORD:method} %{NOTSPACE:path}(?: HTTP/%{NUMBER:http_version})?|%{QUOTED_BODY:request})" '
                     r'%{INT:status:int} (?:%{INT:bytes:int}|-)'
                     r'(?: "%{QUOTED_BODY:referrer}" "%{QUOTED_BODY:user_agent}")?(?: "%{QUOTED_BODY:forwarded_for}")?',
    # the inside of a quoted field: nginx writes a `"` in a value as \x22 and apache as \", so a value never
    # holds a bare quote; one pass with no backtracking (a lazy `.*?` retried at every character cost a
    # third of the nginx line's parse time)
    "QUOTED_BODY": r'[^"\\]*(?:\\.[^"\\]*)*',
    "SYSLOG5424": r"<%{NONNEGINT:priority:int}>%{NONNEGINT:syslog_version} %{TIMESTAMP_ISO8601:time} "
                  r"%{NOTSPACE:host} %{NOTSPACE:app} %{NOTSPACE:procid} %{NOTSPACE:msgid} "
                  r"(?:-|%{SD:structured_data})(?: %{GREEDYDATA:message})?$",
    "SD": r"(?:\[[^\]]*\])+",
    "SYSLOG3164": r"(?:<%{NONNEGINT:priority:int}>)?%{SYSLOGTIMESTAMP:time} %{SYSLOGHOST:host} "
                  r"%{PROG:app}(?:\[%{POSINT:pid:int}\])?: %{GREEDYDATA:message}",
    "KLOG": r"%{KLOG_SEVERITY:severity}%{KLOG_TIME:time} +%{INT:thread:int} %{NOTSPACE:caller}\] "
            r"%{GREEDYDATA:message}",
    "KLOG_SEVERITY": r"[IWEF]",
    "KLOG_TIME": r"\d{4} \d{2}:\d{2}:\d{2}\.\d{6}",
    "LOG4J_TIME": r"(?:%{TIMESTAMP_ISO8601}|\d{2}:\d{2}:\d{2}[.,]\d{3})",
    "GO_TIME": r"\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?",
    "JUL_TIME": r"%{MONTH} \d{1,2}, \d{4} \d{1,2}:\d{2}:\d{2} [AP]M",
}

# how the parse stage reads a `time` captured by one of these patterns in a user's grok parser
# (agents/parsers/times.py); ISO 8601 times need nothing
TIME_KIND_OF_PATTERN = {"HTTPDATE": "httpdate", "SYSLOGTIMESTAMP": "syslog", "KLOG_TIME": "klog", "GO_TIME": "go",
                        "JUL_TIME": "jul"}

_KLOG_LEVELS = {"I": "info", "W": "warn", "E": "error", "F": "fatal"}
_SYSLOG_LEVELS = ("fatal", "fatal", "fatal", "error", "warn", "info", "info", "debug")


def _klog_level(record: dict[str, Any]) -> None:
    record["level"] = _KLOG_LEVELS[record.pop("severity")]


def _syslog_level(record: dict[str, Any]) -> None:
    priority = record.get("priority")
    if isinstance(priority, int):
        record["level"] = _SYSLOG_LEVELS[priority % 8]


def _http_level(record: dict[str, Any]) -> None:
    status = record.get("status")
    if isinstance(status, int):
        record["level"] = "error" if status >= 500 else "warn" if status >= 400 else "info"


def _fixed(level: str) -> LevelRule:
    def apply(record: dict[str, Any]) -> None:
        record["level"] = level
    return apply


# name -> [(grok expression, time kind or None for ISO 8601/none, level rule or None)]
BUILTIN_GROK: dict[str, list[tuple[str, str | None, LevelRule | None]]] = {
    "nginx": [("%{HTTP_COMBINED}", "httpdate", _http_level)],
    "apache": [("%{HTTP_COMBINED}", "httpdate", _http_level)],
    "syslog": [("%{SYSLOG5424}", None, _syslog_level), ("%{SYSLOG3164}", "syslog", _syslog_level)],
    "klog": [("%{KLOG}", "klog", _klog_level)],
    "log4j": [  # log4j2's default `%d{HH:mm:ss.SSS} [%t] %-5level %logger{36} - %msg%n`, with or without a date
        (r"%{LOG4J_TIME:time} +\[%{DATA:thread}\] +%{LOGLEVEL:level} +%{JAVACLASS:logger} +- %{GREEDYDATA:message}",
         "timeofday", None),
        # log4j 1.x TTCCLayout `%r [%t] %-5p %c %x - %m%n`
        (r"%{INT:elapsed_ms:int} +\[%{DATA:thread}\] +%{LOGLEVEL:level} +%{JAVACLASS:logger} +(?:%{DATA:ndc} +)?- "
         r"%{GREEDYDATA:message}", None, None),
    ],
    "python": [
        ("%{LOGLEVEL:level}:%{DATA:logger}:%{GREEDYDATA:message}", None, None),  # logging.basicConfig()
        ("%{TIMESTAMP_ISO8601:time} - %{DATA:logger} - %{LOGLEVEL:level} - %{GREEDYDATA:message}", None, None),
        (r"(?P<message>Traceback \(most recent call last\):.*)", None, _fixed("error")),  # uncaught exception
    ],
    "go": [
        (r"(?P<message>(?:panic|fatal error): .*)", None, _fixed("fatal")),  # runtime panic (multiline-joined)
        ("%{GO_TIME:time} %{GREEDYDATA:message}", "go", None),  # the standard `log` package
    ],
    "java": [
        # Spring Boot's console default: `2023-11-14T22:13:20.123Z  INFO 1 --- [app] [main] c.e.App : msg`
        (r"%{TIMESTAMP_ISO8601:time} +%{LOGLEVEL:level} %{INT:pid:int} --- (?:\[%{DATA:service}\] )?"
         r"\[ *%{DATA:thread}\] %{NOTSPACE:logger} +: %{GREEDYDATA:message}", None, None),
        # java.util.logging SimpleFormatter: two lines, joined by the collector's multiline rule
        (r"%{JUL_TIME:time} %{JAVACLASS:logger} %{NOTSPACE:method}\n%{LOGLEVEL:level}: %{GREEDYDATA:message}",
         "jul", None),
        (r'(?P<message>Exception in thread "[^"]*" .*)', None, _fixed("error")),  # uncaught exception
    ],
}
