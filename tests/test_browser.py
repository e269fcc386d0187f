"""The Dagster UI as a data engineer uses it, in a real browser.

`dagster dev` (webserver and daemon, as `make ui` starts it) serves a tiny simulated world on loopback; headless
Chromium (Debian's package, driven by Playwright) opens the asset graph, finds every stage of the loop, launches
the first month of the loop job from the launchpad and waits until the runs page says it succeeded. The
screenshots are kept under test-artifacts/browser/.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTEFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
STAGES = ("collect", "warehouse", "analyse", "measure", "improve", "design", "execute")
FIRST_MONTH = "2025-01-01"
LOCATION = "orchestration.definitions"

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for(url: str, timeout: float, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"dagster dev exited with {server.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    pytest.fail(f"{url} did not answer within {timeout:.0f} s:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def browser_path() -> str:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium package")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium chromium-driver)")
    pytest.importorskip("playwright.sync_api")
    return str(CHROMIUM)


@pytest.fixture(scope="module")
def ui(tmp_path_factory, dbt_manifest) -> Iterator[dict]:
    """`dagster dev` on a free loopback port over an empty, tiny simulated world (as `make ui` runs it)."""
    home = tmp_path_factory.mktemp("ui") / "crm"
    venv_bin = Path(sys.executable).parent
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"CRM_SOURCE", "CRM_CHANNEL", "CRM_FILES_DIR", "CRM_WAREHOUSE", "CRM_START_MONTH"}
    }
    env.update(
        CRM_HOME=str(home),
        CRM_SIM_CUSTOMERS="500",
        CRM_SIM_SEED="7",
        DAGSTER_HOME=str(home / "dagster"),
        DO_NOT_TRACK="1",
        DAGSTER_DISABLE_TELEMETRY="1",
        PATH=os.pathsep.join([str(venv_bin), env.get("PATH", "")]),
    )
    subprocess.run([str(venv_bin / "crm-loop"), "prepare"], cwd=ROOT, env=env, check=True, capture_output=True)
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTEFACTS / "dagster-dev.log"
    port = _free_port()
    with log.open("w") as output:
        server = subprocess.Popen(
            [str(venv_bin / "dagster"), "dev", "-w", str(ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the webserver, daemon and code server stop together
        )
    try:
        _wait_for(f"http://127.0.0.1:{port}/server_info", 120, server, log)
        yield {"url": f"http://127.0.0.1:{port}", "home": home, "log": log, "env": env}
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGINT)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=10)


def test_asset_graph_shows_the_loop_and_a_month_launched_from_the_ui_succeeds(ui, browser_path):
    from playwright.sync_api import expect, sync_playwright

    started = time.monotonic()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path, args=["--no-sandbox"], headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(60_000)
        # The UI greets a new browser with a newsletter dialog: skip it whenever it shows up.
        page.add_locator_handler(page.get_by_role("button", name="Skip"), lambda skip: skip.click())
        try:
            # The asset graph reads as the loop: one group per stage.
            page.goto(f"{ui['url']}/asset-groups", wait_until="networkidle")
            graph = page.locator("svg foreignObject")
            for stage in STAGES:
                expect(graph.get_by_text(stage, exact=True).first).to_be_visible(timeout=90_000)
            page.screenshot(path=str(ARTEFACTS / "asset-graph.png"))

            # The first month of the loop job, from the launchpad.
            page.goto(f"{ui['url']}/locations/{LOCATION}/jobs/crm_loop/playground", wait_until="networkidle")
            partition = page.get_by_placeholder("Partition")
            partition.click()
            partition.fill(FIRST_MONTH)
            page.get_by_text(FIRST_MONTH, exact=True).last.click()
            expect(page.get_by_text("No errors")).to_be_visible()
            page.screenshot(path=str(ARTEFACTS / "launchpad.png"))
            page.get_by_role("button", name="Launch Run").click()
            page.wait_for_url(re.compile(r".*/runs/[0-9a-f-]{36}"))
            run_id = page.url.rstrip("/").split("/")[-1]
            expect(page.get_by_text(f"partition: {FIRST_MONTH}")).to_be_visible()

            # The run page follows it to the end.
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                if page.get_by_text("Success", exact=True).count():
                    break
                if page.get_by_text("Failure", exact=True).count():
                    page.screenshot(path=str(ARTEFACTS / "run-failed.png"))
                    pytest.fail(f"the run {run_id} failed; see {ARTEFACTS / 'run-failed.png'}")
                page.wait_for_timeout(2000)
            else:
                page.screenshot(path=str(ARTEFACTS / "run-timeout.png"))
                pytest.fail(f"the run {run_id} did not finish within 240 s")
            page.screenshot(path=str(ARTEFACTS / "run-succeeded.png"))

            # The runs page lists it as a success.
            page.goto(f"{ui['url']}/runs", wait_until="networkidle")
            run_link = page.locator(f"a[href$='/runs/{run_id}']").first
            expect(run_link).to_be_visible()
            row = page.locator("div", has=run_link).filter(has_text="Success")
            expect(row.last).to_be_visible()
            page.screenshot(path=str(ARTEFACTS / "runs.png"))

            # A chart in the metadata of its asset: an inline image, a few tens of kilobytes.
            page.goto(f"{ui['url']}/assets/charts/rfm_heat_map?view=events", wait_until="networkidle")
            page.get_by_text("[Show Markdown]").first.click()
            chart = page.locator("img[src^='data:image/png;base64']").first
            expect(chart).to_be_visible()
            assert chart.evaluate("image => image.naturalWidth") > 200
            page.screenshot(path=str(ARTEFACTS / "rfm-heat-map.png"))
        finally:
            browser.close()
    assert time.monotonic() - started < 300

    # The webserver and the daemon do not hold the warehouse: this process can write to it while they run.
    with duckdb.connect(str(ui["home"] / "warehouse.duckdb")) as connection:
        scored = connection.execute(
            "select count(*) from analytics.customer_scores where as_of_month = ?", [FIRST_MONTH]
        ).fetchone()[0]
    assert scored > 0


def test_chromium_is_debians_package(browser_path):
    """The browser is the distribution's, not a download: its path is a Debian package's file."""
    found = shutil.which("dpkg")
    if found is None:
        pytest.skip("not a Debian system")
    owner = subprocess.run([found, "-S", os.path.realpath(browser_path)], capture_output=True, text=True)
    assert owner.returncode == 0 and "chromium" in owner.stdout
