"""Builds the C extensions with AddressSanitizer and UndefinedBehaviorSanitizer for `make fuzz`.

The installed extensions are built -O2 without checks; a fuzz run loads these instead (by path, in
place of `agents._linescan` and `tables._tracefold`) in a Python started with a sanitizer runtime
preloaded (LD_PRELOAD) and PYTHONMALLOC=malloc, so every Python object is a malloc block with
redzones and an out-of-bounds read or use-after-free in the C code stops the run with a report.
The objects are compiled by gcc with -fsanitize=address,undefined but linked without a runtime: the
preloaded one is atheris's `asan_with_fuzzer.so` (LLVM's ASan with UBSan handlers and libFuzzer in
one), since gcc's libasan beside atheris's libFuzzer breaks the fuzzer's coverage and its C++ throws.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import sysconfig
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
SOURCES = {"agents._linescan": ROOT / "agents" / "_linescan.c", "tables._tracefold": ROOT / "tables" / "_tracefold.c",
           "collectors.intake._intakefast": ROOT / "collectors" / "intake" / "_intakefast.c",
           "agents._fieldscan": ROOT / "agents" / "_fieldscan.c",
           "collectors.files._filescan": ROOT / "collectors" / "files" / "_filescan.c"}
FLAGS = ["-fPIC", "-O1", "-g", "-std=c11", "-fno-omit-frame-pointer", "-fno-sanitize-recover=all",
         "-fsanitize=address,undefined"]


def library_path(module: str, out_dir: Path) -> Path:
    return out_dir / (module.rsplit(".", 1)[1] + str(sysconfig.get_config_var("EXT_SUFFIX")))


def build(out_dir: Path, compiler: str = "gcc") -> dict[str, Path]:
    """Compile the extensions with the sanitizers into `out_dir`; returns module name -> .so path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    include = sysconfig.get_paths()["include"]
    built = {}
    for module, source in SOURCES.items():
        target = library_path(module, out_dir)
        obj = target.with_suffix(".o")
        subprocess.run([compiler, *FLAGS, f"-I{include}", "-c", str(source), "-o", str(obj)], check=True)
        # linked without the sanitizer runtimes: the one preloaded into Python provides them
        subprocess.run([compiler, "-shared", str(obj), "-o", str(target)], check=True)
        built[module] = target
    return built


def load(module: str, path: Path) -> ModuleType:
    """Import the extension at `path` under its package name, without touching the installed one."""
    spec = importlib.util.spec_from_file_location(module, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


if __name__ == "__main__":
    for name, path in build(Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "build" / "fuzz")).items():
        print(f"{name}: {path}")
