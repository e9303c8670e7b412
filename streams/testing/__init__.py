"""Test machinery that other test suites (and benchmarks) can import: brokers to run against.

``streams.testing.kafka`` runs the embedded Tansu broker or a single-node Apache Kafka from the
jars ``make kafka-jars`` builds; ``tests/integration/conftest.py`` turns it into fixtures.
"""
