# One image for the worker and both collectors (the command picks the process):
#   worker:          sh -c "logweave prepare && exec faust -A app worker -l info --web-port 6066"
#   file collector:  logweave collect files
#   pod collector:   logweave collect pods
# Multi-stage: the build stage installs into a virtualenv; the runtime stage copies only that
# virtualenv onto a slim base and runs as an unprivileged user (uid 10001, as the manifests expect).
#
# Supply chain (docs/security.md): the base is pinned by digest (the multi-architecture index of
# python:3.11-slim-bookworm as resolved by a public build on 2026-09-05, Python 3.11.16; refresh it
# with `docker buildx imagetools inspect python:3.11-slim-bookworm`), and every Python package comes
# from requirements.lock with its hashes (`make lock`); nothing is resolved at build time. The dev
# extra (the embedded broker) is not installed.

FROM python:3.11-slim-bookworm@sha256:528257d48c1da0dcecc2e725d1ae34498d60c965f1241e39cd6a85a8859bdf84 AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# gcc builds the parse stage's C scan (agents/_linescan.c); the runtime stage needs no compiler.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/logweave
WORKDIR /src
COPY requirements.lock ./
RUN /opt/logweave/bin/pip install --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml setup.py README.md ./
COPY core ./core
COPY kafka_io ./kafka_io
COPY sinks ./sinks
COPY collectors ./collectors
COPY tables ./tables
COPY agents ./agents
COPY app ./app
COPY query ./query
COPY commands ./commands
RUN /opt/logweave/bin/pip install --no-deps --no-build-isolation . \
 && /opt/logweave/bin/pip check

FROM python:3.11-slim-bookworm@sha256:528257d48c1da0dcecc2e725d1ae34498d60c965f1241e39cd6a85a8859bdf84 AS runtime
RUN groupadd --gid 10001 logweave \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/logweave --shell /usr/sbin/nologin logweave \
 && mkdir -p /var/lib/logweave \
 && chown logweave:logweave /var/lib/logweave
COPY --from=build /opt/logweave /opt/logweave
ENV PATH=/opt/logweave/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    LOGWEAVE_WORKER__DATA_DIR=/var/lib/logweave \
    LOGWEAVE_SINKS__FILE__DIRECTORY=/var/lib/logweave/out
WORKDIR /var/lib/logweave
USER 10001:10001
EXPOSE 6066
CMD ["sh", "-c", "logweave prepare && exec faust -A app worker -l info --web-port 6066"]
