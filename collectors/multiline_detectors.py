"""Built-in multiline detectors: does a line continue the record a stack trace or panic began?

Each detector looks at the open record's state (what kind of block it is in) and the next line.
They follow what the runtimes print by default:
- Java: `\\tat com.x.Y.m(Y.java:42)`, `Caused by: ...`, `\\t... 12 more`, `Suppressed: ...`,
  `... 3 common frames omitted`;
- Python: `Traceback (most recent call last):`, indented `File "..."` and source lines, the final
  `ValueError: ...` line, and chained exceptions ("During handling of the above exception, another
  exception occurred:" / "The above exception was the direct cause of the following exception:");
- Go: `panic: ...` or `fatal error: ...` then blank lines, `goroutine N [state]:` blocks, frames
  `pkg.fn(...)` with `\\t/path/file.go:12 +0x1d`, `created by ...`, `exit status 2`;
- Node.js: `    at fn (file.js:1:2)` frames, the `^` marker under the throwing line, `[cause]:` and
  `Node.js v20.10.0`.
"""

from __future__ import annotations

import re

# A line can only match if its first character can begin one of the alternatives: the lookahead fails a
# JSON line (`{`) or `2025-06-10 INFO ...` at once instead of trying every alternative (twice as fast
# for them), and a tab, which most frames begin with, is tried first (only whether it matches is used;
# tests/unit/collectors/test_multiline_batch.py checks the decisions are those of the plain alternation).
JAVA_FIRST = r"(?=[\sCSa-z_$])"
_JAVA = re.compile(r"^" + JAVA_FIRST + r"(?:\t|\s+at |\s*Caused by: |\s+\.\.\. \d+ (?:more|common frames omitted)"
                   r"|\s*Suppressed: |(?:[a-z_$][\w$]*\.)+[A-Z][\w$]*(?:Exception|Error|Throwable)(?::|$))")
JAVA_CONTINUATION = _JAVA  # the java detector alone keeps no state: one C call (collectors/multiline.py)
_PY_START = "Traceback (most recent call last):"
_PY_CHAIN = ("During handling of the above exception, another exception occurred:",
             "The above exception was the direct cause of the following exception:")
_PY_EXCEPTION = re.compile(r"^[\w.]+(?:Error|Exception|Warning|Exit|Interrupt|Iteration|Group)\b[^\n]*$|^[\w.]+: ")
_GO_START = re.compile(r"^(?:panic: |fatal error: |runtime: )")
_GO_BODY = re.compile(r"^(?:$|\s|goroutine \d+ \[|created by |exit status \d+|\[signal |[\w./*()\[\]-]+\(.*\)$|"
                      r"panic: |\s*\[recovered\]|runtime\.|main\.)")
NODE_FIRST = r"(?=[\s\[N])"
_NODE = re.compile(r"^" + NODE_FIRST + r"(?:\s+at |\s+\^+\s*$|\s*\[cause\]: |Node\.js v\d)")
# a Node.js crash: `/app/index.js:12` (or an `Error: msg` line) opens it; its source line, blank lines,
# the error line, frames, an error object's fields and `}` follow
_NODE_START = re.compile(r"^(?:(?:/|[A-Za-z]:\\|node:|file://)\S*:\d+$|(?:\w+\.)*\w*(?:Error|Exception)(?::|$))")
_NODE_BODY = re.compile(r"^(?:$|\s|\}|(?:\w+\.)*\w*(?:Error|Exception)(?::|$| \{)|Node\.js v\d)")

DETECTOR_NAMES = ("java", "python", "go", "nodejs")


class Block:
    """What the open record is, for the detectors: none yet, a Python traceback, or a Go panic."""

    __slots__ = ("go", "node", "python", "python_done")

    def __init__(self) -> None:
        self.python = False  # inside a traceback (its frames and final exception line)
        self.python_done = False  # the final exception line was seen: only a chain or blank may follow
        self.go = False
        self.node = False

    def note_first(self, line: str, detectors: frozenset[str]) -> None:
        """The record's first line may itself open a block."""
        if "python" in detectors and line.startswith(_PY_START):
            self.python = True
        if "go" in detectors and _GO_START.match(line):
            self.go = True
        if "nodejs" in detectors and _NODE_START.match(line):
            self.node = True


def continues(line: str, block: Block, detectors: frozenset[str]) -> bool:
    """Whether `line` continues the open record under the built-in `detectors`; updates `block`."""
    if "python" in detectors and _python(line, block):
        return True
    if "go" in detectors and block.go and _GO_BODY.match(line):
        return True
    if "java" in detectors and _JAVA.match(line):
        return True
    if "nodejs" in detectors:
        if _NODE.match(line):
            return True
        return block.node and _NODE_BODY.match(line) is not None
    return False


def _python(line: str, block: Block) -> bool:
    if line.startswith(_PY_START):  # logging.exception(): the traceback follows the message line
        block.python, block.python_done = True, False
        return True
    if not block.python:
        return False
    if line in _PY_CHAIN:
        block.python_done = False
        return True
    if line == "":
        return True
    if block.python_done:
        block.python = False
        return False
    if line.startswith(" "):
        return True
    if _PY_EXCEPTION.match(line):
        block.python_done = True
        return True
    block.python = False
    return False
