"""Only the C extension lives here; everything else is in pyproject.toml.

agents/_linescan.c is the parse stage's per-line loop (agents/line_parser.py), tables/_tracefold.c
the group stage's (tables/trace_state.py). They need a C compiler and the Python headers at install
time (gcc and python3-dev on Debian); without them the Python references run instead.
"""

from setuptools import Extension, setup

FLAGS = ["-O2", "-std=c11"]
setup(ext_modules=[Extension("agents._linescan", ["agents/_linescan.c"], extra_compile_args=FLAGS),
                   Extension("tables._tracefold", ["tables/_tracefold.c"], extra_compile_args=FLAGS)])
