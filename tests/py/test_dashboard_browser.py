"""The dashboard in a real headless browser: Debian's chromium driven by
Selenium through Debian's chromedriver, against ``python -m
pgtq.dashboard`` serving a database with an hour of queue life, reading as
a login role granted pgtq_observer and acting as one granted pgtq_admin.

Every wait waits for an element or its text (WebDriverWait), never for
time. With PGTQ_DASHBOARD_SCREENSHOT=PATH the overview is also saved as
a PNG there (the docs' docs/dashboard.png comes from this run).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import pgcluster, scalar
from dashboard_data import QUEUES, Populated, populate
from psycopg.conninfo import make_conninfo
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as seen
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# As root Chromium needs --no-sandbox; without the networking flags it
# tries to reach Google's services, which this closed network refuses.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
)
WAIT = 30.0  # seconds an element may take to appear (a shared 2-core machine)
# What chromedriver sometimes says, instead of "stale element reference",
# when an element of a page that is being replaced is read.
GONE_FROM_DOCUMENT = "does not belong to the document"
SCREENSHOT_VARIABLE = "PGTQ_DASHBOARD_SCREENSHOT"


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    """One headless Chromium for the module, with a fresh profile."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail(
            "the browser test needs Debian's chromium and chromium-driver: `make test` installs them"
            " (scripts/ensure-system-deps.sh)",
            pytrace=False,
        )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    with tempfile.TemporaryDirectory(prefix="pgtq-chromium-") as profile:
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        try:
            yield driver
        finally:
            driver.quit()


class DashboardServer:
    """``python -m pgtq.dashboard`` on a free loopback port, stopped by its pid."""

    def __init__(self, *args: str) -> None:
        self.port = pgcluster.free_port()
        self.output: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pgtq.dashboard", "--port", str(self.port), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.process.stdout is not None
        for line in self.process.stdout:  # until uvicorn says it listens, or the process ends
            self.output.append(line)
            if "Uvicorn running on" in line:
                break
        else:
            self.process.wait(timeout=30)
            pytest.fail(f"the dashboard did not start:\n{''.join(self.output)}")
        self._drainer = threading.Thread(target=self._drain, daemon=True)
        self._drainer.start()

    def _drain(self) -> None:
        assert self.process.stdout is not None
        self.output.extend(self.process.stdout)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
        self._drainer.join(timeout=30)
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def data(dsn: str) -> Populated:
    return populate(dsn)


@pytest.fixture
def serve(dsn: str, login_role: Callable[..., str]) -> Iterator[Callable[..., DashboardServer]]:
    """Start dashboards reading as an observer (and acting as an admin unless read-only)."""
    reader = make_conninfo(dsn, user=login_role("pgtq_observer", "dashboard"))
    admin = make_conninfo(dsn, user=login_role("pgtq_admin", "dashboard_admin"))
    servers: list[DashboardServer] = []

    def start(*args: str) -> DashboardServer:
        servers.append(DashboardServer("--dsn", reader, "--admin-dsn", admin, *args))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def wait(browser: WebDriver) -> WebDriverWait[WebDriver]:
    return WebDriverWait(browser, WAIT)


def clickable(browser: WebDriver, selector: str) -> WebElement:
    """The element the CSS selector names, once it can be clicked."""
    return wait(browser).until(seen.element_to_be_clickable((By.CSS_SELECTOR, selector)))


def is_gone(element: WebElement) -> bool:
    """Whether the element's page has been replaced (a navigation happened)."""
    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as error:
        if GONE_FROM_DOCUMENT in str(error):
            return True
        raise
    return False


def click_through(browser: WebDriver, element: WebElement) -> None:
    """Click a link or a form's button, and wait until its page has been replaced.

    Reading an element while the old page is being torn down races with
    chromedriver (it may fail with an inspector error, not a stale element);
    after this, every read is of the new page.
    """
    page = browser.find_element(By.TAG_NAME, "html")
    element.click()
    wait(browser).until(lambda _: is_gone(page))


def text_of(browser: WebDriver, element_id: str) -> str:
    return wait(browser).until(seen.visibility_of_element_located((By.ID, element_id))).text


def wait_for_text(browser: WebDriver, element_id: str, text: str) -> None:
    wait(browser).until(seen.text_to_be_present_in_element((By.ID, element_id), text))


def wait_for_flash(browser: WebDriver, text: str) -> None:
    wait(browser).until(seen.text_to_be_present_in_element((By.CSS_SELECTOR, "p.flash"), text))


def failed_count(db: psycopg.Connection[Any], queue: str) -> int:
    return int(scalar(db, "SELECT count(*) FROM pgtq.jobs WHERE queue = %s AND state = 'failed'", [queue]))


def save_screenshot(browser: WebDriver) -> None:
    """The overview as a PNG where PGTQ_DASHBOARD_SCREENSHOT says, sized to the page."""
    path = os.environ.get(SCREENSHOT_VARIABLE)
    if not path:
        return
    height = int(browser.execute_script("return document.documentElement.scrollHeight"))
    browser.set_window_size(1400, height + 24)
    wait(browser).until(lambda driver: driver.execute_script("return document.readyState") == "complete")
    browser.save_screenshot(path)
    browser.set_window_size(1400, 1000)


def test_an_operator_sees_the_queues_reads_a_traceback_and_retries(
    browser: WebDriver, data: Populated, db: psycopg.Connection[Any], serve: Callable[..., DashboardServer]
) -> None:
    server = serve()
    browser.get(server.url + "/")
    table = wait(browser).until(seen.visibility_of_element_located((By.ID, "queues")))
    shown = [row.get_attribute("data-queue") for row in table.find_elements(By.CSS_SELECTOR, "tbody tr")]
    assert shown == sorted(QUEUES)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#depth-chart polyline")) == len(QUEUES)
    assert browser.find_elements(By.CSS_SELECTOR, "#throughput-chart rect.bar-completed")
    save_screenshot(browser)

    # From the overview's failed count of queue webhooks to its failed jobs, then to one of them.
    click_through(browser, clickable(browser, "tr[data-queue='webhooks'] a[href*='state=failed']"))
    click_through(browser, clickable(browser, f"a[href='/jobs/{data.failed_job}']"))
    assert "Traceback (most recent call last):" in text_of(browser, "job-error")
    assert text_of(browser, "job-state") == "failed"

    kept = failed_count(db, "webhooks")
    click_through(browser, browser.find_element(By.ID, "retry"))
    wait_for_text(browser, "job-state", "ready")
    wait_for_flash(browser, f"Job {data.failed_job} retried: it is ready again.")
    assert scalar(db, "SELECT state::text FROM pgtq.jobs WHERE id = %s", [data.failed_job]) == "ready"
    assert failed_count(db, "webhooks") == kept - 1


def test_bulk_retry_asks_for_confirmation_in_the_browser(
    browser: WebDriver, data: Populated, db: psycopg.Connection[Any], serve: Callable[..., DashboardServer]
) -> None:
    server = serve()
    kept = failed_count(db, "webhooks")
    browser.get(server.url + "/")
    click_through(browser, clickable(browser, "tr[data-queue='webhooks'] a[href^='/retry-failed']"))
    wait_for_text(browser, "confirm", f"Retry all {kept} failed jobs of queue webhooks?")
    assert failed_count(db, "webhooks") == kept  # asking changed nothing
    click_through(browser, browser.find_element(By.ID, "confirm-button"))
    wait_for_flash(browser, f"Retried {kept} failed jobs of queue webhooks: they are ready again.")
    assert failed_count(db, "webhooks") == 0
    assert failed_count(db, "reports") == data.failed_by_queue["reports"]


def test_a_post_without_the_csrf_token_is_refused_in_the_browser(
    browser: WebDriver, data: Populated, db: psycopg.Connection[Any], serve: Callable[..., DashboardServer]
) -> None:
    server = serve()
    browser.get(f"{server.url}/jobs/{data.failed_job}")
    wait(browser).until(seen.element_to_be_clickable((By.ID, "retry")))
    browser.execute_script("document.querySelectorAll('input[name=csrf]').forEach(input => input.remove())")
    click_through(browser, browser.find_element(By.ID, "retry"))
    wait_for_text(browser, "error-message", "CSRF token missing or wrong")
    assert scalar(db, "SELECT state::text FROM pgtq.jobs WHERE id = %s", [data.failed_job]) == "failed"


def test_pause_a_queue_in_the_browser(
    browser: WebDriver, data: Populated, db: psycopg.Connection[Any], serve: Callable[..., DashboardServer]
) -> None:
    server = serve()
    browser.get(server.url + "/")
    click_through(browser, clickable(browser, "tr[data-queue='images'] button.pause"))
    wait_for_flash(browser, "Queue images paused: workers take none of its jobs until it is resumed.")
    cell = browser.find_element(By.CSS_SELECTOR, "tr[data-queue='images'] td.flow")
    assert cell.text.strip() == "paused"
    assert scalar(db, "SELECT paused FROM pgtq.queues WHERE queue = 'images'") is True
    assert scalar(db, "SELECT count(*) FROM pgtq.pop('images')") == 0, "a paused queue hands out nothing"

    click_through(browser, browser.find_element(By.CSS_SELECTOR, "tr[data-queue='images'] button.resume"))
    wait_for_flash(browser, "Queue images resumed: workers take its jobs again.")
    assert browser.find_elements(By.CSS_SELECTOR, "tr[data-queue='images'] button.pause")
    assert scalar(db, "SELECT paused FROM pgtq.queues WHERE queue = 'images'") is False


def test_read_only_shows_no_action_and_refuses_every_post(
    browser: WebDriver, data: Populated, db: psycopg.Connection[Any], serve: Callable[..., DashboardServer]
) -> None:
    server = serve("--read-only")
    for path in ("/", f"/jobs/{data.failed_job}", "/jobs?state=failed&queue=webhooks"):
        browser.get(server.url + path)
        wait_for_text(browser, "mode", "read-only")
        actions = "form[method='post'], #retry, #cancel, #delete, #bulk-retry, a[href*='retry-failed']"
        assert browser.find_elements(By.CSS_SELECTOR, actions) == []
    for action in ("retry", "cancel", "delete"):
        request = urllib.request.Request(
            f"{server.url}/jobs/{data.failed_job}/{action}",
            data=urllib.parse.urlencode({"csrf": "x", "confirm": "yes"}).encode(),
            method="POST",
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=WAIT)
        assert refused.value.code == 404
        refused.value.close()
    assert scalar(db, "SELECT state::text FROM pgtq.jobs WHERE id = %s", [data.failed_job]) == "failed"


def test_the_server_stops_cleanly_on_sigterm(serve: Callable[..., DashboardServer], data: Populated) -> None:
    server = serve()
    server.stop()
    # uvicorn shuts down (the app's lifespan closes its pools), then ends by the signal it got.
    assert server.process.returncode in (0, -signal.SIGTERM)
    assert "Application shutdown complete." in "".join(server.output)
