"""The command line as a user meets it: what it refuses, what it survives, what it leaves behind.

Each test runs ``safeguarding`` in-process (:func:`streams.cli.main`) on small files.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams import codec
from streams.cli import main
from streams.files import replaced_on_success

T = "2024-03-04T10:00:00Z"  # a Monday
UNTIL = "2024-04-01"  # past every deadline of an incident at T


def incident(event_id: str, at: str = T, child_id: str = "C1") -> dict[str, Any]:
    return {
        "type": "incident",
        "event_id": event_id,
        "occurred_at": at,
        "incident_id": f"I-{event_id}",
        "incident_type": "DOMESTIC_ABUSE",
        "dash_risk": "HIGH",
        "children": [{"child_id": child_id, "present": True, "age": 7}],
    }


def jsonl(*objs: dict[str, Any]) -> bytes:
    return b"".join(orjson.dumps(o) + b"\n" for o in objs)


def lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def partial_files(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if p.name.endswith(".partial")]


def test_an_output_that_is_also_an_input_is_refused_and_the_input_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(jsonl(incident("E1")))
    before = events.read_bytes()
    assert main(["backtest", str(events), "--out", str(events)]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["backtest", str(events), "--out", str(tmp_path / "a.jsonl"),
                 "--dead-letters", str(events)]) == 2  # fmt: skip
    assert events.read_bytes() == before


def test_an_output_that_is_a_directory_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(jsonl(incident("E1")))
    assert main(["backtest", str(events), "--out", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_an_output_that_cannot_be_written_is_one_line_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(jsonl(incident("E1")))
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    assert main(["backtest", str(events), "--out", str(blocker / "alerts.jsonl"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert str(blocker) in err
    assert "Traceback" not in err


def test_missing_output_directories_are_made(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(jsonl(incident("E1")))
    out = tmp_path / "new" / "dir" / "alerts.jsonl"
    assert main(["backtest", str(events), "--out", str(out), "--until", UNTIL, "--quiet"]) == 0
    assert {a["rule_id"] for a in lines(out)} == {"SG01", "SG02"}


def test_damaged_gzip_keeps_what_was_read_and_says_the_rest_was_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    whole = gzip.compress(jsonl(*(incident(f"E{i}", child_id=f"C{i}") for i in range(200))))
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    out, dl = tmp_path / "alerts.jsonl", tmp_path / "dl.jsonl"
    assert main(["backtest", str(cut), "--out", str(out), "--dead-letters", str(dl),
                 "--until", UNTIL]) == 0  # fmt: skip
    (letter,) = lines(dl)
    assert "gzip data is damaged or cut short" in letter["reason"]
    assert "rest of the file was not read" in letter["reason"]
    assert "warning:" in capsys.readouterr().err
    children = {a["child_id"] for a in lines(out)}
    assert 0 < len(children) < 200
    assert len(children) == letter["line"] - 1  # every whole line before the damage


def test_a_file_that_is_not_gzip_after_its_magic_is_a_dead_letter(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gz"
    bad.write_bytes(b"\x1f\x8bnot gzip at all")
    good = tmp_path / "good.jsonl"
    good.write_bytes(jsonl(incident("E1")))
    out, dl = tmp_path / "alerts.jsonl", tmp_path / "dl.jsonl"
    assert main(["backtest", str(bad), str(good), "--out", str(out), "--dead-letters", str(dl),
                 "--until", UNTIL, "--quiet"]) == 0  # fmt: skip
    assert "at its start" in lines(dl)[0]["reason"]
    assert {a["rule_id"] for a in lines(out)} == {"SG01", "SG02"}


def test_a_byte_order_mark_does_not_cost_the_first_event(tmp_path: Path) -> None:
    events = tmp_path / "export.jsonl"
    events.write_bytes(b"\xef\xbb\xbf" + jsonl(incident("E1")))
    out, dl = tmp_path / "alerts.jsonl", tmp_path / "dl.jsonl"
    assert main(["backtest", str(events), "--out", str(out), "--dead-letters", str(dl),
                 "--until", UNTIL, "--quiet"]) == 0  # fmt: skip
    assert dl.read_bytes() == b""
    assert {a["rule_id"] for a in lines(out)} == {"SG01", "SG02"}


def test_an_event_in_the_last_days_of_9999_is_a_dead_letter_not_a_crash(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(jsonl(incident("E1"), incident("E2", "9999-12-31T00:00:00Z", "C2")))
    out, dl = tmp_path / "alerts.jsonl", tmp_path / "dl.jsonl"
    assert main(["backtest", str(events), "--out", str(out), "--dead-letters", str(dl),
                 "--until", UNTIL, "--quiet"]) == 0  # fmt: skip
    (letter,) = lines(dl)
    assert "occurred_at" in letter["reason"]
    assert {a["child_id"] for a in lines(out)} == {"C1"}


def test_an_interrupted_backtest_keeps_the_previous_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(jsonl(*(incident(f"E{i}", child_id=f"C{i}") for i in range(50))))
    out, dl = tmp_path / "alerts.jsonl", tmp_path / "dl.jsonl"
    out.write_bytes(b"previous alerts\n")
    decode = codec.decode_json_line
    calls = [0]

    def interrupted(line: bytes) -> Any:
        calls[0] += 1
        if calls[0] == 30:
            raise KeyboardInterrupt
        return decode(line)

    monkeypatch.setattr(codec, "decode_json_line", interrupted)
    assert main(["backtest", str(events), "--out", str(out), "--dead-letters", str(dl),
                 "--quiet"]) == 130  # fmt: skip
    assert "interrupted; no file was written" in capsys.readouterr().err
    assert out.read_bytes() == b"previous alerts\n"
    assert not dl.exists()
    assert partial_files(tmp_path) == []


def test_a_file_written_through_replaced_on_success_is_whole_or_absent(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    target.write_bytes(b"old\n")

    def write_half() -> None:
        with replaced_on_success(target) as f:
            f.write(b"half")
            raise RuntimeError("stopped")

    with pytest.raises(RuntimeError):
        write_half()
    assert target.read_bytes() == b"old\n"
    with replaced_on_success(target) as f:
        f.write(b"new\n")
        assert target.read_bytes() == b"old\n"  # not until the block ends
    assert target.read_bytes() == b"new\n"
    assert partial_files(tmp_path) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--children", "99999999999"], "at most 20,000,000"),
        (["--days", "100000000"], "go past 9999-12-24"),
        (["--start", "9999-12-23"], "go past 9999-12-24"),
        (["--start", "1066-10-14"], "1900-01-01 or later"),
        (["--out", "{dir}/world.avro"], "generate writes JSON Lines"),
        (["--truth", "{dir}/world.jsonl"], "--truth"),
    ],
)
def test_generate_refuses_a_world_it_cannot_make(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    given = dict(zip(args[::2], args[1::2], strict=True))
    options = {"--children": "3", "--days": "3", "--seed": "1",
               "--out": f"{tmp_path}/world.jsonl"} | given  # fmt: skip
    argv = ["generate"] + [x.format(dir=tmp_path) for kv in options.items() for x in kv]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bound", ["--from", "--to"])
def test_report_refuses_dates_outside_the_event_times(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bound: str
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(jsonl(incident("E1")))
    period = {"--from": "2024-01-01", "--to": "2024-06-01"}
    period[bound] = "0001-01-01" if bound == "--from" else "9999-12-31"
    argv = ["report", str(events)] + [x for kv in period.items() for x in kv]
    assert main(argv) == 2
    assert "from 1900-01-01 to 9999-12-24" in capsys.readouterr().err


def test_report_says_how_many_records_it_left_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(jsonl(incident("E1")) + b"not json\n" + b'{"type": "visit"}\n')
    assert main(["report", str(events), "--from", "2024-03-01", "--to", "2024-04-01"]) == 0
    assert "2 invalid records were left out" in capsys.readouterr().err
