"""Names of the built-in parsers, which settings may name without defining them.

The parsers themselves live in agents/parsers/ (a layer above); settings validation needs only
their names, and a test holds this list equal to the library there.
"""

from __future__ import annotations

from typing import Final

BUILTIN_PARSERS: Final = (
    "json", "logfmt",
    # grok library (agents/parsers/library.py)
    "nginx", "apache", "syslog", "klog", "log4j", "python", "go", "java",
)
