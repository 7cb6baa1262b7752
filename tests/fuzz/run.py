"""`python -m tests.fuzz.run TARGET --seconds N [--sanitized DIR]`: one atheris run of one target.

Under `make fuzz` this process has the ASan runtime preloaded and loads the sanitized builds from
DIR in place of the installed extensions. libFuzzer prints its statistics (inputs run) at the end and
exits non-zero on a finding, writing the input as `crash-*` beside the corpus.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import ModuleType


def native_modules(sanitized: Path | None) -> dict[str, ModuleType]:
    if sanitized is None:
        from agents import _fieldscan, _linescan
        from collectors.files import _filescan
        from collectors.intake import _intakefast
        from tables import _tracefold

        return {"agents._linescan": _linescan, "tables._tracefold": _tracefold,
                "collectors.intake._intakefast": _intakefast, "agents._fieldscan": _fieldscan,
                "collectors.files._filescan": _filescan}
    from tests.fuzz.sanitized import SOURCES, library_path, load

    return {name: load(name, library_path(name, sanitized)) for name in SOURCES}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("target")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--sanitized", type=Path, default=None)
    parser.add_argument("--corpus", type=Path, default=Path("build/fuzz/corpus"))
    args = parser.parse_args()

    import atheris

    with atheris.instrument_imports(include=["agents", "tables", "collectors", "core"]):
        from tests.fuzz.targets import NATIVE_OF, TARGETS, seeds
    natives = native_modules(args.sanitized)
    native = natives[NATIVE_OF.get(args.target, "agents._linescan")]
    target = TARGETS[args.target]

    def one_input(data: bytes) -> None:
        target(data, native)

    corpus = args.corpus / args.target
    corpus.mkdir(parents=True, exist_ok=True)
    for n, seed in enumerate(seeds()):
        (corpus / f"seed-{n}").write_bytes(seed)
    atheris.Setup([sys.argv[0], f"-max_total_time={args.seconds}", "-rss_limit_mb=4096", "-timeout=20",
                   f"-artifact_prefix={corpus}/", "-print_final_stats=1", str(corpus)], one_input)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main())
