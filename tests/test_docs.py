"""The documentation site: it builds strictly, its samples run, and its diagrams render."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from tests.support.browser import ChromiumDriver, PageServer

ROOT = Path(__file__).resolve().parent.parent
SNIPPETS_DIR = ROOT / "docs" / "snippets"
SNIPPETS = sorted(SNIPPETS_DIR.rglob("*.py"))
SNIPPET_TIMEOUT = 60
RENDER_TIMEOUT = 20.0

# Pages with mermaid diagrams, and how many each holds.
DIAGRAM_PAGES = {
    "explanation/quic-and-http3/": 4,
    "explanation/session-lifecycle/": 1,
}


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """Build the site once for this module, without `-q` so that warnings are printed."""
    target = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(target)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return target, result


def test_site_builds_without_warnings(
    site: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    target, result = site
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    warnings = [line for line in output.splitlines() if "WARNING" in line]
    assert warnings == [], output
    assert (target / "index.html").is_file()
    for page in DIAGRAM_PAGES:
        assert (target / page / "index.html").is_file()


def test_site_vendors_mermaid(site: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    target, _ = site
    assert (target / "assets" / "javascripts" / "mermaid.min.js").stat().st_size > 1_000_000
    html = (target / "explanation" / "quic-and-http3" / "index.html").read_text()
    assert "assets/javascripts/mermaid.min.js" in html
    assert html.count('<pre class="mermaid">') == DIAGRAM_PAGES["explanation/quic-and-http3/"]
    assert "fonts.googleapis.com" not in html


def test_snippets_exist() -> None:
    assert SNIPPETS, "docs/snippets holds no Python sample"


@pytest.mark.parametrize(
    "snippet", SNIPPETS, ids=[path.relative_to(SNIPPETS_DIR).as_posix() for path in SNIPPETS]
)
def test_snippet_runs(snippet: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(snippet)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=SNIPPET_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # A snippet whose output the docs quote keeps that output next to it, as <name>.txt.
    shown = snippet.with_suffix(".txt")
    if shown.exists():
        assert result.stdout == shown.read_text(), (
            f"{snippet.name} no longer prints what {shown.name} shows in the docs; "
            f"run it and update {shown.name} and the pages that quote it"
        )


def _wait_for_diagrams(driver: ChromiumDriver, expected: int) -> list[float]:
    """Wait until material has rendered every mermaid block, and return their heights."""
    script = """
        const pending = document.querySelectorAll("pre.mermaid").length;
        const heights = Array.from(document.querySelectorAll("div.mermaid"),
                                   (el) => el.getBoundingClientRect().height);
        return [pending, heights];
    """
    deadline = time.monotonic() + RENDER_TIMEOUT
    pending, heights = driver.execute_script(script)
    while time.monotonic() < deadline:
        if pending == 0 and len(heights) == expected and all(h > 50 for h in heights):
            break
        time.sleep(0.1)
        pending, heights = driver.execute_script(script)
    assert pending == 0, f"{pending} mermaid blocks were never rendered"
    assert len(heights) == expected
    assert all(height > 50 for height in heights), heights
    return [float(height) for height in heights]


def _outside_requests(driver: ChromiumDriver, origin: str) -> list[str]:
    names: list[str] = driver.execute_script(
        "return performance.getEntriesByType('resource').map((entry) => entry.name);"
    )
    return [name for name in names if not name.startswith(origin)]


@pytest.mark.browser
def test_diagrams_render_in_chromium(
    site: tuple[Path, subprocess.CompletedProcess[str]],
    chromium: ChromiumDriver,
    tmp_path: Path,
) -> None:
    target, result = site
    assert result.returncode == 0
    size = chromium.get_window_size()
    chromium.set_window_size(1280, 1000)
    try:
        with PageServer(target) as pages:
            origin = pages.url()
            chromium.get(pages.url("index.html"))
            assert chromium.title.startswith("wtframe")
            assert chromium.save_screenshot(str(tmp_path / "home.png"))
            assert _outside_requests(chromium, origin) == []

            for page, expected in DIAGRAM_PAGES.items():
                chromium.get(pages.url(page))
                _wait_for_diagrams(chromium, expected)
                assert _outside_requests(chromium, origin) == []

            chromium.get(pages.url("explanation/quic-and-http3/"))
            _wait_for_diagrams(chromium, DIAGRAM_PAGES["explanation/quic-and-http3/"])
            chromium.execute_script(
                "const top = document.querySelector('div.mermaid').getBoundingClientRect().top;"
                "window.scrollTo(0, window.scrollY + top - 160);"
            )
            time.sleep(0.5)  # let the header's title transition finish
            assert chromium.save_screenshot(str(tmp_path / "diagram-page.png"))
            diagram = chromium.find_element(By.CSS_SELECTOR, "div.mermaid")
            assert diagram.screenshot(str(tmp_path / "diagram.png"))
    finally:
        chromium.get("about:blank")
        chromium.set_window_size(size["width"], size["height"])
    print(f"screenshots in {tmp_path}")
