"""The functional core: events, case state, rules, clock and quality measures.

Nothing here imports Faust, Kafka, structlog or reads a clock: every function takes values and
returns values, so each rule edge is a unit test that runs in microseconds.
"""
