"""Fixtures for tests against real brokers: the embedded Tansu and Apache Kafka.

Every test here runs once per broker (``kafka_broker`` is parametrized, session-scoped, so
each broker starts once and pytest runs one at a time). Tests share a broker, so each one
names its topics and groups with its own ``topic_prefix``.

Apache Kafka is never skipped quietly: without Java or the jars (``make kafka-jars``) the
fixture fails. A developer who wants a Tansu-only run sets ``SAFEGUARDING_SKIP_APACHE_KAFKA=1``
explicitly; CI (``CI`` set) refuses even that.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.broker import BrokerProcess
from streams.testing.kafka import BROKER_NAMES, KafkaNotInstalled, check_apache_kafka, start_broker

SKIP_APACHE_ENV = "SAFEGUARDING_SKIP_APACHE_KAFKA"
_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/integration needs a real broker: mark it so ``-m`` selects it."""
    for item in items:
        if _HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.integration)


def _apache_kafka_available() -> None:
    """Fail (never skip) unless Apache Kafka can run, save for an explicit developer opt-out."""
    in_ci = bool(os.environ.get("CI"))
    if os.environ.get(SKIP_APACHE_ENV) == "1":
        if in_ci:
            pytest.fail(
                f"{SKIP_APACHE_ENV}=1 is not honoured in CI (CI is set): "
                "the integration tests must run on Apache Kafka there",
                pytrace=False,
            )
        pytest.skip(
            f"Apache Kafka skipped because {SKIP_APACHE_ENV}=1 is set (a developer opt-out; "
            "unset it and run `make kafka-jars` to test on both brokers)"
        )
    try:
        check_apache_kafka()
    except KafkaNotInstalled as exc:
        problem = str(exc)
    else:
        return
    # Failed outside the except block, so the report shows one message, not a chain.
    if in_ci:
        pytest.fail(f"Apache Kafka cannot run in CI (CI is set): {problem}", pytrace=False)
    pytest.fail(
        f"Apache Kafka cannot run on this machine: {problem}. "
        f"To test on Tansu only for now, set {SKIP_APACHE_ENV}=1.",
        pytrace=False,
    )


@pytest.fixture(scope="session", params=BROKER_NAMES)
def kafka_broker(request: pytest.FixtureRequest) -> Iterator[BrokerProcess]:
    """A running broker with ``.name`` (``tansu``/``apache``) and ``.bootstrap``."""
    if request.param == "apache":
        _apache_kafka_available()
    with start_broker(request.param) as broker:
        yield broker


@pytest.fixture
def topic_prefix(request: pytest.FixtureRequest) -> str:
    """A prefix no other test uses, e.g. ``it.test-produce.1f3a9c2b7d.``: for topics and groups."""
    # Keep the test's name (legible in broker logs) but only Kafka's topic-name characters.
    base = "".join(c if c.isalnum() or c in "-_" else "-" for c in request.node.originalname)
    return f"it.{base[:60]}.{uuid.uuid4().hex[:10]}."
