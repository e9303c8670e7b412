"""Fixtures for the hub's end-to-end tests in a real browser.

Debian's Chromium (``/usr/bin/chromium``, or ``SAFEGUARDING_CHROMIUM``) driven by Playwright's
Python API; Playwright's own browser downloads are never used. The hub and the worker run as
subprocesses, the way a person starts them, against the embedded Tansu broker.

A missing Chromium or Playwright fails the tests with what to install: they never skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from streams.broker import EmbeddedBroker, create_topics
from streams.settings import Settings

if TYPE_CHECKING:
    from playwright.sync_api import Page, Playwright

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "artifacts" / "screenshots"  # git-ignored (artifacts/)
CHROMIUM_ENV = "SAFEGUARDING_CHROMIUM"
DEFAULT_CHROMIUM = Path("/usr/bin/chromium")
HUB_PASSWORD = "browser-test password 7"
_HERE = Path(__file__).resolve().parent

# Headless Chromium as root in a container, with nothing talking to the network but the hub.
LAUNCH_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

HOW_TO_INSTALL = (
    "install Debian's Chromium and Playwright's Python package: `apt-get install -y chromium` "
    "and `.venv/bin/pip install playwright` (it is in the dev extras: "
    "`pip install -e '.[dev]'`). Never `playwright install`: the tests use /usr/bin/chromium "
    f"(or the browser named by {CHROMIUM_ENV})"
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/browser needs Chromium: mark it so ``-m browser`` selects it."""
    for item in items:
        if _HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.browser)


# -- the browser ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    path = Path(os.environ.get(CHROMIUM_ENV) or DEFAULT_CHROMIUM)
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(f"no Chromium at {path}: {HOW_TO_INSTALL}", pytrace=False)
    return path


@pytest.fixture
def playwright() -> Iterator[Playwright]:
    """Playwright's sync API, per test: it must not share a thread's event loop with the
    asyncio tests that run in the same session."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        problem = "the playwright package is not installed"
    else:
        with sync_playwright() as driver:
            yield driver
        return
    pytest.fail(f"{problem}: {HOW_TO_INSTALL}", pytrace=False)


@pytest.fixture
def page(playwright: Playwright, chromium_path: Path, tmp_path: Path) -> Iterator[Page]:
    """A page in a fresh Chromium profile (its own user-data directory)."""
    context = playwright.chromium.launch_persistent_context(
        user_data_dir=str(tmp_path / "chromium-profile"),
        executable_path=str(chromium_path),
        headless=True,
        args=LAUNCH_ARGS,
        viewport={"width": 1400, "height": 1000},
        locale="en-GB",
        timezone_id="Europe/London",
    )
    try:
        context.set_default_timeout(15_000)
        yield context.pages[0] if context.pages else context.new_page()
    finally:
        context.close()


# -- Kafka -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as running:
        yield running


@pytest.fixture
def settings(broker: EmbeddedBroker, request: pytest.FixtureRequest) -> Settings:
    """Settings for one test: its own topic prefix on the shared broker, topics created."""
    base = "".join(c if c.isalnum() or c in "-_" else "-" for c in request.node.originalname)
    prefix = f"browser.{base[:50]}.{uuid.uuid4().hex[:8]}."
    settings = Settings.from_env({}, bootstrap=broker.bootstrap, topic_prefix=prefix)
    from streams.worker.topics import topic_specs

    run_async(create_topics(broker.bootstrap, topic_specs(settings)))
    return settings


def run_async(coroutine: Any) -> Any:
    """Run a coroutine to completion in a thread of its own.

    Test code runs beside Playwright's sync API, which keeps an event loop of its own in this
    thread; a fresh thread keeps the two apart.
    """
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = asyncio.run(coroutine)
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=target, name="kafka-client")
    thread.start()
    thread.join(timeout=120)
    if thread.is_alive():
        pytest.fail("a Kafka client call did not finish within 120 s")
    if "error" in result:
        raise result["error"]
    return result.get("value")


# -- processes ---------------------------------------------------------------------------------


@dataclass
class Process:
    """A subprocess whose output goes to a log file, quoted when it misbehaves."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError as exc:
            return f"({self.log}: {exc})"
        return "\n".join(text.splitlines()[-lines:]) or "(no output)"

    def check_alive(self) -> None:
        status = self.popen.poll()
        if status is not None:
            pytest.fail(
                f"{self.name} exited with status {status}; last lines of {self.log}:\n"
                f"{self.tail()}",
                pytrace=False,
            )

    def stop(self, timeout: float = 30.0) -> int:
        """Ctrl-C, as a person would; then SIGKILL if it does not stop in time."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
                pytest.fail(
                    f"{self.name} did not stop within {timeout} s of Ctrl-C:\n{self.tail()}",
                    pytrace=False,
                )
        return self.popen.returncode


def start_process(name: str, command: list[str], log: Path, env: dict[str, str]) -> Process:
    with log.open("wb") as out:
        popen = subprocess.Popen(
            command,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )
    return Process(name, popen, log)


@dataclass
class HubProcess(Process):
    url: str = ""


@pytest.fixture
def hub(settings: Settings, tmp_path: Path) -> Iterator[HubProcess]:
    """``python -m streams.hub serve`` (what ``safeguarding hub`` runs) on a free port; the
    URL comes from the sign-in lines it prints."""
    command = [
        sys.executable,
        "-m",
        "streams.hub",
        "serve",
        "--bootstrap",
        settings.bootstrap,
        "--topic-prefix",
        settings.topic_prefix,
        "--port",
        "0",
    ]
    process = start_process(
        "the hub",
        command,
        tmp_path / "hub.log",
        {"SAFEGUARDING_HUB_PASSWORD": HUB_PASSWORD, "SAFEGUARDING_HUB_USERS": ""},
    )
    hub = HubProcess(process.name, process.popen, process.log)
    try:
        deadline = time.monotonic() + 60
        while not hub.url:
            hub.check_alive()
            for line in hub.log.read_text(errors="replace").splitlines():
                if line.startswith("Safeguarding hub: "):
                    hub.url = line.removeprefix("Safeguarding hub: ").strip()
            if time.monotonic() > deadline:
                pytest.fail(f"the hub printed no URL within 60 s:\n{hub.tail()}", pytrace=False)
            time.sleep(0.1)
        assert HUB_PASSWORD not in hub.log.read_text(errors="replace")
        yield hub
    finally:
        status = hub.stop()
    assert status == 0, f"the hub exited with status {status} after Ctrl-C:\n{hub.tail()}"


@pytest.fixture
def worker(settings: Settings, tmp_path: Path) -> Iterator[Process]:
    """The pipeline: ``safeguarding worker --bootstrap B --topic-prefix P --mode live``."""
    executable = Path(sys.executable).parent / "safeguarding"
    if not executable.is_file():
        found = shutil.which("safeguarding")
        if found is None:
            pytest.fail(
                "no `safeguarding` command next to this Python or on PATH: pip install -e '.[dev]'",
                pytrace=False,
            )
        executable = Path(found)
    command = [
        str(executable),
        "worker",
        "--bootstrap",
        settings.bootstrap,
        "--topic-prefix",
        settings.topic_prefix,
        "--mode",
        "live",
    ]
    process = start_process(
        "the worker",
        command,
        tmp_path / "worker.log",
        {"SAFEGUARDING_DATA_DIR": str(tmp_path / "worker-data")},
    )
    try:
        yield process
    finally:
        process.stop(timeout=60)


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
