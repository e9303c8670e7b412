"""The hub end to end in a real browser: sign in, watch an alert arrive live, acknowledge it,
reload, open the child's timeline.

Two ways in for the alert:
- through the whole pipeline: missing reports produced to ``missing-reports``, the Faust
  worker raising SG04 (a looked-after child graded ABSENT with another episode in the 90 days
  before), the hub reading ``alerts``;
- the alert produced straight to ``alerts`` (what the worker would send), which proves the
  browser path without the worker.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaProducer

from streams.codec import encode_avro
from streams.domain.alerts import Alert, AlertStatus, Mode, RuleId, Severity, alert_id_for
from streams.domain.events import MissingReport, MissingStatus, RiskLevel
from streams.domain.time import DAY, MINUTE, Millis
from streams.settings import Settings
from tests.browser.conftest import (
    HOW_TO_INSTALL,
    HUB_PASSWORD,
    HubProcess,
    Process,
    run_async,
    screenshot,
)

try:
    from playwright.sync_api import Page, expect
except ImportError:  # fail, never skip: CI must run these
    pytest.fail(f"the playwright package is not installed: {HOW_TO_INSTALL}", pytrace=False)

pytestmark = pytest.mark.timeout(300)  # a hang must not hold CI; a run takes well under a minute

ALERT_TIMEOUT_MS = 90_000  # the worker's start (Faust) plus a rule evaluation, on 2 busy cores


def missing_reports(child: str, now: Millis) -> list[MissingReport]:
    """An SG04: a looked-after child reported missing and graded ABSENT, with another episode
    reported 10 days before (well inside the 90 days), both within the last few minutes of the
    live clock's reach."""
    return [
        MissingReport(
            f"{child}-ev-1",
            now - 10 * DAY,
            f"{child}-EP-1",
            child,
            MissingStatus.REPORTED,
            RiskLevel.MEDIUM,
            True,
            14,
        ),
        MissingReport(
            f"{child}-ev-2",
            now - 5 * MINUTE,
            f"{child}-EP-2",
            child,
            MissingStatus.REPORTED,
            RiskLevel.ABSENT,
            True,
            14,
        ),
    ]


def sg04_alert(child: str, reports: list[MissingReport], now: Millis) -> Alert:
    """The alert the worker raises for :func:`missing_reports`."""
    report = reports[-1]
    return Alert(
        alert_id=alert_id_for(RuleId.SG04, child, report.episode_id),
        rule_id=RuleId.SG04,
        child_id=child,
        trigger_id=report.episode_id,
        severity=Severity.HIGH,
        raised_at=report.occurred_at,
        due_at=report.occurred_at,
        evidence=tuple(r.event_id for r in reports),
        summary=(
            f"Looked-after child reported missing ({report.episode_id}) and graded absent "
            "despite another episode in the previous 90 days."
        ),
        recommended_action="Re-grade the episode as missing and review the risk with a supervisor.",
        status=AlertStatus.RAISED,
        resolved_at=None,
        mode=Mode.LIVE,
        detected_at=now,
    )


def produce(settings: Settings, records: list[tuple[str, str, bytes]]) -> None:
    """Send ``(topic, key, value)`` records in order and wait for each acknowledgement."""

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, acks="all")
        await producer.start()
        try:
            for topic, key, value in records:
                await producer.send_and_wait(topic, key=key.encode(), value=value)
        finally:
            await producer.stop()

    run_async(send())


def sign_in(page: Page, hub: HubProcess) -> None:
    page.goto(hub.url)
    page.fill("#user", "hub")
    page.fill("#password", HUB_PASSWORD)
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("current-user")).to_have_text("hub")
    expect(page.get_by_test_id("connection-status")).to_have_text("Live")


def wait_for_row(page: Page, alert_id: str, timeout_ms: int, *, alive: Callable[[], None]) -> None:
    """Wait for the alert's row, checking between looks that the pipeline is still running."""
    row = page.locator(f'[data-testid="alert-row"][data-alert-id="{alert_id}"]')
    deadline = time.monotonic() + timeout_ms / 1000
    while row.count() == 0:
        alive()
        if time.monotonic() > deadline:
            raise AssertionError(
                f"alert {alert_id} did not appear on the board within {timeout_ms / 1000:.0f} s"
            )
        page.wait_for_timeout(250)


def board_round_trip(
    page: Page,
    hub: HubProcess,
    *,
    child: str,
    alert_id: str,
    raise_alert: Callable[[], None],
    alive: Callable[[], None],
    name: str,
) -> None:
    sign_in(page, hub)
    expect(page.locator(f'[data-alert-id="{alert_id}"]')).to_have_count(0)
    marker = page.evaluate("() => (window.__noReload = Math.random())")

    raise_alert()

    # It appears live, pushed over the stream: the page was not reloaded.
    wait_for_row(page, alert_id, ALERT_TIMEOUT_MS, alive=alive)
    assert page.evaluate("() => window.__noReload") == marker
    row = page.locator(f'[data-testid="alert-row"][data-alert-id="{alert_id}"]')
    expect(row.get_by_test_id("severity-badge")).to_have_text("HIGH")
    expect(row.locator(".rule-id")).to_have_text("SG04")
    expect(row.get_by_test_id("status-badge")).to_have_text("Raised")
    expect(row.get_by_test_id("workflow-badge")).to_have_text("New")
    expect(row.get_by_test_id("child-link")).to_have_text(child)

    # Acknowledge: the action goes to alert-actions and the row changes when it comes back.
    row.get_by_test_id("ack-button").click()
    expect(row.get_by_test_id("workflow-badge")).to_have_text("Acknowledged")
    expect(row.get_by_test_id("ack-button")).to_be_disabled()
    expect(row).to_contain_text("Acknowledged")

    # A reload rebuilds the board from the hub's state: still acknowledged, by hub.
    page.reload()
    expect(page.get_by_test_id("connection-status")).to_have_text("Live")
    row = page.locator(f'[data-testid="alert-row"][data-alert-id="{alert_id}"]')
    expect(row.get_by_test_id("workflow-badge")).to_have_text("Acknowledged")
    expect(row.get_by_test_id("ack-button")).to_be_disabled()
    expect(row.locator(".facts")).to_contain_text("hub")

    # The child's timeline: both missing reports, the alert and the acknowledgement.
    row.get_by_test_id("child-link").click()
    panel = page.get_by_test_id("timeline-panel")
    expect(panel).to_be_visible()
    expect(page.get_by_test_id("timeline-child")).to_have_text(child)
    entry = '[data-testid="timeline-entry"][data-kind="{}"]'.format
    expect(page.locator(entry("event"))).to_have_count(2)
    expect(page.locator(entry("alert_raised"))).to_have_count(1)
    expect(page.locator(entry("action"))).to_have_count(1)
    expect(page.locator(entry("event")).last).to_contain_text(re.compile("risk absent", re.I))
    expect(page.locator(entry("action"))).to_contain_text("Acknowledged by hub")
    assert page.url.endswith(f"#/children/{child}")

    # The quality panel counts it too (it loads a moment after the board).
    expect(page.get_by_test_id("quality-grades")).to_be_visible()
    screenshot(page, name)


def both_alive(hub: Process, worker: Process) -> None:
    hub.check_alive()
    worker.check_alive()


def test_an_input_event_raises_an_alert_that_is_acknowledged_in_the_browser(
    page: Page, settings: Settings, hub: HubProcess, worker: Process
) -> None:
    """The whole pipeline: events in, the worker's SG04 alert on the board."""
    child = "E2E-CHILD-WORKER-1"
    now = time.time_ns() // 1_000_000
    reports = missing_reports(child, now)
    alert_id = alert_id_for(RuleId.SG04, child, reports[-1].episode_id)
    topic = settings.topics.missing_reports

    def raise_alert() -> None:
        produce(settings, [(topic, r.child_id, encode_avro(r)) for r in reports])

    board_round_trip(
        page,
        hub,
        child=child,
        alert_id=alert_id,
        raise_alert=raise_alert,
        alive=lambda: both_alive(hub, worker),
        name="hub-worker-sg04",
    )


def test_an_alert_on_the_alerts_topic_is_acknowledged_in_the_browser(
    page: Page, settings: Settings, hub: HubProcess
) -> None:
    """The browser path without the worker: the alert produced as the worker would."""
    child = "E2E-CHILD-DIRECT-1"
    now = time.time_ns() // 1_000_000
    reports = missing_reports(child, now)
    alert = sg04_alert(child, reports, now)
    topics = settings.topics

    def raise_alert() -> None:
        produce(
            settings,
            [(topics.missing_reports, r.child_id, encode_avro(r)) for r in reports]
            + [(topics.alerts, alert.child_id, encode_avro(alert))],
        )

    board_round_trip(
        page,
        hub,
        child=child,
        alert_id=alert.alert_id,
        raise_alert=raise_alert,
        alive=hub.check_alive,
        name="hub-direct-sg04",
    )
