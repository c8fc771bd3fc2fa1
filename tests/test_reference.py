"""The API reference documents every public name, and nothing private.

The site is built once for this module; its `objects.inv` (written by mkdocstrings in the
Sphinx inventory format) lists every documented object, so it is the ground truth of what
the reference holds.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

import wtframe

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "docs" / "reference"
INDEX = REFERENCE / "index.md"
BUILD_TIMEOUT = 300

PUBLIC_MODULES = sorted(
    info.name for info in pkgutil.iter_modules(wtframe.__path__) if not info.name.startswith("_")
)
"""Every module of the package whose name does not start with an underscore."""

_HEADER = b"# Sphinx inventory version 2"
_LINE = re.compile(r"(?x)(.+?)\s+(\S+:\S+)\s+(-?\d+)\s+(\S*)\s+(.*)")


@dataclass(frozen=True)
class InventoryEntry:
    """One line of an `objects.inv`: `name domain:role priority uri dispname`."""

    name: str
    role: str
    priority: int
    uri: str

    @property
    def anchor(self) -> str:
        """The id of the HTML element the entry points to (the object rendered there)."""
        return self.uri.partition("#")[2]


def read_inventory(data: bytes) -> dict[str, InventoryEntry]:
    """Parse a version 2 Sphinx inventory.

    Args:
        data: The whole `objects.inv` file.

    Returns:
        The entries by name, with `$` in URIs expanded to the name.

    Raises:
        ValueError: If the data is not a version 2 inventory.
    """
    lines = data.split(b"\n", 4)
    if len(lines) < 5 or lines[0].rstrip() != _HEADER:
        raise ValueError("not a version 2 Sphinx inventory")
    entries: dict[str, InventoryEntry] = {}
    for line in zlib.decompress(lines[4]).decode().splitlines():
        found = _LINE.fullmatch(line.rstrip())
        if found is None:
            raise ValueError(f"malformed inventory line: {line!r}")
        name, role, priority, uri, _ = found.groups()
        if uri.endswith("$"):
            uri = uri[:-1] + name
        entries.setdefault(name, InventoryEntry(name, role, int(priority), uri))
    return entries


def is_private(dotted: str) -> bool:
    """Whether a dotted path has a component such as `_runner` (dunders are public)."""
    return any(
        part.startswith("_") and not (part.startswith("__") and part.endswith("__"))
        for part in dotted.split(".")
    )


def rendered(inventory: dict[str, InventoryEntry]) -> set[str]:
    """The objects that have their own section in the site (not only an alias to one)."""
    return {entry.name for entry in inventory.values() if entry.anchor == entry.name}


def documented_at(
    inventory: dict[str, InventoryEntry], module: ModuleType, name: str
) -> str | None:
    """Where `module.name` is documented: the rendered object its entry points to.

    Falls back to the path where the object is defined (`obj.__module__`), for names a
    module re-exports from another one.

    Returns:
        The rendered object's dotted path, or `None` if the name is documented nowhere.
    """
    sections = rendered(inventory)
    candidates = [f"{module.__name__}.{name}"]
    defined_in = getattr(getattr(module, name, None), "__module__", None)
    if isinstance(defined_in, str):
        candidates.append(f"{defined_in}.{name}")
    for candidate in candidates:
        entry = inventory.get(candidate)
        if entry is not None and entry.anchor in sections:
            return entry.anchor
    return None


@pytest.fixture(scope="module")
def inventory(tmp_path_factory: pytest.TempPathFactory) -> dict[str, InventoryEntry]:
    """Build the site and read its inventory.

    Not `--strict`: warnings anywhere in the site are `test_docs.py`'s business, and this
    module checks only what the reference holds.
    """
    target = tmp_path_factory.mktemp("reference-site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--no-strict", "--site-dir", str(target)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return read_inventory((target / "objects.inv").read_bytes())


def test_read_inventory_parses_the_sphinx_format() -> None:
    body = (
        "wtframe.app.App py:class 1 reference/app/#$ -\n"
        "wtframe.App py:class 2 reference/app/#wtframe.app.App App\n"
        "wtframe.codes py:module 1 reference/codes/#wtframe.codes -\n"
    )
    data = _HEADER + b"\n# Project: x\n# Version: 0\n# zlib\n" + zlib.compress(body.encode())
    entries = read_inventory(data)
    assert entries["wtframe.app.App"].anchor == "wtframe.app.App"
    assert entries["wtframe.App"].anchor == "wtframe.app.App"
    assert entries["wtframe.App"].priority == 2
    assert rendered(entries) == {"wtframe.app.App", "wtframe.codes"}
    with pytest.raises(ValueError, match="version 2"):
        read_inventory(b"# Sphinx inventory version 1\n" + data.split(b"\n", 1)[1])


def test_is_private() -> None:
    assert is_private("wtframe._runner.SessionRunner")
    assert is_private("wtframe.streams._StreamBase.stream_id")
    assert not is_private("wtframe.__version__")
    assert not is_private("wtframe.streams.Stream")


def test_public_modules_are_found() -> None:
    assert {"app", "session", "streams", "exceptions"} <= set(PUBLIC_MODULES)
    assert not [name for name in PUBLIC_MODULES if name.startswith("_")]


def test_every_public_module_has_a_page(inventory: dict[str, InventoryEntry]) -> None:
    sections = rendered(inventory)
    missing = [
        f"wtframe.{name} (add docs/reference/{name}.md holding `::: wtframe.{name}`, and nav)"
        for name in PUBLIC_MODULES
        if f"wtframe.{name}" not in sections
    ]
    assert not missing, "modules missing from the reference:\n  " + "\n  ".join(missing)


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_name_in_all_is_documented(
    inventory: dict[str, InventoryEntry], module_name: str
) -> None:
    module = importlib.import_module(f"wtframe.{module_name}")
    public = getattr(module, "__all__", None)
    assert public is not None, f"wtframe.{module_name} declares no __all__"
    missing = [
        f"wtframe.{module_name}.{name}"
        for name in public
        if documented_at(inventory, module, name) is None
    ]
    assert not missing, (
        f"names in wtframe.{module_name}.__all__ that the reference does not document "
        f"(give them a docstring, and check docs/reference/{module_name}.md):\n  "
        + "\n  ".join(missing)
    )


def test_every_top_level_name_is_documented(inventory: dict[str, InventoryEntry]) -> None:
    missing = [
        f"wtframe.{name}"
        for name in wtframe.__all__
        if documented_at(inventory, wtframe, name) is None
    ]
    assert not missing, "names in wtframe.__all__ documented nowhere:\n  " + "\n  ".join(missing)


def test_index_says_where_each_top_level_name_is_documented() -> None:
    index = INDEX.read_text()
    missing = []
    for name in wtframe.__all__:
        defined_in = getattr(getattr(wtframe, name), "__module__", None)
        if not isinstance(defined_in, str) or defined_in == "wtframe":
            continue  # __version__ and other names wtframe defines itself
        link = f"[`{name}`][{defined_in}.{name}]"
        if link not in index:
            missing.append(f"{link} (in the row of `{defined_in}`)")
    assert not missing, (
        "docs/reference/index.md does not list these re-exports of wtframe:\n  "
        + "\n  ".join(missing)
    )


def test_nothing_private_is_rendered(inventory: dict[str, InventoryEntry]) -> None:
    private = sorted(name for name in rendered(inventory) if is_private(name))
    assert not private, "private objects rendered in the reference:\n  " + "\n  ".join(private)
