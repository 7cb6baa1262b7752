"""The file collector process: the loop tying discovery, reading, publishing and checkpoints.

`run_file_collector` is what `logweave collect files` and `python -m collectors.files` call. It
rescans (after a short pause, so a burst of events costs one scan) when inotify reports an entry
created, renamed or deleted, when a file nobody follows is written (one without a complete line at
its scan; at most every `rescan_interval`), after a file was truncated and in every pass while a
file truncated with a multiline record open waits for its copy (copytruncate: the copy appeared
before the truncation, so the scan its creation triggered could not decide it; FileCollector.wants_rescan),
right after a scan whose directories it began to watch (a file made in one between its listing and its
watch raised no event), and every `inotify_rescan_interval` as a safety net;
without inotify, or while it cannot vouch for every directory, every `rescan_interval` (warning every
`no_match_warning_interval` while the globs match nothing). It reads every file in bounded slices (a
file read never blocks the loop for long), saves checkpoints every `checkpoint_interval` when they
changed, and on stop flushes in-flight chunks and saves the checkpoint within `shutdown_timeout`.
Reading is paced: one pass over the files, then a pause (one `linger`, at most `flush_interval`)
unless a pass left a file with more than it reads of one file (collector.PASS_BYTES, a backlog); a
pass that read every file to its end pauses however much it read (the follow-up pass that a
record's worth used to bring at once found a few milliseconds of writes); before the pause the
pass's records are sent, as no later pass adds to them before their linger. So a node's many slowly
written files share records (kafka_io/partition_batcher.py) instead of each write costing one, and a
line waits about one linger.
A pass reads only the files inotify saw written (collectors/files/inotify.py), so a node's thousand
quiet files cost nothing between their writes; with every safety rescan, and in every pass while
inotify cannot vouch for every file (unavailable, overflowed, a directory not watched), a pass
looks at every file, so no line depends on inotify. While nearly every file is written between two
passes, write events are not taken and every pass looks at every file (collectors/files/write_events.py);
a file that had no complete line at its scan is then looked for every `rescan_interval`, as its
first write raises no event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable

from prometheus_client import start_http_server

from collectors.files.collector import FileCollector
from collectors.files.discovery import ListingCache, discover
from collectors.files.inotify import DirectoryWatcher
from collectors.files.live_rules import collector_rules
from collectors.files.metrics import FileMetrics
from collectors.files.write_events import WriteEventsPolicy
from collectors.live_rules import LiveMultilineRules
from core.gc_tuning import tune_garbage_collector
from core.heartbeat_figures import FILE_COLLECTOR
from core.native import native_path
from core.settings import CollectorSettings, Settings
from core.topics import RAW
from kafka_io.fetcher_close import close_fetchers_reliably
from kafka_io.heartbeat import component_id, start_heartbeat
from kafka_io.kafka_compat import install_idle_fetch_pause
from kafka_io.partition_batcher import PartitionBatcher
from kafka_io.publisher import ChunkPublisher
from kafka_io.rules_topic import follow_rules_forever

log = logging.getLogger(__name__)
COALESCE_SECONDS = 0.02  # after an inotify wake, let the burst it belongs to finish before rescanning
RULES_FETCH_PAUSE = 0.5  # seconds between the rules follower's empty fetches (kafka_io/kafka_compat.py)


async def run_file_collector(settings: Settings, stop: asyncio.Event | None = None,
                             metrics: FileMetrics | None = None) -> None:
    """Run until `stop` is set (or SIGTERM/SIGINT), then flush and save the checkpoint."""
    loop = asyncio.get_running_loop()
    if stop is None:
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    cfg = settings.collector
    # the rules follower's consumer: no tight fetch loop on a broker answering at once; a rules version
    # may take effect up to RULES_FETCH_PAUSE later (a real Kafka holds an empty fetch 0.5 s anyway)
    install_idle_fetch_pause(RULES_FETCH_PAUSE)
    close_fetchers_reliably()
    metrics = metrics or FileMetrics()
    if cfg.metrics_port:
        start_http_server(cfg.metrics_port, addr=cfg.metrics_host, registry=metrics.registry)
    # named after the node (not the pod), so a collector re-created on its node keeps its heartbeat id
    start_heartbeat(settings, FILE_COLLECTOR, metrics.registry,
                    component_id("file-collector", cfg.metrics_port, cfg.node_name), stop)
    publisher = ChunkPublisher(settings.kafka, settings.topic(RAW), cfg.buffer_bytes)
    await publisher.start()
    tune_garbage_collector()  # each file read allocates its blocks, chunk and ack entry: collect in larger batches
    batcher = PartitionBatcher(publisher, cfg.linger, cfg.chunk_lines, cfg.chunk_bytes)
    collector = FileCollector(cfg, batcher, metrics, settings.multiline)
    log.info("CRI lines are scanned by: %s", native_path("file_scan"))  # c, or python (why)
    rules = collector_rules(collector)
    follower = asyncio.create_task(follow_rules_forever(settings, rules.offer, stop, caught_up=rules.mark_loaded))
    await rules.wait_loaded(settings.kafka.connect_timeout, stop)  # the published multiline rules before any line
    watcher = DirectoryWatcher()
    work = asyncio.create_task(_follow(collector, watcher, settings, stop, rules, batcher.flush))
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({work, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if work.done():
            work.result()  # a crash of the loop surfaces here
    finally:
        stopping.cancel()
        work.cancel()  # it may be waiting for room in the in-flight budget (broker down)
        follower.cancel()
        for task in (work, follower):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        watcher.close()
        try:
            await asyncio.wait_for(_drain(batcher, publisher), cfg.shutdown_timeout)
        except (TimeoutError, Exception) as exc:
            log.warning("in-flight chunks not all acknowledged at shutdown (%s); they will be re-sent", exc)
        with contextlib.suppress(Exception):
            await collector.save_checkpoint()
        collector.close()
        log.info("file collector stopped after publishing %d lines",
                 int(metrics.value("logweave_file_collector_lines_published_total")))


async def _drain(batcher: PartitionBatcher, publisher: ChunkPublisher) -> None:
    await batcher.stop()  # what is gathered goes to the publisher, which then flushes it
    await publisher.stop()


def pass_interval(cfg: CollectorSettings) -> float:
    """Pause between read passes that found no backlog: one linger (a pass's lines are sent at its end,
    so a line waits at most about one linger), and never less often than `flush_interval`."""
    return min(cfg.flush_interval, cfg.linger)


def rescan_interval(cfg: CollectorSettings, watcher: DirectoryWatcher, missing_roots: bool = False) -> float:
    """How often to rescan and look at every file: `inotify_rescan_interval` while inotify watches every
    directory (it reports entries and writes at once), else `rescan_interval`. A pattern whose fixed root
    is not there yet (a node's /var/log/pods before its first pod) has nothing to watch, so no event
    would tell its creation: rescan at `rescan_interval` until it is there."""
    if watcher.complete and not missing_roots:
        return max(cfg.rescan_interval, cfg.inotify_rescan_interval)
    return cfg.rescan_interval


async def _follow(collector: FileCollector, watcher: DirectoryWatcher, settings: Settings,
                  stop: asyncio.Event, rules: LiveMultilineRules | None = None,
                  flush: Callable[[], None] | None = None) -> None:
    """The read loop. `flush` sends the records gathered so far (PartitionBatcher.flush): called when a
    pass read lines and the loop is about to wait, as no further pass adds to them before their linger."""
    cfg, metrics = settings.collector, collector.metrics
    # never: the monotonic clock starts near zero at boot, so 0.0 would read as "a moment ago" and put
    # off the first scan by up to rescan_interval on a machine started less than that long ago
    last_scan = last_checkpoint = last_full = -float("inf")
    missing_roots = True  # until a scan says otherwise
    warned_no_match = -float("inf")
    errors_seen = 0
    pause = pass_interval(cfg)
    unknown_written = False  # a file not followed was written since the last scan
    write_events = WriteEventsPolicy()
    listings = ListingCache()  # a directory unchanged since the last scan is not listed again
    while not stop.is_set():
        now = time.monotonic()
        modified = watcher.take_modified()  # taken before any read: a later write is reported again
        collector.follow_awaited(modified)  # files the last scan found empty that got their first line
        unknown_written = unknown_written or (modified is not None and collector.untracked(modified))
        if (watcher.changed.is_set() or now - last_scan >= rescan_interval(cfg, watcher, missing_roots)
                or (unknown_written and now - last_scan >= cfg.rescan_interval) or collector.wants_rescan(now)):
            watcher.changed.clear()
            unknown_written = False
            scan = await asyncio.to_thread(discover, cfg.paths, cfg.exclude, cfg.ignore_older, listings)
            missing_roots = bool(scan.missing_roots)
            collector.apply_scan(scan)
            if watcher.watch(scan.directories | collector.watch_directories()):
                # a directory is watched only after the scan listed it: a file made in it in between raised
                # no event and would wait for the safety rescan, so the next pass scans again, watched
                watcher.changed.set()
            last_scan = now
            if scan.files or collector.files:
                warned_no_match = -float("inf")
            elif now - warned_no_match >= cfg.no_match_warning_interval:
                warned_no_match = now
                log.warning("no file matches collector.paths %s%s; still looking (this repeats every %gs)",
                            cfg.paths, f" minus collector.exclude {cfg.exclude}" if cfg.exclude else "",
                            cfg.no_match_warning_interval)
            metrics.watch_errors.inc(watcher.errors - errors_seen)
            errors_seen = watcher.errors
        if rules is not None:
            await rules.apply_pending()  # a new rules version takes effect between read passes
        if modified is None or now - last_full >= rescan_interval(cfg, watcher, missing_roots):
            modified, last_full = None, now
        read = await collector.pump(modified)
        collector.settle_acks()
        if watcher.active:
            _take_write_events(watcher, write_events.decide(watcher.takes_writes, len(collector.files),
                                                            collector.fresh_in_pass), metrics)
        if now - last_checkpoint >= cfg.checkpoint_interval:
            await collector.save_checkpoint(only_if_changed=True)
            last_checkpoint = now
        metrics.checkpoint_age.set(time.monotonic() - last_checkpoint)
        if collector.backlog_in_pass:  # a file holds more than a pass takes of it: read on at once
            continue
        if read and flush is not None:
            flush()
        left = (cfg.flush_interval if not read else pause) - (time.monotonic() - now)
        if left > 0 and not watcher.changed.is_set():
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(watcher.changed.wait())]
            await asyncio.wait(waits, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waits:
                waiter.cancel()
        if watcher.changed.is_set() and not stop.is_set():
            await asyncio.sleep(COALESCE_SECONDS)


def _take_write_events(watcher: DirectoryWatcher, wanted: bool, metrics: FileMetrics) -> None:
    if wanted == watcher.takes_writes:
        return
    watcher.take_writes(wanted)
    metrics.write_events.set(1 if wanted else 0)
    log.info("%s", "most files are quiet again: passes read only the files inotify saw written" if wanted else
             "nearly every file is written between two passes: every pass looks at every file, without "
             "inotify's write events")


def main() -> None:
    from core.settings import load_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from core.startup import run_or_exit

    run_or_exit(lambda: asyncio.run(run_file_collector(load_settings())))


if __name__ == "__main__":
    main()
