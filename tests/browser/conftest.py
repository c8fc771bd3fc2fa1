"""Browser tests: loopback-only networking for each, and the browser matrix they produce.

Every test in this directory runs inside the loopback-only network namespace (where the
process may make one), so pages, servers and browsers see nothing but loopback.

Each run of a test parametrized by `browser_name` (through `page_runner`) is recorded. At
the end of the session the outcomes, the browsers' versions and the facts tests noted in
`page_runner.facts` are merged into `docs/snippets/browser_matrix.json`, from which
`docs/snippets/browser_matrix.md` (the table the documentation includes) is rewritten:

* a run where no browser test passed or failed (all skipped, or none selected) writes
  nothing;
* a cell is replaced only by a run that executed that test in that browser;
* a new browser version drops the older version's cells of that browser;
* the rows of a test module that was collected are exactly its tests (removed tests go).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import BROWSERS, PageRunner

__all__ = [
    "MATRIX_JSON",
    "MATRIX_MD",
    "pytest_collection_finish",
    "pytest_deselected",
    "pytest_runtest_makereport",
    "pytest_sessionfinish",
]

ROOT = Path(__file__).resolve().parents[2]
MATRIX_JSON = ROOT / "docs" / "snippets" / "browser_matrix.json"
"""The recorded outcomes (machine-readable, merged run after run)."""
MATRIX_MD = ROOT / "docs" / "snippets" / "browser_matrix.md"
"""The table included by docs/explanation/browsers.md."""

TITLES = {"chromium": "Chromium", "firefox": "Firefox"}
FACTS = {
    "dialect": "WebTransport dialect seen by the server",
    "localhost": "`localhost` reached the server over",
    "after_close": "QUIC connection after `close()`",
}
"""Facts shown in the browsers table, in this order, with their headings."""
MODULE_ORDER = ("test_echo", "test_messages_browser", "test_clicker_browser", "test_harness")
"""The order of the scenario groups; modules not named here come last, by path."""


@dataclass
class _Run:
    results: dict[str, dict[str, str]] = field(default_factory=dict)
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    runners: dict[str, PageRunner] = field(default_factory=dict)
    known: dict[str, set[str]] = field(default_factory=dict)
    reasons: dict[str, dict[str, str]] = field(default_factory=dict)


_RUN = pytest.StashKey[_Run]()


@pytest.fixture(autouse=True)
def _loopback_only(browser_network: None) -> Iterator[None]:
    yield


def _scenario(item: pytest.Item) -> tuple[str, str] | None:
    """The scenario id (the node id without the browser) and the browser, if any."""
    callspec = getattr(item, "callspec", None)
    if callspec is None or "browser_name" not in callspec.params:
        return None
    browser: str = callspec.params["browser_name"]
    parts = callspec.id.split("-")
    parts.remove(browser)
    base = f"{item.nodeid.split('[', 1)[0]}"
    return (f"{base}[{'-'.join(parts)}]" if parts else base), browser


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().splitlines()[0].strip() if (doc or "").strip() else ""


def _row(item: pytest.Item, scenario: str) -> dict[str, Any]:
    module = getattr(item, "module", None)
    function = getattr(item, "function", None)
    name = getattr(item, "originalname", item.name)
    title = _first_line(getattr(function, "__doc__", None))
    title = title or name.removeprefix("test_").replace("_", " ").capitalize()
    if "[" in scenario:
        title += f" ({scenario.split('[', 1)[1].rstrip(']')})"
    path, line, _ = item.location
    return {
        "module": path,
        "line": line,
        "group": _first_line(getattr(module, "__doc__", None)) or path,
        "title": title,
    }


def _run(config: pytest.Config) -> _Run:
    return config.stash.setdefault(_RUN, _Run())


def pytest_deselected(items: list[pytest.Item]) -> None:
    """Remember deselected browser tests: their modules' rows stay complete.

    Args:
        items: The deselected tests.
    """
    for item in items:
        found = _scenario(item)
        if found is not None:
            _run(item.config).known.setdefault(item.location[0], set()).add(found[0])


def pytest_collection_finish(session: pytest.Session) -> None:
    """Remember which browser tests each collected module holds.

    Args:
        session: The test session.
    """
    for item in session.items:
        found = _scenario(item)
        if found is not None:
            _run(session.config).known.setdefault(item.location[0], set()).add(found[0])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Record the outcome of every phase of a browser test.

    Args:
        item: The test.
        call: The phase.

    Returns:
        The report.
    """
    report: pytest.TestReport = yield
    found = _scenario(item)
    if found is None:
        return report
    scenario, browser = found
    run = _run(item.config)
    cells = run.results.setdefault(scenario, {})
    if report.failed:
        cells[browser] = "failed"
    elif hasattr(report, "wasxfail"):
        cells[browser] = "expected failure"
        run.reasons.setdefault(scenario, {})[browser] = str(report.wasxfail)
    elif report.skipped:
        cells.setdefault(browser, "skipped")
    elif report.when == "call":
        cells.setdefault(browser, "passed")
    run.rows.setdefault(scenario, _row(item, scenario))
    runner = (item.funcargs or {}).get("page_runner") if hasattr(item, "funcargs") else None
    if isinstance(runner, PageRunner):
        run.runners[runner.name] = runner
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Merge this run's outcomes into the matrix files, when a browser test ran.

    Args:
        session: The test session.
    """
    run = session.config.stash.get(_RUN, None)
    if run is None:
        return
    ran = {
        scenario: {b: outcome for b, outcome in cells.items() if outcome != "skipped"}
        for scenario, cells in run.results.items()
    }
    ran = {scenario: cells for scenario, cells in ran.items() if cells}
    if not ran or not run.runners:
        return
    matrix = _load()
    browsers: dict[str, Any] = matrix["browsers"]
    rows: dict[str, Any] = matrix["scenarios"]
    for name, runner in run.runners.items():
        old = browsers.get(name, {})
        if old.get("version") != runner.version:
            old = {}
            for row in rows.values():
                row["results"].pop(name, None)
        browsers[name] = {
            "title": runner.title,
            "version": runner.version,
            "facts": {**old.get("facts", {}), **runner.facts},
        }
    for module, scenarios in run.known.items():
        for scenario in [s for s, row in rows.items() if row["module"] == module]:
            if scenario not in scenarios:
                del rows[scenario]
    for scenario, cells in ran.items():
        row = rows.setdefault(scenario, {"results": {}})
        row.update(run.rows[scenario])
        row["results"].update({b: o for b, o in cells.items() if b in run.runners})
        notes = row.setdefault("reasons", {})
        for browser in cells:
            if browser in run.runners:
                notes.pop(browser, None)
        notes.update(run.reasons.get(scenario, {}))
    MATRIX_JSON.write_text(json.dumps(matrix, indent=2, sort_keys=True) + "\n")
    MATRIX_MD.write_text(render(matrix))


def _load() -> dict[str, Any]:
    try:
        matrix = json.loads(MATRIX_JSON.read_text())
    except (OSError, ValueError):
        return {"browsers": {}, "scenarios": {}}
    if not isinstance(matrix, dict):
        return {"browsers": {}, "scenarios": {}}
    matrix.setdefault("browsers", {})
    matrix.setdefault("scenarios", {})
    return matrix


def render(matrix: dict[str, Any]) -> str:
    """Write the matrix as Markdown: a table of browsers, then scenarios by group.

    Args:
        matrix: The content of the JSON file.

    Returns:
        The Markdown text.
    """
    browsers = [name for name in BROWSERS if name in matrix["browsers"]]
    info = matrix["browsers"]
    lines = [
        "<!-- Written by the browser tests (tests/browser/conftest.py). Do not edit. -->",
        "",
        "| browser | version | " + " | ".join(FACTS.values()) + " |",
        "|---|---|" + "---|" * len(FACTS),
    ]
    for name in browsers:
        facts = info[name].get("facts", {})
        cells = [facts.get(key, "not recorded") for key in FACTS]
        lines.append(f"| {info[name]['title']} | {info[name]['version']} | {' | '.join(cells)} |")
    lines += [
        "",
        "| scenario | " + " | ".join(info[name]["title"] for name in browsers) + " |",
        "|---|" + ":-:|" * len(browsers),
    ]
    group = None
    rows = sorted(matrix["scenarios"].values(), key=_position)
    counts = {name: 0 for name in browsers}
    notes: list[str] = []
    for row in rows:
        if row["group"] != group:
            group = row["group"]
            lines.append(f"| **{group.rstrip('.')}** |" + " |" * len(browsers))
        cells = []
        for name in browsers:
            outcome = row["results"].get(name, "not run")
            counts[name] += outcome == "passed"
            if outcome == "expected failure":
                notes.append(f"{info[name]['title']}, {row['title']}: {row['reasons'][name]}.")
                outcome = f"⚠️ known issue [{len(notes)}]"
            cells.append({"passed": "✅ passed", "failed": "❌ failed"}.get(outcome, outcome))
        lines.append(f"| {row['title']} | {' | '.join(cells)} |")
    total = len(rows)
    summary = ", ".join(f"{info[name]['title']} {counts[name]}/{total}" for name in browsers)
    lines += ["", f"Scenarios passed: {summary}.", ""]
    if notes:
        lines += ["Known issues:", ""]
        lines += [f"{number}. {note}" for number, note in enumerate(notes, 1)]
        lines.append("")
    return "\n".join(lines)


def _position(row: dict[str, Any]) -> tuple[int, str, int, str]:
    name = Path(row["module"]).stem
    rank = MODULE_ORDER.index(name) if name in MODULE_ORDER else len(MODULE_ORDER)
    return rank, row["module"], row["line"], row["title"]
