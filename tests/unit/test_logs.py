"""A process's log, off a terminal, is JSON lines: our events and the libraries' alike."""

from __future__ import annotations

import subprocess
import sys

import orjson

PROGRAM = """
import logging
import structlog
from streams import logs

logs.configure("info")
structlog.get_logger().info("ours", partition=3)
logging.getLogger("aiokafka.consumer").info("below the libraries' level")
logging.getLogger("aiokafka.consumer").warning("Heartbeat failed for group %s", "g")
try:
    1 / 0
except ZeroDivisionError:
    logging.getLogger("faust").exception("crashed")
"""


def test_library_records_are_rendered_as_the_same_json_events() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, check=True, timeout=60
    )
    records = [orjson.loads(line) for line in done.stderr.splitlines()]
    assert [(r["event"], r["level"]) for r in records] == [
        ("ours", "info"),
        ("Heartbeat failed for group g", "warning"),
        ("crashed", "error"),
    ]
    assert records[0]["partition"] == 3
    assert records[1]["logger"] == "aiokafka.consumer"
    assert "ZeroDivisionError" in records[2]["exception"]
    assert all(r["timestamp"].endswith("Z") for r in records)
