"""Apache Kafka for the integration tests: a single-node KRaft broker run from plain jars.

Apache Kafka is in neither Debian nor PyPI, and CI has no Docker engine, so
``deploy/kafka/pom.xml`` copies the broker jars from Maven Central into ``deploy/kafka/lib/``
(``make kafka-jars``) and :class:`ApacheKafka` runs ``kafka.Kafka`` from them with its data and
logs in a temporary directory. Tests get it, or the embedded Tansu broker, through
:func:`start_broker`.

>>> with ApacheKafka() as kafka:                 # doctest: +SKIP
...     print(kafka.bootstrap)
127.0.0.1:39127

Nothing is cached outside the temporary directory except the jars (and Maven's own ~/.m2).
A missing Java or missing jars raise :class:`KafkaNotInstalled`, never a skip: CI must fail.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar, Literal

from streams.broker import LOOPBACK, BrokerProcess, EmbeddedBroker
from streams.errors import BrokerUnavailable, ConfigurationError

__all__ = [
    "BROKER_NAMES",
    "DEFAULT_KAFKA_LIB",
    "ApacheKafka",
    "BrokerName",
    "KafkaNotInstalled",
    "check_apache_kafka",
    "find_java",
    "find_kafka_lib",
    "kafka_version",
    "start_broker",
]

BrokerName = Literal["tansu", "apache"]
BROKER_NAMES: tuple[BrokerName, ...] = ("tansu", "apache")

#: Where ``make kafka-jars`` puts the jars, in a source checkout. ``SAFEGUARDING_KAFKA_LIB``
#: overrides it (an installed package has no deploy/ directory).
DEFAULT_KAFKA_LIB = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "lib"
KAFKA_LIB_ENV = "SAFEGUARDING_KAFKA_LIB"
MIN_JAVA = 17  # Kafka 4 brokers need Java 17

_HOW_TO_BUILD = "run `make kafka-jars` (mvn -q -f deploy/kafka/pom.xml clean package)"
_HOW_TO_JAVA = (
    "install Java 17 or later (apt-get install -y openjdk-17-jre-headless) or set JAVA_HOME"
)


class KafkaNotInstalled(ConfigurationError):
    """Java or the Apache Kafka jars are missing, so Apache Kafka cannot run here."""


def find_java() -> Path:
    """The ``java`` of ``$JAVA_HOME``, else the one on ``PATH``, checked to be 17 or later.

    Raises :class:`KafkaNotInstalled` with what to install.
    """
    java_home = os.environ.get("JAVA_HOME")
    candidate = Path(java_home) / "bin" / "java" if java_home else None
    if candidate is None or not candidate.is_file():
        found = shutil.which("java")
        candidate = Path(found) if found else None
    if candidate is None:
        raise KafkaNotInstalled(f"Apache Kafka needs Java, and none was found: {_HOW_TO_JAVA}")
    try:
        out = subprocess.run(
            [str(candidate), "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KafkaNotInstalled(f"{candidate} -version failed ({exc}): {_HOW_TO_JAVA}") from exc
    # `openjdk version "17.0.15" 2025-04-15`; Java 8 said "1.8.0_392".
    match = re.search(r'version "(?:1\.)?(\d+)', out.stderr + out.stdout)
    major = int(match.group(1)) if match else 0
    if major < MIN_JAVA:
        raise KafkaNotInstalled(
            f"Apache Kafka 4 needs Java {MIN_JAVA}+, {candidate} is "
            f"{(out.stderr or out.stdout).strip().splitlines()[:1]}: {_HOW_TO_JAVA}"
        )
    return candidate


def find_kafka_lib(lib: Path | None = None) -> Path:
    """The directory of Apache Kafka jars, checked to hold exactly one Kafka version.

    Raises :class:`KafkaNotInstalled` saying how to build it.
    """
    lib = lib or Path(os.environ.get(KAFKA_LIB_ENV) or DEFAULT_KAFKA_LIB)
    if not lib.is_dir():
        raise KafkaNotInstalled(
            f"the Apache Kafka jars are not built ({lib} is missing): {_HOW_TO_BUILD}"
        )
    brokers = sorted(lib.glob("kafka_2.13-*.jar"))
    if not brokers:
        raise KafkaNotInstalled(f"no kafka_2.13-*.jar in {lib}: {_HOW_TO_BUILD}")
    if len(brokers) > 1:
        raise KafkaNotInstalled(
            f"{lib} holds several Kafka versions ({', '.join(p.name for p in brokers)}): "
            f"{_HOW_TO_BUILD}, whose `clean` empties it first"
        )
    for needed in ("kafka-server-*.jar", "kafka-clients-*.jar", "log4j-slf4j-impl-*.jar"):
        if not any(lib.glob(needed)):
            raise KafkaNotInstalled(
                f"{lib} has no {needed}, the build is incomplete: {_HOW_TO_BUILD}"
            )
    return lib


def check_apache_kafka() -> None:
    """Raise :class:`KafkaNotInstalled` unless Java and the jars are both there."""
    find_java()
    find_kafka_lib()


def kafka_version(lib: Path) -> str:
    """``4.3.1``, from the broker jar's name."""
    (jar,) = lib.glob("kafka_2.13-*.jar")
    return jar.name.removeprefix("kafka_2.13-").removesuffix(".jar")


def _cluster_id() -> str:
    """A random Kafka cluster id: 16 bytes, URL-safe base64 without padding (Kafka's Uuid).

    Kafka never hands out ids starting with '-' (they read as command-line options).
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


# The settings that make one node a complete cluster, plus what keeps it small on a shared
# 2-core machine. Anything a test relies on is spelled out rather than left to a default.
_SERVER_PROPERTIES = """\
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers={host}:{controller_port}
listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}
advertised.listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={data}
num.partitions=1
default.replication.factor=1
auto.create.topics.enable=true
delete.topic.enable=true
# A single node: every internal topic has one replica.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# 50 partitions each by default; 4 are plenty for tests and make the first group join faster.
offsets.topic.num.partitions=4
transaction.state.log.num.partitions=4
# Tests join groups often; the default 3 s wait for more members is pure delay here.
group.initial.rebalance.delay.ms=0
# Thread pools sized for a 2-core machine (defaults: 3 network, 8 I/O).
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
log.cleaner.threads=1
"""

_LOG4J2_PROPERTIES = """\
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
# Per-request and per-partition chatter.
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
"""

#: JVM options: a modest heap, and start-up speed over peak throughput (tests, not benchmarks).
DEFAULT_JVM_OPTIONS: tuple[str, ...] = (
    "-Xms128m",
    "-Xmx512m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Djava.awt.headless=true",
)


class ApacheKafka(BrokerProcess):
    """A single-node Apache Kafka (KRaft, broker and controller in one JVM) on 127.0.0.1.

    ``start()`` writes ``server.properties`` and a log4j2 configuration into a temporary
    directory, formats the storage there (``kafka.tools.StorageTool format --standalone``),
    runs ``kafka.Kafka`` and waits for a Metadata answer. Its log is ``server.log`` in that
    directory; the JVM's own output goes to ``apache.log``.

    Raises :class:`KafkaNotInstalled` when Java or the jars are missing.
    """

    name: ClassVar[str] = "apache"

    def __init__(
        self,
        port: int | None = None,
        *,
        controller_port: int | None = None,
        startup_timeout: float = 90.0,
        stop_timeout: float = 30.0,
        workdir: Path | None = None,
        lib: Path | None = None,
        jvm_options: tuple[str, ...] = DEFAULT_JVM_OPTIONS,
        extra_properties: dict[str, str] | None = None,
    ) -> None:
        super().__init__(
            port, startup_timeout=startup_timeout, stop_timeout=stop_timeout, workdir=workdir
        )
        #: The KRaft controller port; ``None`` picks a free one at each start.
        self.requested_controller_port = controller_port
        self._controller_port: int | None = None
        #: Broker settings added to (or overriding) the generated server.properties.
        self.extra_properties = dict(extra_properties or {})
        self.jvm_options = tuple(jvm_options)
        # Checked now, so a machine without Java fails at construction with what to install.
        self.java = find_java()
        self.lib = find_kafka_lib(lib)
        #: The Apache Kafka version the jars hold.
        self.version = kafka_version(self.lib)

    @property
    def controller_port(self) -> int:
        """The KRaft controller listener's port (only meaningful once started)."""
        if self._controller_port is None:
            raise BrokerUnavailable("apache broker has not been started")
        return self._controller_port

    @property
    def server_log(self) -> Path:
        """Kafka's own log (log4j2)."""
        return self.workdir / "server.log"

    def _choose_ports(self) -> None:
        super()._choose_ports()
        while True:
            self._controller_port = self._claim(self.requested_controller_port, "controller")
            if self._controller_port != self._port:
                return

    def _java(self, main_class: str, *args: str) -> list[str]:
        return [
            str(self.java),
            *self.jvm_options,
            f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
            "-cp",
            str(self.lib / "*"),
            main_class,
            *args,
        ]

    def _prepare(self, workdir: Path) -> None:
        data = workdir / "data"
        if data.exists():  # a retried start: KRaft refuses a directory formatted for other ports
            shutil.rmtree(data)
        properties = _SERVER_PROPERTIES.format(
            host=LOOPBACK, port=self.port, controller_port=self.controller_port, data=data
        )
        properties += "".join(f"{key}={value}\n" for key, value in self.extra_properties.items())
        (workdir / "server.properties").write_text(properties)
        (workdir / "log4j2.properties").write_text(_LOG4J2_PROPERTIES.format(log=self.server_log))
        command = self._java(
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            "--cluster-id",
            _cluster_id(),
            "--config",
            str(workdir / "server.properties"),
        )
        with (workdir / "format.log").open("wb") as log:
            try:
                done = subprocess.run(
                    command, stdout=log, stderr=subprocess.STDOUT, timeout=120, check=False
                )
            except subprocess.TimeoutExpired as exc:
                self._failed = True
                raise BrokerUnavailable(
                    f"formatting Kafka storage in {data} took over 120 s"
                ) from exc
        if done.returncode != 0:
            self._failed = True
            raise BrokerUnavailable(
                f"formatting Kafka storage failed (exit status {done.returncode}): "
                f"{' '.join(command)}\n{_tail_text(workdir / 'format.log')}"
            )

    def _command(self, workdir: Path) -> list[str]:
        return self._java("kafka.Kafka", str(workdir / "server.properties"))

    def _log_files(self) -> list[Path]:
        return [self.log_path, self.server_log]


def _tail_text(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"({path}: {exc})"


@contextlib.contextmanager
def start_broker(name: BrokerName) -> Iterator[BrokerProcess]:
    """Run the named broker for the duration of a ``with`` block.

    ``tansu`` is the embedded broker; ``apache`` is :class:`ApacheKafka` and raises
    :class:`KafkaNotInstalled` when Java or the jars are missing.
    """
    broker: BrokerProcess
    if name == "tansu":
        broker = EmbeddedBroker()
    elif name == "apache":
        broker = ApacheKafka()
    else:
        raise ConfigurationError(f"unknown broker {name!r}; expected one of {BROKER_NAMES}")
    with broker:
        yield broker


def main(argv: list[str] | None = None) -> int:
    """``python -m streams.testing.kafka [--port P]``: run Apache Kafka until Ctrl-C.

    For trying the worker against the real thing: prints the bootstrap address alone on
    stdout, the rest on stderr.
    """
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m streams.testing.kafka")
    parser.add_argument("--port", type=int, default=None, help="listener port (default: free)")
    args = parser.parse_args(argv)
    try:
        broker = ApacheKafka(args.port)
        broker.start()
    except (BrokerUnavailable, ConfigurationError) as exc:
        print(f"apache kafka: {exc}", file=sys.stderr)
        return 1
    try:
        print(broker.bootstrap, flush=True)
        print(
            f"Apache Kafka {broker.version} on {broker.bootstrap}, log {broker.server_log}; "
            "Ctrl-C stops it",
            file=sys.stderr,
            flush=True,
        )
        while broker.running:
            time.sleep(0.5)
        print(f"apache kafka exited\n{broker._describe_failure()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        broker.stop()


if __name__ == "__main__":
    raise SystemExit(main())
