"""Output paths checked before any work starts: one-line errors instead of a traceback after
minutes of work (a missing folder, a folder where a file is expected, or the reverse)."""

from __future__ import annotations

import os
from pathlib import Path

from mlsysgym.core.errors import MlsysgymError

__all__ = ["OutputPathError", "check_output_dir", "check_output_file"]


class OutputPathError(MlsysgymError):
    """An output path that cannot be written: its folder is missing, or it is of the wrong kind."""


def check_output_file(path: str | os.PathLike[str], what: str = "output file") -> Path:
    """``path`` if a file can be written there: its folder exists and is writable, and ``path``
    is not a directory. OutputPathError otherwise (nothing is created)."""
    p = Path(path)
    if p.is_dir():
        raise OutputPathError(f"{what} {p} is a directory; give a file path inside it")
    parent = p.parent
    if not parent.is_dir():
        raise OutputPathError(f"cannot write {what} {p}: the folder {parent} does not exist; "
                              f"create it first")
    if not os.access(parent, os.W_OK | os.X_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise OutputPathError(f"cannot write {what} {p}: permission denied")
    return p


def check_output_dir(path: str | os.PathLike[str], what: str = "output folder") -> Path:
    """``path`` if it is a folder or can be created as one (its nearest existing ancestor is a
    writable folder). OutputPathError otherwise (nothing is created)."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputPathError(f"{what} {p} is a file, not a folder; give a folder path")
    ancestor = p
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputPathError(f"cannot create {what} {p}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputPathError(f"cannot write {what} {p}: permission denied in {ancestor}")
    return p
