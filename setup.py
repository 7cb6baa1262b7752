"""Only the optional C extensions live here; everything else is in pyproject.toml.

agents/_linescan.c is the parse stage's per-line loop (agents/line_parser.py), tables/_tracefold.c
the group stage's (tables/trace_state.py), collectors/intake/_intakefast.c the intake's (Fluent forward
records and RFC 5424 syslog frames to raw lines), agents/_fieldscan.c reads a number from a line for
metrics from logs (agents/log_metrics.py), collectors/pods/_podscan.c turns the pod collector's read
blocks into raw lines (collectors/pods/blockscan.py), sinks/_marks.c is the appending sinks' per-stream
marks check (sinks/stream_marks.py), sinks/_segment.c picks the lines the file and object-store sinks write
(sinks/packed.py), kafka_io/_murmur2.c hashes record keys to partitions (kafka_io/key_partitions.py),
collectors/files/_filescan.c the file collector's CRI lines
(collectors/files/tailer.py). The parse scan also turns logfmt lines into their records' JSON
(agents/parsers/_logfmt.h, included by agents/_linescan.c). All are optional: without a C compiler and the Python
headers (gcc and python3-dev on Debian) the build prints a warning and installs the Python
reference paths, which give the same answers about three times slower (core/native.py says which
path a process runs; LOGWEAVE_PURE=1 forces the Python paths).
"""

from setuptools import Extension, setup

FLAGS = ["-O2", "-std=c11"]
JSON_TEXT = ["core/_jsontext.h"]  # included by every C writer of JSON strings (the two headers below, the intake)
CHUNK_JSON = ["core/_chunkjson.h", *JSON_TEXT]  # included by the two extensions that read parsed chunks' bytes
WIRE_LINES = ["core/_wirelines.h", *JSON_TEXT]  # included by the two collectors' scans writing raw lines' encoding
setup(ext_modules=[
    Extension("agents._linescan", ["agents/_linescan.c"],
              depends=[*CHUNK_JSON, "agents/_sinksplice.h", "agents/_rawsplit.h", "agents/parsers/_logfmt.h"],
              extra_compile_args=FLAGS,
              optional=True),
    Extension("tables._tracefold", ["tables/_tracefold.c"], depends=[*CHUNK_JSON, "tables/_newstates.h"],
              extra_compile_args=FLAGS, optional=True),
    Extension("collectors.intake._intakefast", ["collectors/intake/_intakefast.c"], depends=JSON_TEXT,
              extra_compile_args=FLAGS, optional=True),
    Extension("agents._fieldscan", ["agents/_fieldscan.c"], extra_compile_args=FLAGS, optional=True),
    Extension("collectors.pods._podscan", ["collectors/pods/_podscan.c"], depends=WIRE_LINES, extra_compile_args=FLAGS,
              optional=True),
    Extension("sinks._marks", ["sinks/_marks.c"], extra_compile_args=FLAGS, optional=True),
    Extension("sinks._segment", ["sinks/_segment.c"], extra_compile_args=FLAGS, optional=True),
    Extension("kafka_io._murmur2", ["kafka_io/_murmur2.c"], extra_compile_args=FLAGS, optional=True),
    Extension("collectors.files._filescan", ["collectors/files/_filescan.c"], depends=WIRE_LINES,
              extra_compile_args=FLAGS, optional=True),
])
