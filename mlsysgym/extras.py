"""Which optional extra provides a missing import, so the CLI can say what to install.

The extras and their distributions come from the installed package's metadata (the
``[project.optional-dependencies]`` of pyproject.toml), so this never drifts from what
``pip install 'mlsysgym[extra]'`` installs.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import metadata

# Import names that differ from the distribution name with '-' → '_'.
IMPORT_NAMES: dict[str, str] = {
    "iree-base-compiler": "iree",
    "iree-base-runtime": "iree",
    "zigzag-dse": "zigzag",
    "pyyaml": "yaml",
    "import-linter": "importlinter",
}
# Modules imported by the project that come with a declared distribution, not declared
# themselves: module → the distribution that brings it.
BROUGHT_BY: dict[str, str] = {"gpytorch": "botorch", "linear_operator": "botorch"}
# Extras that only group others; never the one to name.
GROUPING_EXTRAS: frozenset[str] = frozenset({"all"})

_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?[^;]*;\s*(.*)$")
_EXTRA = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


def module_of(distribution: str) -> str:
    """The top-level import name of a distribution (``stable-baselines3`` → ``stable_baselines3``)."""
    key = re.sub(r"[-_.]+", "-", distribution).lower()
    return IMPORT_NAMES.get(key, key.replace("-", "_"))


@cache
def extras_by_module() -> dict[str, str]:
    """Top-level module → the extra that declares its distribution directly.

    ``mlsysgym[x]`` self-references and grouping extras (``all``) are skipped, so ``torch``
    maps to the ``torch`` extra although ``rl`` pulls it in too.
    """
    try:
        requires = metadata.requires("mlsysgym") or []
    except metadata.PackageNotFoundError:  # running from a source tree without metadata
        return {}
    out: dict[str, str] = {}
    for req in requires:
        m = _REQUIREMENT.match(req)
        extra = _EXTRA.search(req) if m else None
        if not m or not extra or extra.group(1) in GROUPING_EXTRAS:
            continue
        dist = m.group(1)
        if dist.lower() == "mlsysgym":
            continue
        out.setdefault(module_of(dist), extra.group(1))
    for module, dist in BROUGHT_BY.items():
        if module_of(dist) in out:
            out.setdefault(module, out[module_of(dist)])
    return out


def extra_for(module_name: str | None) -> str | None:
    """The extra to install for a missing module (``"ray.tune"`` → ``"ray"``), or None when
    no extra provides it."""
    if not module_name:
        return None
    return extras_by_module().get(module_name.split(".")[0])


def missing_extra_message(extra: str) -> str:
    """The one line the CLI prints when a command needs ``extra``."""
    return f"this command needs the '{extra}' extra: pip install 'mlsysgym[{extra}]'"
