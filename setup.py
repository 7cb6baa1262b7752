"""Only the C extension lives here; everything else is in pyproject.toml.

agents/_linescan.c is the parse stage's per-line loop (agents/line_parser.py). It needs a C
compiler and the Python headers at install time (gcc and python3-dev on Debian).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("agents._linescan", ["agents/_linescan.c"], extra_compile_args=["-O2", "-std=c11"])])
