"""Builds the one faust App from the settings; agents and web views attach to it.

Kept apart from `app/__init__.py` so importing the package costs nothing until a worker asks for
the App. Static group membership (KIP-345) is on by default: a restarted worker rejoins under the
same instance id at once, which is what a StatefulSet does and what the embedded broker needs.
"""

from __future__ import annotations

import logging
import os
import ssl
import sys
from collections.abc import Callable
from functools import lru_cache
from typing import Any, cast

import faust
from faust.web.base import Web
from mode.utils.objects import cached_property
from mode.utils.queues import FlowControlEvent

from app.fetch_rewind import rewind_unhanded_records
from app.fetch_wait import hold_fetches_at_most
from app.group_membership import EmptyAssignmentTolerantAssignor, exit_when_coordination_dies
from app.lazy_commit_table import draw_commit_tables_lazily
from app.refused_commits import forget_refused_commits
from app.stream_flow import KeepQueuedOnResume
from app.worker_class import LogweaveWorker
from app.worker_start import StartRefused, check_topics, claim, member_id
from core.gc_tuning import tune_garbage_collector
from core.settings import KafkaSettings, Settings, load_settings
from kafka_io.client_options import security_material
from kafka_io.fetcher_close import close_fetchers_reliably
from kafka_io.kafka_compat import accept_empty_assignments, install_idle_fetch_pause

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The worker's settings, loaded once (environment and config file) on first use; a bad setting
    ends the worker with the same one line as `logweave check-config` (exit status 2)."""
    from core.startup import run_or_exit

    return run_or_exit(load_settings)


def group_instance_id(settings: Settings) -> str | None:
    """Static membership id: configured, else the pod name (HOSTNAME) plus the web port."""
    return settings.instance_name() if settings.kafka.static_membership else None


def broker_credentials(kafka: KafkaSettings) -> faust.types.auth.CredentialsT | None:
    """`kafka.security` as faust's credentials; the material is the one every other client uses."""
    material = security_material(kafka)
    if material.mechanism == "OAUTHBEARER":
        return faust.OAuthCredentials(oauth_cb=material.token_provider, ssl_context=material.ssl_context)
    if material.mechanism is not None:
        return faust.SASLCredentials(username=material.username, password=material.password,
                                     ssl_context=material.ssl_context, mechanism=material.mechanism)
    if material.ssl_context is not None:
        return faust.SSLCredentials(material.ssl_context)
    return None


def web_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """TLS for the web port when worker.web_cert_file / web_key_file are set."""
    worker = settings.worker
    if worker.web_cert_file is None or worker.web_key_file is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(worker.web_cert_file), str(worker.web_key_file))
    return context


class LogweaveApp(faust.App):  # type: ignore[misc]
    """faust's App with Logweave's start-up checks run before the consumer joins its group."""

    logweave_settings: Settings

    @cached_property
    def revoke_hooks(self) -> list[Callable[[set[Any]], object]]:
        """Called with the revoked partitions when a revoke reaches the event loop, before faust's own
        handling (which still lets in-flight work finish): the trace table's fence (tables/trace_table.py)."""
        return []

    async def _on_partitions_revoked(self, revoked: set[Any]) -> None:
        for hook in self.revoke_hooks:
            hook(revoked)
        await super()._on_partitions_revoked(revoked)

    @cached_property
    def flow_control(self) -> FlowControlEvent:
        """Stream flow control that keeps queued records when a running flow is resumed (app/stream_flow.py)."""
        return KeepQueuedOnResume(loop=self.loop)

    async def on_first_start(self) -> None:
        await super().on_first_start()
        exit_when_coordination_dies()  # before the consumer starts and creates its coordinator
        # The web port faust was given on the command line is in the conf by now (not at create_app).
        member = member_id(self.logweave_settings, int(self.conf.web_port))
        self.conf.consumer_group_instance_id = member  # type: ignore[assignment]  # None turns it off
        log.info("group member id %s (static membership: %s)", member, member is not None)
        try:
            claim(self.logweave_settings, member)
            await check_topics(self.logweave_settings)
        except StartRefused as refused:
            print(f"logweave worker: {refused}", file=sys.stderr, flush=True)
            os._exit(2)  # one line, not faust's crash report: nothing has started that needs stopping


def create_app(settings: Settings) -> LogweaveApp:
    install_idle_fetch_pause()
    hold_fetches_at_most(settings.kafka.fetch_max_wait)
    accept_empty_assignments()
    close_fetchers_reliably()
    rewind_unhanded_records()
    forget_refused_commits()
    draw_commit_tables_lazily()
    # Logweave serves its own stats page at `/`; faust's production index would shadow it.
    Web.production_blueprints = []
    kafka = settings.kafka
    app = LogweaveApp(
        settings.worker.app_id,
        broker=[f"kafka://{server}" for server in kafka.bootstrap_servers],
        broker_credentials=broker_credentials(kafka),
        store="rocksdb://",
        PartitionAssignor=EmptyAssignmentTolerantAssignor,
        Worker=LogweaveWorker,  # keeps the root logger at the `-l` level (app/worker_class.py)
        datadir=str(settings.worker.data_dir),
        autodiscover=False,
        topic_partitions=kafka.partitions,
        topic_replication_factor=kafka.replication_factor,
        topic_allow_declare=False,  # `logweave prepare` creates topics; the worker checks them (app/worker_start.py)
        topic_disable_leader=True,  # no leader-only timers: no `__assignor-__leader` topic to prepare
        table_standby_replicas=settings.worker.standby_replicas,
        broker_session_timeout=kafka.session_timeout,
        broker_heartbeat_interval=kafka.heartbeat_interval,
        broker_rebalance_timeout=kafka.rebalance_timeout,
        broker_commit_interval=kafka.commit_interval,
        consumer_group_instance_id=member_id(settings, settings.worker.web_port),
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
        web_ssl_context=web_ssl_context(settings),
        # faust's own views serve table contents (/table/), key routing (/router/) and app internals
        # (/stats/, /graph/) to anyone: Logweave serves what an operator needs itself, behind its tokens
        web_router_enabled=False,
        web_tables_enabled=False,
        web_stats_enabled=False,
        web_graph_enabled=False,
        web_metrics_enabled=False,
    )
    app.logweave_settings = settings
    return app


@lru_cache(maxsize=1)
def get_app() -> LogweaveApp:
    """The process-wide App (what `faust -A app worker` runs); an unreachable broker ends the worker
    after `kafka.connect_timeout` with one line (exit status 3)."""
    from core.startup import run_or_exit
    from kafka_io.connect import wait_for_brokers

    settings = get_settings()
    run_or_exit(lambda: wait_for_brokers(settings.kafka))
    return create_app(settings)


def recovery_completed() -> bool:
    """True once the first table recovery finished (what readiness reports; faust never clears it)."""
    return first_recovery_done(get_app())


def first_recovery_done(app: faust.App) -> bool:
    recovery = getattr(app.tables, "recovery", None)
    return bool(recovery is not None and recovery.completed.is_set())


def table_restored(app: faust.App) -> bool:
    """True while the trace table holds every update of the partitions this worker owns: recovery
    finished and no rebalance is under way. faust sets its `completed` once, at the first recovery,
    so during every later rebalance it stays set while partitions are restored from the changelog:
    a close check in that window built a partition's deadline index from a half-restored store, and
    traces it missed were then taken for new (a summary counted 4 of a trace's 5 lines)."""
    return first_recovery_done(app) and not app.rebalancing


@lru_cache(maxsize=1)
def load_worker() -> faust.App:
    """The App with every stage this worker runs, its table, timers and views attached.

    Stages are registered explicitly rather than by faust's autodiscover, which only logs a
    warning when a module fails to import and would start a worker missing a stage.
    """
    from agents import drain, group, parse
    from agents.channels import Channels
    from agents.drain_runner import DrainRunner
    from agents.live_rules import LiveRules, follow
    from agents.stage import StageContext
    from app import heartbeats, web
    from app.trace_tables import trace_table

    registrations = {"parse": parse.register, "group": group.register, "drain": drain.register}
    app, settings = get_app(), get_settings()
    rules = LiveRules(settings)
    ctx = StageContext(app, settings, Channels(app, settings), trace_table, lambda: table_restored(app), rules=rules)

    async def forget_progress(sender: Any, revoked: set[Any], **kwargs: Any) -> None:
        ctx.progress.forget(revoked)  # a partition that comes back is caught up again only when read

    app.on_partitions_revoked.connect(forget_progress)  # type: ignore[arg-type]

    @app.task
    async def follow_live_rules() -> None:
        """Every worker takes each published rules version (agents/live_rules.py)."""
        await follow(settings, rules)

    runners: dict[str, DrainRunner] = {}
    for stage in settings.worker.stages:
        registered = registrations[stage](ctx)
        if stage == "drain":
            runners = cast("dict[str, DrainRunner]", registered)
    web.register(app, settings, runners)
    heartbeats.register(app, settings, runners)
    tune_garbage_collector()
    return app
