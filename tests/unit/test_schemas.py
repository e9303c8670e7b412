"""The Avro schemas: parseable by the reference implementation, the same fields as the typed
values, documented, and backward compatible with their previous committed version."""

from __future__ import annotations

import copy
import dataclasses
import subprocess
from enum import StrEnum
from pathlib import Path
from typing import Any

import avro.schema
import fastavro
import orjson
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from streams.codec import NAMESPACE, SCHEMA_DIR
from streams.domain.alerts import (
    ActionKind,
    Alert,
    AlertAction,
    AlertStatus,
    DeadLetter,
    Mode,
    RuleId,
    Severity,
)
from streams.domain.events import (
    Agency,
    DashRisk,
    HouseholdChild,
    Incident,
    IncidentType,
    MissingReport,
    MissingStatus,
    Referral,
    RiskLevel,
)

REPO = SCHEMA_DIR.parent

RECORDS: dict[str, type] = {
    "Incident.avsc": Incident,
    "MissingReport.avsc": MissingReport,
    "Referral.avsc": Referral,
    "Alert.avsc": Alert,
    "AlertAction.avsc": AlertAction,
    "DeadLetter.avsc": DeadLetter,
}

ENUMS: dict[tuple[str, str], type[StrEnum]] = {
    ("Incident.avsc", "incident_type"): IncidentType,
    ("Incident.avsc", "dash_risk"): DashRisk,
    ("MissingReport.avsc", "status"): MissingStatus,
    ("MissingReport.avsc", "risk_level"): RiskLevel,
    ("Referral.avsc", "agency"): Agency,
    ("Alert.avsc", "rule_id"): RuleId,
    ("Alert.avsc", "severity"): Severity,
    ("Alert.avsc", "status"): AlertStatus,
    ("Alert.avsc", "mode"): Mode,
    ("AlertAction.avsc", "kind"): ActionKind,
}

TIMESTAMP = {"type": "long", "logicalType": "timestamp-millis"}


def load(file: str) -> dict[str, Any]:
    schema: dict[str, Any] = orjson.loads((SCHEMA_DIR / file).read_bytes())
    return schema


def fields(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {field["name"]: field for field in schema["fields"]}


def nested_household_child() -> dict[str, Any]:
    items: dict[str, Any] = fields(load("Incident.avsc"))["children"]["type"]["items"]
    return items


def test_one_file_per_record_and_nothing_else() -> None:
    assert sorted(p.name for p in SCHEMA_DIR.glob("*.avsc")) == sorted(RECORDS)


@pytest.mark.parametrize("file", sorted(RECORDS))
def test_reference_implementation_parses_schema(file: str) -> None:
    parsed = avro.schema.parse((SCHEMA_DIR / file).read_text())
    assert isinstance(parsed, avro.schema.RecordSchema)
    assert parsed.fullname == f"{NAMESPACE}.{file.removesuffix('.avsc')}"
    fastavro.parse_schema(load(file))  # and the hot-path implementation


@pytest.mark.parametrize(("file", "record"), sorted(RECORDS.items()))
def test_schema_fields_are_the_dataclass_fields(file: str, record: type) -> None:
    assert list(fields(load(file))) == [f.name for f in dataclasses.fields(record)]


def test_household_child_is_nested_in_incident() -> None:
    child = nested_household_child()
    assert child["type"] == "record"
    assert child["name"] == "HouseholdChild"
    assert [f["name"] for f in child["fields"]] == [
        f.name for f in dataclasses.fields(HouseholdChild)
    ]


@pytest.mark.parametrize(
    ("file", "field", "enum"),
    [(file, field, enum) for (file, field), enum in ENUMS.items()],
    ids=[f"{file}:{field}" for file, field in ENUMS],
)
def test_enum_symbols_are_the_python_enum_values(file: str, field: str, enum: type) -> None:
    schema_type = fields(load(file))[field]["type"]
    if isinstance(schema_type, list):
        assert schema_type[0] == "null"
        schema_type = schema_type[1]
    assert schema_type["type"] == "enum"
    assert schema_type["name"] == enum.__name__
    assert schema_type["symbols"] == [member.value for member in enum]


def every_field() -> list[tuple[str, dict[str, Any], dataclasses.Field[Any]]]:
    rows = []
    for file, record in sorted(RECORDS.items()):
        by_name = fields(load(file))
        rows += [(file, by_name[f.name], f) for f in dataclasses.fields(record)]
    child = fields(nested_household_child())
    rows += [("Incident.avsc", child[f.name], f) for f in dataclasses.fields(HouseholdChild)]
    return rows


EVERY_FIELD = every_field()


@pytest.mark.parametrize(
    ("field", "python"),
    [row[1:] for row in EVERY_FIELD],
    ids=[f"{file}:{python.name}" for file, _, python in EVERY_FIELD],
)
def test_field_type_matches_the_dataclass(field: dict[str, Any], python: Any) -> None:
    annotation = str(python.type)  # a string: the domain modules use postponed annotations
    nullable = annotation.endswith("| None")
    schema_type = field["type"]
    assert field.get("doc"), f"field {python.name} has no doc"
    if nullable:
        assert isinstance(schema_type, list)
        assert schema_type[0] == "null"
        assert len(schema_type) == 2
        assert "default" in field
        assert field["default"] is None
        schema_type = schema_type[1]
        annotation = annotation.removesuffix("| None").strip()
    else:
        assert not isinstance(schema_type, list)
    expected = {
        "str": "string",
        "bool": "boolean",
        "bytes": "bytes",
        "Millis": TIMESTAMP,
        "tuple[str, ...]": {"type": "array", "items": "string"},
    }.get(annotation)
    if annotation == "int":
        assert schema_type in ("int", "long")
    elif expected is not None:
        assert schema_type == expected
    else:  # an enum or the nested record
        assert schema_type["type"] in ("enum", "array")


@pytest.mark.parametrize("file", sorted(RECORDS))
def test_every_named_type_has_a_doc(file: str) -> None:
    def named(node: Any) -> list[dict[str, Any]]:
        if isinstance(node, list):
            return [n for item in node for n in named(item)]
        if not isinstance(node, dict):
            return []
        found = [node] if node.get("type") in ("record", "enum") else []
        for value in node.values():
            found += named(value)
        return found

    types = named(load(file))
    assert types
    for node in types:
        assert node.get("doc"), f"{node['name']} has no doc"


# --------------------------------------------------------------------------------------------
# Evolution: the current schema must read data written with the previous committed version.


def git(repo: Path, *args: str) -> str | None:
    """Output of a git command in ``repo``, or None when it fails."""
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        return None
    return done.stdout if done.returncode == 0 else None


def previous_version(repo: Path, path: str) -> tuple[str, str] | str:
    """(commit, text) of the version of ``path`` to evolve from, or why there is none.

    The latest commit that touched the file with a content different from the working copy;
    when every committed version equals the working copy, HEAD's version.
    """
    current = (repo / path).read_text()
    if git(repo, "rev-parse", "--git-dir") is None:
        return f"{repo} is not a git repository git can read here (or git is not installed)"
    log = git(repo, "log", "--format=%H", "--", path) or ""
    for commit in log.split():
        text = git(repo, "show", f"{commit}:{path}")
        if text is not None and text != current:
            return commit, text
    head = git(repo, "show", f"HEAD:{path}")
    if head is None:
        return f"{path} has no committed version yet: there is nothing to evolve from"
    return "HEAD", head


def compatibility(reader: str, writer: str) -> Any:
    return ReaderWriterCompatibilityChecker().get_compatibility(
        reader=avro.schema.parse(reader), writer=avro.schema.parse(writer)
    )


@pytest.mark.parametrize("file", sorted(RECORDS))
def test_schema_reads_data_written_with_its_previous_version(file: str) -> None:
    previous = previous_version(REPO, f"schemas/{file}")
    if isinstance(previous, str):
        pytest.skip(previous)
    commit, old = previous
    result = compatibility(reader=(SCHEMA_DIR / file).read_text(), writer=old)
    assert result.compatibility is SchemaCompatibilityType.compatible, (
        f"schemas/{file} cannot read data written with its version at {commit[:12]}: "
        f"{sorted(result.messages)} at {sorted(result.locations)}. Add new fields with a "
        "default, never remove an enum symbol, never change a type."
    )


def evolved(change: str) -> str:
    """The Incident schema after one change."""
    schema = copy.deepcopy(load("Incident.avsc"))
    by_name = fields(schema)
    if change == "add field without default":
        schema["fields"].append({"name": "force", "type": "string", "doc": "x"})
    elif change == "add nullable field with default":
        schema["fields"].append(
            {"name": "force", "type": ["null", "string"], "default": None, "doc": "x"}
        )
    elif change == "remove enum symbol":
        by_name["incident_type"]["type"]["symbols"].remove("OTHER")
    elif change == "add enum symbol":
        by_name["incident_type"]["type"]["symbols"].append("STALKING")
    elif change == "change a type":
        by_name["incident_id"]["type"] = "int"
    elif change == "make a field required":
        by_name["dash_risk"]["type"] = by_name["dash_risk"]["type"][1]
        del by_name["dash_risk"]["default"]
    elif change == "remove a field":
        schema["fields"] = [f for f in schema["fields"] if f["name"] != "dash_risk"]
    elif change == "widen int to long":
        nested = by_name["children"]["type"]["items"]
        fields(nested)["age"]["type"] = ["null", "long"]
    else:  # pragma: no cover - a typo in the table below
        raise AssertionError(change)
    return orjson.dumps(schema).decode()


@pytest.mark.parametrize(
    ("change", "compatible"),
    [
        ("add field without default", False),
        ("remove enum symbol", False),
        ("change a type", False),
        ("make a field required", False),
        ("add nullable field with default", True),
        ("add enum symbol", True),
        ("remove a field", True),
        ("widen int to long", True),
    ],
)
def test_compatibility_checker_tells_a_breaking_change(change: str, compatible: bool) -> None:
    """The evolution test cannot pass vacuously: the checker does reject a breaking change."""
    result = compatibility(
        reader=evolved(change), writer=(SCHEMA_DIR / "Incident.avsc").read_text()
    )
    assert (result.compatibility is SchemaCompatibilityType.compatible) is compatible, (
        result.messages
    )


def test_previous_version_walks_the_history(tmp_path: Path) -> None:
    """previous_version on a scratch repository, through each state a schema file can be in."""
    if git(tmp_path, "--version") is None:
        pytest.skip("git is not installed")

    def run(*args: str) -> str:
        identity = ["-c", "user.name=test", "-c", "user.email=test@example.org"]
        done = subprocess.run(
            ["git", "-C", str(tmp_path), *identity, *args],
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip()

    path = "schemas/X.avsc"
    target = tmp_path / path
    target.parent.mkdir()
    target.write_text("v1")
    assert "not a git repository" in str(previous_version(tmp_path, path))

    run("init", "-q")
    assert "no committed version yet" in str(previous_version(tmp_path, path))

    run("add", path)
    run("commit", "-q", "-m", "v1")
    first = run("rev-parse", "HEAD")
    assert previous_version(tmp_path, path) == ("HEAD", "v1")  # unchanged since HEAD

    target.write_text("v2")
    assert previous_version(tmp_path, path) == (first, "v1")  # edited, not committed

    run("commit", "-q", "-am", "v2")
    (tmp_path / "other").write_text("")
    run("add", "other")
    run("commit", "-q", "-m", "unrelated")
    assert previous_version(tmp_path, path) == (first, "v1")  # committed: the version before
