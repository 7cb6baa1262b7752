"""The live table of the benchmark report: figures beside targets, lower bounds, the peer row, failures."""

from __future__ import annotations

from typing import Any

from tests.bench.report import markdown


def live_row(**changes: Any) -> dict[str, Any]:
    row = {"name": "200 pods x 20 lines/s", "kind": "logweave", "pods": 200, "offered_lines_per_s": 4000,
           "delivered_lines_per_s": 3990, "kept_up": True, "missing": 0, "p50_s": 0.12, "p99_s": 0.6,
           "p50_lower_bound": False, "p99_lower_bound": False,
           "lag_window_end": {"logs.raw": 12, "logs.parsed": 3, "sink.file": 40},
           "worker_cpu_per_100k": 1.2, "collector_cpu_per_100k": 0.9, "broker_cpu_per_100k": 2.5,
           "collector_peak_rss_mib": 60.0, "worker_peak_rss_mib": 150.0, "broker": "noida-db (embedded)",
           "load_avg_1m": [2.0, 3.5], "broker_note": ""}
    return {**row, **changes}


def cells(text: str, name: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"| {name} |"))
    return [cell.strip() for cell in line.strip("|").split(" | ")]


def test_a_row_that_kept_up_shows_each_figure_beside_its_target() -> None:
    text = markdown({"live": {"rows": [live_row()]}})
    assert cells(text, "200 pods x 20 lines/s") == [
        "200 pods x 20 lines/s", "4,000", "3,990", "yes", "12 / 40", "120 ms", "600 ms (met)", "1.20 (met)",
        "-", "0.90 (missed)", "2.50", "60 MiB", "150 MiB"]
    assert "1-min load average at the window ends: 3.5" in text and "Broker: noida-db (embedded)." in text
    assert "waiting for a CPU" not in text


def test_a_worker_starved_by_a_busy_machine_is_said_so() -> None:
    rows = [live_row(seconds=60, runqueue_wait_s={"worker": 57.4, "collector": 58.1}),
            live_row(name="1000 pods x 2 lines/s", seconds=60, runqueue_wait_s={"worker": 3.0})]
    text = markdown({"live": {"rows": rows}})
    assert "worse than the processes alone give): 200 pods x 20 lines/s: worker 57 s." in text
    assert "1000 pods" not in text.split("waiting for a CPU")[1]  # 3 s of 60 is no starvation


def test_a_row_that_fell_behind_shows_a_lower_bound_and_the_missing_lines() -> None:
    row = live_row(name="200 pods x 50 lines/s", offered_lines_per_s=10_000, delivered_lines_per_s=743,
                   kept_up=False, missing=50_000, p99_s=30.0, p99_lower_bound=True,
                   broker_note="the broker's own CPU dominates: ...")
    text = markdown({"live": {"rows": [row]}})
    got = cells(text, "200 pods x 50 lines/s")
    assert got[3] == "no, 50,000 lines missing" and got[6] == "≥ 30,000 ms (missed)"
    assert "The broker's own CPU exceeded each shipping process's in: 200 pods x 50 lines/s." in text


def test_the_collector_memory_target_applies_at_1000_pods() -> None:
    row = live_row(name="1000 pods x 2 lines/s", pods=1000, collector_peak_rss_mib=180.0)
    assert cells(markdown({"live": {"rows": [row]}}), "1000 pods x 2 lines/s")[11] == "180 MiB (missed)"


def test_the_peer_row_fills_the_collector_columns_with_rsyslogd() -> None:
    peer = {"name": "peer: rsyslog imfile -> omkafka, 200 pods x 20 lines/s", "kind": "peer", "pods": 200,
            "offered_lines_per_s": 4000, "delivered_lines_per_s": 4001, "kept_up": True, "missing": 0,
            "p50_s": 0.03, "p99_s": 0.06, "shipper_cpu_per_100k": 0.4, "shipper_peak_rss_mib": 11.0,
            "broker_cpu_per_100k": 3.0, "lag_window_start": {}, "lag_window_end": {}}
    got = cells(markdown({"live": {"rows": [live_row(), peer]}}), str(peer["name"]))
    assert got[1:] == ["4,000", "4,001", "yes", "-", "30 ms", "60 ms (met)", "-", "-", "0.40", "3.00", "11 MiB", "-"]


def test_failed_or_absent_live_results() -> None:
    assert "| live | failed: RuntimeError: collector exited |" in markdown(
        {"live": {"error": "Traceback\nRuntimeError: collector exited\n"}})
    assert "| live | failed: no rows in the live result |" in markdown({"live": {"rows": []}})
    assert "live: pods x lines/s" not in markdown({})  # results from before the live rows: no table


def test_a_p99_over_one_second_misses_even_when_every_line_arrived() -> None:
    assert cells(markdown({"live": {"rows": [live_row(p99_s=1.5)]}}), "200 pods x 20 lines/s")[6] == "1,500 ms (missed)"


def test_the_faust_floor_fed_the_workers_records_stands_beside_the_worker() -> None:
    floor = {"records_per_s": 10.02, "lines_per_record": 399, "cpu_per_100k": 1.297, "forwarded_all": True}
    got = cells(markdown({"live": {"rows": [live_row(worker_cpu_per_100k=1.9, faust_floor=floor)]}}),
                "200 pods x 20 lines/s")
    assert got[7:9] == ["1.90 (missed)", "1.30 (10 x 399)"]
    behind = cells(markdown({"live": {"rows": [live_row(faust_floor={**floor, "forwarded_all": False})]}}),
                   "200 pods x 20 lines/s")
    assert behind[8] == "1.30 (10 x 399, fell behind)"
