"""Builds the one faust App from the settings; agents and web views attach to it.

Kept apart from `app/__init__.py` so importing the package costs nothing until a worker asks for
the App. Static group membership (KIP-345) is on by default: a restarted worker rejoins under the
same instance id at once, which is what a StatefulSet does and what the embedded broker needs.
"""

from __future__ import annotations

import os
import socket
from functools import lru_cache

import faust
from faust.web.base import Web

from core.settings import Settings, load_settings
from kafka_io.kafka_compat import install_idle_fetch_pause


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The worker's settings, loaded once (environment and config file) on first use."""
    return load_settings()


def group_instance_id(settings: Settings) -> str | None:
    """Static membership id: configured, else the pod name (HOSTNAME) plus the web port."""
    if not settings.kafka.static_membership:
        return None
    if settings.kafka.group_instance_id:
        return settings.kafka.group_instance_id
    host = os.environ.get("HOSTNAME") or socket.gethostname()
    return f"{settings.worker.app_id}-{host}-{settings.worker.web_port}"


def create_app(settings: Settings) -> faust.App:
    install_idle_fetch_pause()
    # Logweave serves its own stats page at `/`; faust's production index would shadow it.
    Web.production_blueprints = []
    kafka = settings.kafka
    return faust.App(
        settings.worker.app_id,
        broker=[f"kafka://{server}" for server in kafka.bootstrap_servers],
        store="rocksdb://",
        datadir=str(settings.worker.data_dir),
        autodiscover=False,
        topic_partitions=kafka.partitions,
        topic_replication_factor=kafka.replication_factor,
        topic_allow_declare=True,
        table_standby_replicas=settings.worker.standby_replicas,
        broker_session_timeout=kafka.session_timeout,
        broker_heartbeat_interval=kafka.heartbeat_interval,
        broker_rebalance_timeout=kafka.rebalance_timeout,
        broker_commit_interval=kafka.commit_interval,
        consumer_group_instance_id=group_instance_id(settings),
        producer_max_request_size=kafka.max_message_bytes,
        producer_acks=-1,
        producer_compression_type=None if kafka.compression == "none" else kafka.compression,
        consumer_max_fetch_size=max(4 * 1024 * 1024, kafka.max_message_bytes),
        stream_buffer_maxsize=64,
        # A batch as large as a message, filled for up to `linger`: records bound for one partition
        # share a batch and a produce request instead of one each (faust's 16 KiB batches hold one
        # chunk record at most).
        producer_max_batch_size=kafka.max_message_bytes,
        producer_linger=kafka.linger,
        web_bind=settings.worker.web_host,
        web_port=settings.worker.web_port,
        web_in_thread=False,
    )


@lru_cache(maxsize=1)
def get_app() -> faust.App:
    """The process-wide App (what `faust -A app worker` runs)."""
    return create_app(get_settings())


def recovery_completed() -> bool:
    """True once table recovery finished: the worker's state is complete and it may close traces."""
    recovery = getattr(get_app().tables, "recovery", None)
    return bool(recovery is not None and recovery.completed.is_set())


def load_worker() -> faust.App:
    """The App with every stage this worker runs, its table, timers and views attached.

    Stages are registered explicitly rather than by faust's autodiscover, which only logs a
    warning when a module fails to import and would start a worker missing a stage.
    """
    from agents import drain, group, parse
    from agents.channels import Channels
    from agents.live_rules import LiveRules, follow
    from agents.stage import StageContext
    from app import web
    from app.trace_tables import trace_table

    registrations = {"parse": parse.register, "group": group.register, "drain": drain.register}
    app, settings = get_app(), get_settings()
    rules = LiveRules(settings)
    ctx = StageContext(app, settings, Channels(app, settings), trace_table, recovery_completed, rules)

    @app.task
    async def follow_live_rules() -> None:
        """Every worker takes each published rules version (agents/live_rules.py)."""
        await follow(settings, rules)

    for stage in settings.worker.stages:
        registrations[stage](ctx)
    web.register(app, settings)
    tune_garbage_collector()
    return app


GC_THRESHOLDS = (20_000, 20, 100)


def tune_garbage_collector() -> None:
    """Freeze the start-up heap and collect less often.

    Every chunk allocates thousands of short-lived lists, so CPython's default thresholds (700, 10,
    10) ran the young collection ~3 times per chunk and a full collection - a walk of faust's whole
    heap and the deadline indexes - every few seconds: 3.0 s of a worker's 20.6 CPU s on 1M lines
    (2,730 / 247 / 25 collections). Frozen and with these thresholds: 0.23 s (15 / 0 / 3). Cyclic
    garbage is still collected, only in larger batches.
    """
    import gc

    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
