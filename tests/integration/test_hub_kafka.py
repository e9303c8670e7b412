"""The hub on a real broker (Tansu and Apache Kafka): alerts in, actions out and back, a
restart rebuilds the same state, bad records are skipped, late topics are picked up.

The hub runs in the test's event loop (:func:`streams.hub.serve.serve_hub` on a free port);
the tests talk to it over HTTP with a bearer token, as a script would, and to the topics with
aiokafka. Nothing waits on end offsets (Tansu's are wrong): every wait polls for what it expects.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
import pytest
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from streams.broker import BrokerProcess, TopicSpec, create_topics, describe_topic_configs
from streams.codec import decode_action_avro, encode_avro
from streams.domain.alerts import (
    ActionKind,
    Alert,
    AlertStatus,
    Mode,
    RuleId,
    Severity,
)
from streams.domain.events import MissingReport, MissingStatus, RiskLevel
from streams.domain.time import HOUR, MINUTE, Millis
from streams.hub.auth import UserStore
from streams.hub.kafka import hub_topic_specs
from streams.hub.serve import serve_hub
from streams.settings import Settings
from tests import hubkit

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

T = TypeVar("T")
FAST_SCRYPT = 2**10  # test users only
NOW: Millis = time.time_ns() // 1_000_000
CHILD_A = "HUBIT-CHILD-A-7731"
CHILD_B = "HUBIT-CHILD-B-8842"


def make_alert(
    child: str,
    rule: RuleId,
    trigger: str,
    *,
    status: AlertStatus = AlertStatus.RAISED,
    mode: Mode = Mode.LIVE,
) -> Alert:
    raised_at = NOW - 2 * HOUR
    return hubkit.make_alert(
        child, rule, trigger, Severity.HIGH, raised_at, status,
        None if status is AlertStatus.RAISED else raised_at + HOUR,
        mode=mode, summary="A made-up alert for an integration test.",
    )  # fmt: skip


def hub_settings(broker: BrokerProcess, prefix: str) -> Settings:
    return Settings.from_env(
        {}, bootstrap=broker.bootstrap, topic_prefix=prefix, hub_port=0, partitions=2
    )


class Hub:
    """A running hub and an HTTP client signed in as ``ana`` (bearer token)."""

    def __init__(self, url: str, http: aiohttp.ClientSession) -> None:
        self.url = url
        self.http = http

    async def get(self, path: str) -> Any:
        async with self.http.get(self.url + path.lstrip("/")) as response:
            assert response.status == 200, await response.text()
            return await response.json()

    async def post_action(self, alert_id: str, body: dict[str, Any]) -> dict[str, Any]:
        async with self.http.post(
            f"{self.url}api/alerts/{alert_id}/actions", json=body
        ) as response:
            assert response.status == 202, await response.text()
            result: dict[str, Any] = await response.json()
            return result


@contextlib.asynccontextmanager
async def running_hub(settings: Settings, **options: Any) -> AsyncIterator[Hub]:
    users = UserStore.with_password("ana", "not used here", n=FAST_SCRYPT)
    token = users.add_token("ana")
    stop = asyncio.Event()
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve_hub(settings, stop=stop, users=users, ready=ready, **options))
    try:
        url = await asyncio.wait_for(asyncio.shield(ready), 60)
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
            yield Hub(url, http)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def eventually(
    probe: Callable[[], Awaitable[T]], ok: Callable[[T], bool], timeout: float = 30.0
) -> T:
    """Poll ``probe`` until ``ok`` holds for its answer; fail with the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"still not there after {timeout} s: {value!r}")
        await asyncio.sleep(0.1)


async def produce(bootstrap: str, records: list[tuple[str, bytes, bytes]]) -> None:
    """Send ``(topic, key, value)`` records in order, each acknowledged by all replicas."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for topic, key, value in records:
            await producer.send_and_wait(topic, key=key, value=value)
    finally:
        await producer.stop()


async def read_topic(bootstrap: str, topic: str, partitions: int, expected: int) -> list[Any]:
    """The first ``expected`` records of a topic (from its beginning, no consumer group)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
        await consumer.seek_to_beginning()
        received: list[Any] = []
        deadline = time.monotonic() + 30
        while len(received) < expected and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                received.extend(records)
        return received
    finally:
        await consumer.stop()


def board(alerts: dict[str, Any]) -> dict[str, Any]:
    """What must survive a restart: each alert's status, workflow and actions (not the
    state's version counters, which count applications)."""
    return {
        a["alert_id"]: {
            "status": a["status"],
            "workflow": a["workflow"],
            "acknowledged": a["acknowledged"],
            "actions": [(x["action_id"], x["kind"], x["user"], x["note"]) for x in a["actions"]],
        }
        for a in alerts["alerts"]
    }


async def test_alerts_show_actions_round_trip_and_a_restart_rebuilds_the_same_state(
    kafka_broker: BrokerProcess, topic_prefix: str
) -> None:
    settings = hub_settings(kafka_broker, topic_prefix)
    topics = settings.topics
    sg01 = make_alert(CHILD_A, RuleId.SG01, "INC-1")
    sg02 = make_alert(CHILD_A, RuleId.SG02, "INC-1")
    replayed = make_alert(CHILD_B, RuleId.SG03, "EP-9", mode=Mode.REPLAY)
    resolved = make_alert(CHILD_A, RuleId.SG02, "INC-1", status=AlertStatus.RESOLVED)

    async with running_hub(settings) as hub:
        # The hub made its two topics as the worker would: kept forever, not compacted (one
        # record per key would leave one alert per child, one action per alert).
        configs = await describe_topic_configs(
            kafka_broker.bootstrap, [topics.alerts, topics.alert_actions]
        )
        for name in (topics.alerts, topics.alert_actions):
            assert configs[name].get("retention.ms") == "-1"
            assert configs[name].get("cleanup.policy", "delete") == "delete"
        await produce(
            kafka_broker.bootstrap,
            [(topics.alerts, a.child_id.encode(), encode_avro(a)) for a in (sg01, sg02, replayed)],
        )
        listed = await eventually(lambda: hub.get("/api/alerts"), lambda d: d["count"] == 2)
        assert {a["alert_id"] for a in listed["alerts"]} == {sg01.alert_id, sg02.alert_id}, (
            "a replay's alert never reaches the live hub"
        )

        accepted = await hub.post_action(sg01.alert_id, {"kind": "ACKNOWLEDGE"})
        assert accepted["action"]["user"] == "ana"
        await hub.post_action(sg02.alert_id, {"kind": "NOTE", "note": "School contacted."})

        # The actions are on the topic, keyed by alert, naming the signed-in user ...
        records = await read_topic(kafka_broker.bootstrap, topics.alert_actions, 2, expected=2)
        actions = {r.key.decode(): decode_action_avro(r.value) for r in records}
        assert actions[sg01.alert_id].kind is ActionKind.ACKNOWLEDGE
        assert actions[sg01.alert_id].user == "ana"
        assert actions[sg01.alert_id].action_id == accepted["action"]["action_id"]
        assert actions[sg02.alert_id].note == "School contacted."

        # ... and come back into the state through the consumer.
        acked = await eventually(
            lambda: hub.get(f"/api/alerts/{sg01.alert_id}"),
            lambda a: a["workflow"] == "ACKNOWLEDGED",
        )
        assert acked["acknowledged"]["user"] == "ana"
        await eventually(
            lambda: hub.get(f"/api/alerts/{sg02.alert_id}"), lambda a: len(a["actions"]) == 1
        )

        # A later version of an alert replaces the earlier one and keeps its actions.
        await produce(
            kafka_broker.bootstrap,
            [(topics.alerts, CHILD_A.encode(), encode_avro(resolved))],
        )
        await eventually(
            lambda: hub.get(f"/api/alerts/{sg02.alert_id}"), lambda a: a["status"] == "RESOLVED"
        )
        before = board(await hub.get("/api/alerts"))

    assert before[sg01.alert_id]["workflow"] == "ACKNOWLEDGED"
    assert before[sg02.alert_id]["status"] == "RESOLVED"
    assert before[sg02.alert_id]["actions"][0][1:] == ("NOTE", "ana", "School contacted.")

    # A new hub (new state, new consumer) rebuilds the same board from the topics.
    async with running_hub(settings) as restarted:
        after = await eventually(
            lambda: restarted.get("/api/alerts"), lambda d: board(d) == before, timeout=45
        )
        assert after["count"] == 2
        again = await restarted.get(f"/api/alerts/{sg01.alert_id}")
        assert again["workflow"] == "ACKNOWLEDGED"
        assert again["acknowledged"]["user"] == "ana"


async def test_undecodable_records_are_skipped_and_the_hub_keeps_going(
    kafka_broker: BrokerProcess, topic_prefix: str
) -> None:
    settings = hub_settings(kafka_broker, topic_prefix)
    topics = settings.topics
    good = make_alert(CHILD_A, RuleId.SG07, "EP-4")
    report = MissingReport(
        "ev-77",
        NOW - HOUR,
        "EP-4",
        CHILD_A,
        MissingStatus.REPORTED,
        RiskLevel.LOW,
        False,
        14,
    )
    await create_topics(
        kafka_broker.bootstrap,
        [TopicSpec(topics.missing_reports, partitions=2), *hub_topic_specs(settings)],
    )
    garbage = b"\xff\xfe not avro " + CHILD_A.encode()
    with structlog.testing.capture_logs() as logs:
        async with running_hub(settings) as hub:
            # Partition 0 of each topic, so the offsets in the log lines are known: 0 is bad.
            producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap, acks="all")
            await producer.start()
            try:
                for topic, value in (
                    (topics.alerts, garbage),
                    (topics.alerts, encode_avro(good)),
                    (topics.alert_actions, garbage),
                    (topics.missing_reports, garbage),
                    (topics.missing_reports, encode_avro(report)),
                ):
                    await producer.send_and_wait(
                        topic, key=CHILD_A.encode(), value=value, partition=0
                    )
            finally:
                await producer.stop()
            await eventually(lambda: hub.get("/api/alerts"), lambda d: d["count"] == 1)
            timeline = await eventually(
                lambda: hub.get(f"/api/children/{CHILD_A}/timeline"),
                lambda t: any(e["kind"] == "event" for e in t["entries"]),
            )
            assert [e["ref"] for e in timeline["entries"] if e["kind"] == "event"] == ["ev-77"]
            # Still consuming after the bad records: an action comes back.
            await hub.post_action(good.alert_id, {"kind": "ACKNOWLEDGE"})
            await eventually(
                lambda: hub.get(f"/api/alerts/{good.alert_id}"),
                lambda a: a["workflow"] == "ACKNOWLEDGED",
            )

    skipped = [e for e in logs if e["event"] == "hub_record_skipped"]
    assert sorted((e["topic"], e["partition"], e["offset"]) for e in skipped) == sorted(
        [
            (topics.alerts, 0, 0),
            (topics.alert_actions, 0, 0),
            (topics.missing_reports, 0, 0),
        ]
    )
    assert {e["error"] for e in skipped} == {"InvalidEvent"}
    assert all(e["log_level"] == "warning" for e in skipped)
    assert CHILD_A not in repr(logs), "a log line named the child"


async def test_topics_created_after_the_hub_started_are_read_from_their_beginning(
    kafka_broker: BrokerProcess, topic_prefix: str
) -> None:
    settings = hub_settings(kafka_broker, topic_prefix)
    topics = settings.topics
    report = MissingReport(
        "ev-late-topic",
        NOW - 30 * MINUTE,
        "EP-5",
        CHILD_B,
        MissingStatus.REPORTED,
        RiskLevel.NO_APPARENT_RISK,
        True,
        15,
    )
    async with running_hub(settings, metadata_interval_s=0.5, missing_topic_interval_s=0.2) as hub:
        # The hub created only its own topics (the input topics are the pipeline's), and it
        # never asked for a missing one by name (Apache Kafka would auto-create it).
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap)
        await admin.start()
        try:
            existing = {t for t in await admin.list_topics() if t.startswith(topic_prefix)}
        finally:
            await admin.close()
        assert existing == {topics.alerts, topics.alert_actions}
        await create_topics(
            kafka_broker.bootstrap, [TopicSpec(topics.missing_reports, partitions=3)]
        )
        await produce(
            kafka_broker.bootstrap,
            [(topics.missing_reports, CHILD_B.encode(), encode_avro(report))],
        )
        timeline = await eventually(
            lambda: hub.get(f"/api/children/{CHILD_B}/timeline"),
            lambda t: bool(t["entries"]),
        )
        assert timeline["entries"][0]["event"]["event_id"] == "ev-late-topic"
        assert timeline["entries"][0]["event"]["looked_after"] is True
