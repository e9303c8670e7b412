"""Output files that are whole or absent: a run that fails or is interrupted leaves the file it
was writing as it was before (an earlier run's alerts are not lost to a half-written file that
looks complete)."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from streams.errors import ConfigurationError


@contextlib.contextmanager
def replaced_on_success(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """A binary file to write ``path`` through: a hidden file beside it, which replaces
    ``path`` when the block ends normally and is removed when it raises (Ctrl-C included).
    Missing parent directories are made."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        file = partial.open("xb")  # "x": the process's umask applies, as to ``path``
    except OSError as exc:  # name the file the user asked for, not the hidden one
        raise OSError(exc.errno, exc.strerror, str(target)) from exc
    try:
        with file:
            yield file
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def check_outputs(
    inputs: Iterable[str | os.PathLike[str]], outputs: dict[str, str | os.PathLike[str] | None]
) -> None:
    """Raise :class:`ConfigurationError` for an output (option name -> path) that is a
    directory, or the same file as an input or another output (writing it would destroy the
    input before it is read)."""
    seen: dict[Path, str] = {Path(p).resolve(): f"input {p}" for p in inputs}
    for option, path in outputs.items():
        if path is None:
            continue
        resolved = Path(path).resolve()
        if resolved.is_dir():
            raise ConfigurationError(f"{option} {path} is a directory; give a file name")
        other = seen.get(resolved)
        if other is not None:
            raise ConfigurationError(f"{option} {path} is also the {other}; give another file")
        seen[resolved] = option
