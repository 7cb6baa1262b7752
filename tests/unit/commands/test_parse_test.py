"""`logweave parse-test`: per line, the parser that matched and the record; dead letters and bad input named."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from commands.cli import main

DATA = Path(__file__).parents[2] / "data" / "parsers"


def test_reports_parser_and_record_per_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGWEAVE_PARSE__UNTRACED", "pass")
    sample = tmp_path / "sample.log"
    sample.write_text('{"traceId":"t1","level":"warn"}\n' + (DATA / "nginx.log").read_text().splitlines()[1]
                      + "\nnot a web log\n")
    assert main(["parse-test", "--source", "namespace=web,annotation=json+nginx", str(sample)]) == 0
    reports = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["parser"] for r in reports] == ["json", "nginx", "(none: kept as message)"]
    assert reports[0]["trace"] == "t1" and reports[0]["level"] == "warn"
    assert reports[1]["record"]["status"] == 502 and reports[1]["level"] == "error"
    assert reports[2]["record"] == {"message": "not a web log"}


def test_dead_letters_make_exit_code_one_and_bad_source_two(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOGWEAVE_PARSE__UNTRACED", raising=False)
    sample = tmp_path / "sample.log"
    sample.write_text("WARNING:root:disk full\n")
    assert main(["parse-test", "--source", "annotation=python", str(sample)]) == 1
    (report,) = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert report["parser"] == "python" and report["dead_letter"] == "missing_trace_id"
    assert main(["parse-test", "--source", "colour=blue", str(sample)]) == 2
    assert "expected key=value pairs" in capsys.readouterr().err
