"""The web console (recyclebin.console): its pages through FastAPI's TestClient, and its
flows in a real browser, Debian's headless Chromium driven by Selenium, against a real
``recyclebin serve`` on a free loopback port (and an outer FastAPI app that mounts the
console under a prefix). Screenshots of every step go to build/console-screenshots/.

Every wait is bounded (WAIT seconds); only 127.0.0.1 is contacted; Selenium is given the
driver's path, so Selenium Manager never looks for (or downloads) anything."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin

import httpx
import pytest
from fastapi import FastAPI
from selenium import webdriver
from selenium.common.exceptions import (
    NoAlertPresentException,
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

import recyclebin as rb
from recyclebin.auth import BearerTokenAuth, TokenConfigError, grants_from_mapping, parse_tokens
from recyclebin.console import CONTENT_SECURITY_POLICY, SIGN_IN_REASONS, create_console_router
from recyclebin.fastapi import create_router
from recyclebin.server import create_app
from rest_helpers import cli_command, free_loopback_port

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT = 10.0               # seconds, for any one thing to appear in the page
STARTUP_TIMEOUT = 30.0
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "console-screenshots"
HOSTILE = "<img src=x onerror=alert(1)>"

# One policy, a tenant per behaviour: "ml" as the ML workspace service (soft delete,
# permanent delete allowed), "dw" as the data-development console (typed name, no permanent
# delete), "wk" as the cloud-workstation API (stopped first, always permanent).
POLICY = """\
version: 1
name: console-test
retention: {default_days: 14, min_days: 1, max_days: 14}
components:
  notebooks: {on_delete: retain}
  compute_instance: {on_delete: destroy}
  persistent_volume: {on_delete: preserve}
tenants:
  dw:
    permanent_delete: {allowed: false}
    preconditions: {require_confirm_name: true}
  wk:
    soft_delete: {enabled: false}
    preconditions: {require_stopped: true}
"""

ALICE_TOKEN = "console-alice-7f3c"
PLATFORM_TOKEN = "console-platform-b91d"


def _subscriptions_key_accepted() -> bool:
    # Tokens are gaining a `subscriptions:` key (API.md v2, "Security"); until the parser
    # knows it, an unknown key is refused, so the token file says it only when accepted.
    try:
        parse_tokens('"t": {principal: p, subscriptions: "*"}')
    except TokenConfigError:
        return False
    return True


def token_table() -> dict[str, Any]:
    alice: dict[str, Any] = {"principal": "alice"}
    if _subscriptions_key_accepted():
        alice["subscriptions"] = "*"
    return {ALICE_TOKEN: alice, PLATFORM_TOKEN: {"principal": "platform", "platform": True}}


# --------------------------------------------------------------- pages via TestClient

class _Page(HTMLParser):
    """What the security and usability checks need from a page's HTML."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.script_bodies: list[str] = []
        self.handlers: list[tuple[str, str]] = []
        self.inputs: list[dict[str, str | None]] = []
        self.labels_for: set[str] = set()
        self.links: list[str] = []
        self.body: dict[str, str | None] = {}
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.handlers += [(tag, name) for name, _ in attrs if name.lower().startswith("on")]
        if tag == "script":
            self.scripts.append(attributes)
            self._in_script = True
        elif tag == "input":
            self.inputs.append(attributes)
        elif tag == "label" and attributes.get("for"):
            self.labels_for.add(str(attributes["for"]))
        elif tag == "body":
            self.body = attributes
        for name in ("href", "src", "action"):
            value = attributes.get(name)
            if value is not None and not (tag == "a" and value.startswith("#")):
                self.links.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.script_bodies.append(data)


def parse_page(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


PAGES = ["", "workspaces", "recycle-bin", "admin"]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(tmp_path / "rb.db", rb.Policy.from_yaml(POLICY), tokens=token_table(),
                     reaper_interval=None)
    with TestClient(app) as test_client:
        yield test_client


@pytest.mark.parametrize("page", PAGES)
def test_every_page_forbids_inline_script_and_labels_every_input(client: TestClient,
                                                                 page: str) -> None:
    response = client.get(f"/console/{page}?subscription=ml")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert csp == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "require-trusted-types-for 'script'" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    parsed = parse_page(response.text)
    assert parsed.handlers == []                         # no onclick= and the like
    assert parsed.script_bodies == []                    # no inline script
    assert [s.get("src", "").split("?")[0] for s in parsed.scripts] == ["static/console.js"]
    for field in parsed.inputs:
        if field.get("type") != "hidden":
            assert field.get("id") in parsed.labels_for, field
    assert parsed.inputs, "every page has a form"


def test_pages_use_the_words_of_the_contract(client: TestClient) -> None:
    workspaces = client.get("/console/workspaces").text
    for words in (">Workspaces<", ">Delete permanently<", ">Type the workspace name to confirm<",
                  ">OK<", ">Recycle bin<"):
        assert words in workspaces, words
    recycle_bin = client.get("/console/recycle-bin").text
    for column in ("Name", "Resource group", "Deletion time", "Physical deletion countdown"):
        assert f'<th scope="col">{column}</th>' in recycle_bin
    assert ">Next page<" in recycle_bin
    admin = client.get("/console/admin").text
    assert ['<th scope="col">Kind</th>', '<th scope="col">Workspace id</th>',
            '<th scope="col">Since</th>'] == re.findall(r'<th scope="col">[^<]*</th>', admin)


def test_query_values_are_escaped_and_reasons_are_fixed_texts(client: TestClient) -> None:
    page = client.get("/console/workspaces", params={"subscription": HOSTILE,
                                                     "resource_group": '"><script>x</script>'})
    assert HOSTILE not in page.text and "<script>x" not in page.text
    assert 'value="&lt;img src=x onerror=alert(1)&gt;"' in page.text
    assert parse_page(page.text).script_bodies == []
    for reason, text in SIGN_IN_REASONS.items():
        assert text in client.get("/console/", params={"reason": reason}).text
    hostile = client.get("/console/", params={"reason": "<b>pwned</b>"}).text
    assert "pwned" not in hostile


@pytest.mark.parametrize(("limit", "expected"), [
    ("100", "100"), ("1", "1"), ("1000", "1000"), ("0", "25"), ("1001", "25"), ("-3", "25"),
    ("ten", "25"), ("", "25")])
def test_page_size_comes_from_the_url_within_the_api_limits(client: TestClient, limit: str,
                                                           expected: str) -> None:
    page = parse_page(client.get("/console/recycle-bin", params={"limit": limit}).text)
    assert page.body["data-limit"] == expected


def test_static_files_ship_in_the_package_with_their_types(client: TestClient) -> None:
    package = resources.files("recyclebin")
    for name in ("console.js", "console.css", "favicon.svg"):
        assert package.joinpath("static", name).is_file()
    for name in ("base.html", "sign_in.html", "workspaces.html", "recycle_bin.html",
                 "admin.html"):
        assert package.joinpath("templates", name).is_file()
    script = client.get("/console/static/console.js")
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert script.headers["x-content-type-options"] == "nosniff"
    assert client.get("/console/static/console.js",
                      headers={"If-None-Match": script.headers["etag"]}).status_code == 304
    assert client.get("/console/static/console.css").headers["content-type"].startswith(
        "text/css")
    for missing in ("nope.js", "..%2Fconsole.py", "%2e%2e%2f__init__.py"):
        assert client.get(f"/console/static/{missing}").status_code == 404
    # Data goes into the page only as text: the script never parses strings as HTML.
    source = script.text
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in source, sink


def test_console_redirects_to_its_directory_relatively(client: TestClient) -> None:
    response = client.get("/console", follow_redirects=False)
    assert response.status_code == 308 and response.headers["location"] == "console/"


def test_the_console_router_refuses_another_origin_or_a_bad_path() -> None:
    with pytest.raises(ValueError, match="own origin"):
        create_console_router(api_url="https://elsewhere.example/")
    with pytest.raises(ValueError, match="own origin"):
        create_console_router(api_url="//elsewhere.example/")
    with pytest.raises(ValueError, match="path must start"):
        create_console_router(path="console")
    with pytest.raises(ValueError, match="path must start"):
        create_console_router(path="/console/")


def _outer_app(engine: rb.Engine, auth: BearerTokenAuth) -> FastAPI:
    """Another platform's app that mounts the REST routes and the console under a prefix."""
    outer = FastAPI()
    outer.include_router(create_router(engine, auth), prefix="/tools/rb")
    outer.include_router(create_console_router(), prefix="/tools/rb")
    return outer


def test_under_a_prefix_every_relative_url_of_a_page_resolves(tmp_path: Path) -> None:
    engine = rb.Engine.open(":memory:", policy=rb.Policy.from_yaml(POLICY))
    try:
        client = TestClient(_outer_app(engine, BearerTokenAuth(grants_from_mapping(
            token_table()))))
        base = "http://testserver/tools/rb/console/"
        for page in PAGES:
            url = urljoin(base, page)
            parsed = parse_page(client.get(url).text)
            for link in parsed.links:
                target = urljoin(url, link)
                assert target.startswith(base), (page, link)
                assert client.get(target).status_code == 200, (page, link)
            api = urljoin(url, str(parsed.body["data-api"]))
            assert api == "http://testserver/tools/rb/"
            me = client.get(api + "me", headers={"Authorization": f"Bearer {ALICE_TOKEN}"})
            assert me.json()["principal_id"] == "alice"
        # Mounted with root_path (a sub-application), the same relative URLs hold.
        host = FastAPI()
        host.mount("/portal", _outer_app(engine, BearerTokenAuth(grants_from_mapping(
            token_table()))))
        mounted = TestClient(host)
        page = mounted.get("/portal/tools/rb/console/recycle-bin")
        assert page.status_code == 200
        assert mounted.get("/portal/tools/rb/console/static/console.js").status_code == 200
        assert mounted.get("/portal/tools/rb/console",
                           follow_redirects=False).headers["location"] == "console/"
    finally:
        engine.close()


# ------------------------------------------------------------------------ the browser

class Server:
    def __init__(self, process: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
        self.process = process
        self.base_url = base_url
        self.log = log

    def api(self, token: str = ALICE_TOKEN) -> httpx.Client:
        return httpx.Client(base_url=self.base_url + self.api_prefix,
                            headers={"Authorization": f"Bearer {token}"}, timeout=10,
                            trust_env=False)

    api_prefix = ""
    console = "/console/"


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECYCLEBIN_")}
    env["PYTHONWARNINGS"] = "error"
    return env


def _start(command: list[str], log: Path, base: str, health: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT, env=_clean_env())
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with httpx.Client(trust_env=False) as probe:
                if probe.get(base + health, timeout=1).status_code == 200:
                    return process
        except httpx.TransportError:
            time.sleep(0.1)
    if process.poll() is None:
        process.kill()
        process.wait(timeout=20)
    raise AssertionError(f"the server did not start:\n{log.read_text(errors='replace')}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``recyclebin serve`` with the test policy and a temporary token file."""
    directory = tmp_path_factory.mktemp("console-server")
    (directory / "policy.yaml").write_text(POLICY)
    (directory / "tokens.json").write_text(json.dumps(token_table()))
    port = free_loopback_port()
    base = f"http://127.0.0.1:{port}"
    process = _start([*cli_command(), "serve", "--host", "127.0.0.1", "--port", str(port),
                      "--db", str(directory / "rb.db"), "--policy",
                      str(directory / "policy.yaml"), "--tokens",
                      str(directory / "tokens.json"), "--reaper-interval", "0",
                      "--log-level", "warning"],
                     directory / "server.log", base, "/healthz")
    try:
        yield Server(process, base, directory / "server.log")
    finally:
        _stop(process)
    assert ALICE_TOKEN not in (directory / "server.log").read_text(errors="replace")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    options = Options()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,900",
                     "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                     "--disable-background-networking", "--disable-sync",
                     f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT * 2)
    driver.set_script_timeout(WAIT)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


class Console:
    """The browser on the console, with bounded waits and screenshots."""

    def __init__(self, driver: webdriver.Chrome, server: Server) -> None:
        self.driver = driver
        self.server = server

    def url(self, page: str = "", **query: str) -> str:
        text = self.server.base_url + self.server.console + page
        if query:
            text += "?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items())
        return text

    def open(self, page: str = "", **query: str) -> None:
        self.driver.get(self.url(page, **query))

    def wait(self, predicate: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.05,
                                 ignored_exceptions=(StaleElementReferenceException,)).until(
                lambda _: predicate(), message=what)
        except TimeoutException:
            self.shot("timeout")
            raise

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self, css: str) -> str:
        return str(self.find(css).text)

    def shot(self, name: str) -> None:
        self.driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))

    def sign_in(self, token: str = ALICE_TOKEN) -> None:
        self.open()
        self.driver.execute_script("sessionStorage.clear()")
        field = self.wait(lambda: self.find("#token"), "the token field")
        field.send_keys(token, Keys.ENTER)
        self.wait(lambda: self.driver.current_url.split("?")[0].endswith("/workspaces"),
                  "the workspaces page after sign-in")

    def rows(self, table: str) -> list[list[str]]:
        # One script, so that a table being re-rendered is read whole or not at all.
        return list(self.driver.execute_script(
            "return Array.from(document.querySelectorAll(arguments[0]),"
            " (row) => Array.from(row.cells, (cell) => cell.innerText.trim()));",
            f"#{table} tbody tr"))

    def wait_rows(self, table: str, predicate: Callable[[list[list[str]]], bool],
                  what: str) -> list[list[str]]:
        return self.wait(lambda: (lambda r: r if predicate(r) else None)(self.rows(table)),
                         what)

    def button(self, table: str, name: str, label: str) -> WebElement:
        """The row's button, once the row is there."""
        def find() -> WebElement | None:
            for row in self.all(f"#{table} tbody tr"):
                cells = row.find_elements(By.CSS_SELECTOR, "td")
                if cells and cells[0].text == name:
                    return row.find_element(By.XPATH,
                                            f".//button[normalize-space()='{label}']")
            return None
        return self.wait(find, f"a row {name!r} with a {label!r} button")

    def script_errors(self) -> list[str]:
        """Console messages that mean a script failed or the CSP blocked something."""
        return [entry["message"] for entry in self.driver.get_log("browser")
                if "Content Security Policy" in entry["message"]
                or "Uncaught" in entry["message"] or "TrustedHTML" in entry["message"]]

    def no_alert(self) -> None:
        with pytest.raises(NoAlertPresentException):
            self.driver.switch_to.alert.text


@pytest.fixture
def console(browser: webdriver.Chrome, server: Server) -> Iterator[Console]:
    page = Console(browser, server)
    browser.get_log("browser")  # start each test with an empty browser log
    yield page
    assert page.script_errors() == []


def create(server: Server, sub: str, rg: str, name: str, **body: Any) -> dict[str, Any]:
    with server.api() as api:
        response = api.put(f"/subscriptions/{sub}/resourceGroups/{rg}/workspaces/"
                           f"{quote(name, safe='')}", json=body or None)
        assert response.status_code == 201, response.text
        return dict(response.json())


def soft_delete(server: Server, sub: str, rg: str, name: str, **params: str) -> None:
    with server.api() as api:
        response = api.delete(f"/subscriptions/{sub}/resourceGroups/{rg}/workspaces/"
                              f"{quote(name, safe='')}", params=params)
        assert response.status_code == 200, response.text


def deleted(server: Server, sub: str, rg: str, name: str) -> int:
    with server.api() as api:
        return api.get(f"/subscriptions/{sub}/resourceGroups/{rg}/deletedWorkspaces/"
                       f"{quote(name, safe='')}").status_code


def live(server: Server, sub: str, rg: str, name: str) -> int:
    with server.api() as api:
        return api.get(f"/subscriptions/{sub}/resourceGroups/{rg}/workspaces/"
                       f"{quote(name, safe='')}").status_code


COUNTDOWN = re.compile(r"^(\d+) d (\d+) h (\d+) m$")


def test_countdown_and_utc_formatting_at_their_boundaries(console: Console) -> None:
    console.open()
    console.wait(lambda: console.driver.execute_script(
        "return window.recyclebinConsole !== undefined"), "console.js to load")
    cases = [
        # (purge_at, now, countdown)
        ("2026-01-15T00:00:00Z", "2026-01-01T00:00:00Z", "14 d 0 h 0 m"),
        ("2026-01-15T00:00:00Z", "2026-01-01T00:00:00.001Z", "13 d 23 h 59 m"),
        ("2026-01-15T00:00:00Z", "2026-01-01T00:00:01Z", "13 d 23 h 59 m"),
        ("2026-01-15T00:00:00Z", "2026-01-14T23:59:00Z", "0 d 0 h 1 m"),
        ("2026-01-15T00:00:00Z", "2026-01-14T23:59:00.001Z", "0 d 0 h 0 m"),
        ("2026-01-15T00:00:00Z", "2026-01-15T00:00:00Z", "due now"),
        ("2026-01-15T00:00:00Z", "2026-01-16T00:00:00Z", "due now"),
        # Month, leap-day and year ends: a difference of instants.
        ("2026-02-01T00:00:30Z", "2026-01-31T23:59:30Z", "0 d 0 h 1 m"),
        ("2028-03-01T12:00:00Z", "2028-02-28T12:00:00Z", "2 d 0 h 0 m"),
        ("2026-03-01T12:00:00Z", "2026-02-28T12:00:00Z", "1 d 0 h 0 m"),
        ("2027-01-01T00:00:00Z", "2026-12-31T23:00:00.5Z", "0 d 0 h 59 m"),
        ("2026-04-01T00:00:00Z", "2026-03-18T01:01:00Z", "13 d 22 h 59 m"),
        # Microseconds and offsets as the API may send them.
        ("2026-01-15T00:00:00.999999Z", "2026-01-01T00:00:00.999Z", "14 d 0 h 0 m"),
        ("2026-01-15T01:00:00+01:00", "2026-01-01T00:00:00Z", "14 d 0 h 0 m"),
    ]
    for purge_at, now, expected in cases:
        got = console.driver.execute_script(
            "const c = window.recyclebinConsole;"
            "return c.formatCountdown(c.parseUtc(arguments[0]), c.parseUtc(arguments[1]));",
            purge_at, now)
        assert got == expected, (purge_at, now)
    for iso, shown in (("2026-01-31T23:59:30.123456Z", "2026-01-31 23:59:30 UTC"),
                       ("2028-02-29T00:00:00Z", "2028-02-29 00:00:00 UTC"),
                       ("2026-06-30T23:30:00-01:00", "2026-07-01 00:30:00 UTC"),
                       ("0001-01-01T00:00:00Z", "0001-01-01 00:00:00 UTC"),
                       ("9999-12-31T23:59:59.999999Z", "9999-12-31 23:59:59 UTC")):
        assert console.driver.execute_script(
            "const c = window.recyclebinConsole; return c.formatUtc(c.parseUtc(arguments[0]));",
            iso) == shown
    assert console.driver.execute_script(
        "return isNaN(window.recyclebinConsole.parseUtc('yesterday'))") is True


def test_a_wrong_or_missing_token_shows_the_sign_in_page(console: Console) -> None:
    console.open("workspaces", subscription="ml")
    console.driver.execute_script("sessionStorage.clear()")
    console.open("workspaces", subscription="ml")
    console.wait(lambda: "/console/?reason=missing" in console.driver.current_url,
                 "the sign-in page without a token")
    assert console.text("#sign-in-message") == "Sign in to continue."
    console.find("#token").send_keys("not-a-token", Keys.ENTER)
    console.wait(lambda: "not accepted" in console.text("#sign-in-message"),
                 "the refusal of a wrong token")
    console.shot("01-wrong-token")
    assert console.find("#token").get_attribute("value") == ""
    assert "not-a-token" not in console.driver.current_url
    assert console.driver.execute_script("return sessionStorage.length") == 0
    # A token that stops working in the middle of a session: back to sign-in.
    console.driver.execute_script(
        "sessionStorage.setItem('recyclebin.token', 'revoked-token')")
    console.open("recycle-bin", subscription="ml")
    console.wait(lambda: "/console/?reason=invalid" in console.driver.current_url,
                 "the sign-in page after a 401")
    assert "Sign in again" in console.text("#sign-in-message")
    assert "Traceback" not in console.driver.page_source


def test_sign_in_and_list_live_workspaces(console: Console, server: Server) -> None:
    create(server, "ml", "rg-list", "beta")
    create(server, "ml", "rg-list", "alpha")
    create(server, "ml", "rg-other", "gamma")
    console.sign_in()
    assert "token" not in console.driver.current_url.lower()
    assert console.text("#signed-in-as") == "Signed in as alice"
    console.shot("02-signed-in")
    console.find("#subscription").send_keys("ml")
    console.find("#resource_group").send_keys("rg-list", Keys.ENTER)
    rows = console.wait_rows("workspaces", lambda r: len(r) == 2 and r[0][0] == "alpha",
                             "the live workspaces of rg-list")
    assert rows == [["alpha", "rg-list", "running", "Delete"],
                    ["beta", "rg-list", "running", "Delete"]]
    console.shot("03-workspaces")


def test_delete_with_the_typed_name_then_the_countdown(console: Console,
                                                       server: Server) -> None:
    create(server, "dw", "rg-1", "sales", components=[
        {"kind": "notebooks", "ref": "nb-1"}, {"kind": "compute_instance", "ref": "ci-1"},
        {"kind": "persistent_volume", "ref": "vol-1"}])
    console.sign_in()
    console.open("workspaces", subscription="dw", resource_group="rg-1")
    console.button("workspaces", "sales", "Delete").click()
    console.wait(lambda: console.find("#delete-plan").is_displayed(), "the dry run")
    assert console.text("#delete-name") == "sales"
    assert [li.text for li in console.all("#plan-retained li")] == ["notebooks"]
    assert [li.text for li in console.all("#plan-destroyed li")] == ["compute_instance"]
    assert [li.text for li in console.all("#plan-preserved li")] == ["persistent_volume"]
    assert re.search(r"Purge date: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(in 13 d 23 h 5\d m\)",
                     console.text("#plan-purge"))
    # The dry run changed nothing.
    assert live(server, "dw", "rg-1", "sales") == 200
    # The policy forbids a permanent delete here: no checkbox; it asks for the typed name.
    assert not console.find("#delete-permanently-block").is_displayed()
    assert console.text("label[for=confirm-name]") == "Type the workspace name to confirm"
    ok = console.find("#delete-ok")
    typed = console.find("#confirm-name")
    assert typed == console.driver.switch_to.active_element
    assert not ok.is_enabled()
    typed.send_keys("sale")
    assert not ok.is_enabled()
    typed.send_keys("sx")
    assert not ok.is_enabled()
    console.shot("04-delete-dialog-wrong-name")
    typed.clear()
    typed.send_keys("sales")
    console.wait(lambda: ok.is_enabled(), "OK to be enabled by the right name")
    console.shot("05-delete-dialog-right-name")
    ok.click()
    console.wait(lambda: "moved to the recycle bin" in console.text("#status"), "the delete")
    assert not console.find("#delete-dialog").is_displayed()
    assert deleted(server, "dw", "rg-1", "sales") == 200
    console.wait_rows("workspaces", lambda r: r == [["No live workspaces here."]],
                      "the row to go")
    console.find("nav a[href^='recycle-bin']").click()
    rows = console.wait_rows("deleted", lambda r: len(r) == 1, "the recycle bin")
    name, group, deletion_time, countdown, _ = rows[0]
    assert (name, group) == ("sales", "rg-1")
    assert [b.text for b in console.all("#deleted tbody tr button")] == [
        "Recover", "Delete permanently"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", deletion_time)
    first_line = countdown.splitlines()[0]
    assert re.fullmatch(r"13 d 23 h 5\d m", first_line), countdown
    assert re.fullmatch(r"until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", countdown.splitlines()[1])
    # "Delete permanently" is there but disabled where the policy forbids it, with words.
    assert not console.button("deleted", "sales", "Delete permanently").is_enabled()
    assert "does not allow a permanent delete" in console.text("#policy-note")
    console.shot("06-recycle-bin-countdown")
    # It ticks: move the page's clock an hour and a day on; within a second it shows it.
    console.driver.execute_script(
        "const real = Date.now.bind(Date); Date.now = () => real() + 25 * 3600 * 1000;")
    console.wait(lambda: re.fullmatch(r"12 d 22 h 5\d m",
                                      console.rows("deleted")[0][3].splitlines()[0]),
                 "the countdown to tick", timeout=3)


def test_delete_permanently_where_the_policy_allows(console: Console, server: Server) -> None:
    create(server, "ml", "rg-perm", "scratch", components=[
        {"kind": "notebooks", "ref": "nb-9"}])
    console.sign_in()
    console.open("workspaces", subscription="ml", resource_group="rg-perm")
    console.button("workspaces", "scratch", "Delete").click()
    console.wait(lambda: console.find("#delete-plan").is_displayed(), "the dry run")
    assert [li.text for li in console.all("#plan-retained li")] == ["notebooks"]
    assert not console.find("#confirm-name-block").is_displayed()
    assert console.text("label[for=delete-permanently]") == "Delete permanently"
    console.find("#delete-permanently").click()
    console.wait(lambda: console.find("#delete-plan").is_displayed() and
                 "Deleted permanently" in console.text("#plan-purge"), "the permanent dry run")
    assert [li.text for li in console.all("#plan-destroyed li")] == ["notebooks"]
    assert [li.text for li in console.all("#plan-retained li")] == ["nothing"]
    console.shot("07-delete-permanently")
    ok = console.find("#delete-ok")
    console.wait(lambda: ok.is_enabled(), "OK")
    ok.click()
    console.wait(lambda: "deleted permanently" in console.text("#status"), "the delete")
    assert live(server, "ml", "rg-perm", "scratch") == 404
    assert deleted(server, "ml", "rg-perm", "scratch") == 404


def test_keyboard_only_delete_and_cancel(console: Console, server: Server) -> None:
    create(server, "ml", "rg-keys", "keyboard")
    console.sign_in()
    console.open("workspaces", subscription="ml", resource_group="rg-keys")
    button = console.button("workspaces", "keyboard", "Delete")
    button.send_keys(Keys.ENTER)     # a focused button activates with the keyboard
    console.wait(lambda: console.find("#delete-ok").is_enabled(), "the dry run")
    assert console.driver.switch_to.active_element == console.find("#delete-ok")
    console.driver.switch_to.active_element.send_keys(Keys.ESCAPE)
    console.wait(lambda: not console.find("#delete-dialog").is_displayed(), "the dialog to close")
    assert console.driver.switch_to.active_element == button   # focus goes back to the row
    assert live(server, "ml", "rg-keys", "keyboard") == 200


def test_a_refusal_shows_the_api_message(console: Console, server: Server) -> None:
    create(server, "wk", "rg-1", "workstation-1")
    console.sign_in()
    console.open("workspaces", subscription="wk")
    console.button("workspaces", "workstation-1", "Delete").click()
    console.wait(lambda: console.text("#delete-error"), "the refusal")
    with server.api() as api:
        expected = api.delete("/subscriptions/wk/resourceGroups/rg-1/workspaces/workstation-1",
                              params={"dry_run": "true"}).json()["error"]["message"]
    assert console.text("#delete-error") == expected
    assert "stop" in expected
    assert console.text("#delete-checking") == "This workspace cannot be deleted now."
    assert not console.find("#delete-ok").is_enabled()
    assert not console.find("#delete-plan").is_displayed()
    console.shot("08-refusal")
    console.find("#delete-cancel").click()
    assert live(server, "wk", "rg-1", "workstation-1") == 200
    # Stopped, it is always deleted permanently under this policy: the dialog says so.
    with server.api() as api:
        assert api.post("/subscriptions/wk/resourceGroups/rg-1/workspaces/workstation-1/stop"
                        ).status_code == 200
    console.button("workspaces", "workstation-1", "Delete").click()
    console.wait(lambda: console.find("#delete-plan").is_displayed(), "the dry run")
    assert "Deleted permanently" in console.text("#plan-purge")
    permanent = console.find("#delete-permanently")
    assert permanent.is_selected() and not permanent.is_enabled()
    assert "cannot go to the recycle bin" in console.text("#delete-permanently-note")
    console.find("#delete-cancel").click()


def test_a_refusal_of_the_real_call_shows_the_api_message(console: Console,
                                                          server: Server) -> None:
    create(server, "ml", "rg-race", "contested")
    console.sign_in()
    console.open("workspaces", subscription="ml", resource_group="rg-race")
    console.button("workspaces", "contested", "Delete").click()
    ok = console.find("#delete-ok")
    console.wait(lambda: ok.is_enabled(), "the dry run")
    soft_delete(server, "ml", "rg-race", "contested")   # someone else was quicker
    ok.click()
    console.wait(lambda: "soft-deleted" in console.text("#delete-error"), "the refusal")
    assert console.find("#delete-dialog").is_displayed()
    console.find("#delete-cancel").click()


def test_recover_from_the_recycle_bin(console: Console, server: Server) -> None:
    create(server, "ml", "rg-rec", "lost", components=[{"kind": "compute_instance",
                                                        "ref": "ci-7"}])
    soft_delete(server, "ml", "rg-rec", "lost")
    console.sign_in()
    console.open("recycle-bin", subscription="ml", resource_group="rg-rec")
    console.button("deleted", "lost", "Recover").click()
    console.wait(lambda: "was recovered" in console.text("#status"), "the recover")
    assert "To recreate: compute_instance." in console.text("#status")
    console.wait_rows("deleted", lambda r: r == [["The recycle bin is empty here."]],
                      "the row to go")
    console.shot("09-recovered")
    assert live(server, "ml", "rg-rec", "lost") == 200


def test_delete_permanently_from_the_recycle_bin(console: Console, server: Server) -> None:
    create(server, "ml", "rg-purge", "done")
    create(server, "ml", "rg-purge", "keep")
    soft_delete(server, "ml", "rg-purge", "done")
    soft_delete(server, "ml", "rg-purge", "keep")
    console.sign_in()
    console.open("recycle-bin", subscription="ml", resource_group="rg-purge")
    console.button("deleted", "done", "Delete permanently").click()
    assert console.text("#purge-name") == "done"
    console.shot("10-purge-dialog")
    console.find("#purge-cancel").click()              # Cancel changes nothing
    assert deleted(server, "ml", "rg-purge", "done") == 200
    console.button("deleted", "done", "Delete permanently").click()
    console.find("#purge-ok").click()
    console.wait(lambda: "deleted permanently" in console.text("#status"), "the purge")
    rows = console.wait_rows("deleted", lambda r: len(r) == 1, "one row left")
    assert rows[0][0] == "keep"
    assert deleted(server, "ml", "rg-purge", "done") == 404


def test_next_page_with_more_than_a_page_of_rows(console: Console, server: Server) -> None:
    names = [f"ws-{i:02d}" for i in range(30)]
    for name in names:
        create(server, "pages", "rg-1", name)
        soft_delete(server, "pages", "rg-1", name)
    console.sign_in()
    console.open("recycle-bin", subscription="pages", limit="12")
    first = console.wait_rows("deleted", lambda r: len(r) == 12, "the first page")
    newest_first = names[::-1]
    assert [r[0] for r in first] == newest_first[:12]
    assert console.text("#page-number") == "Page 1"
    assert not console.find("#previous-page").is_enabled()
    console.find("#next-page").click()
    second = console.wait_rows("deleted", lambda r: r[0][0] == newest_first[12], "page 2")
    assert [r[0] for r in second] == newest_first[12:24]
    console.find("#next-page").click()
    third = console.wait_rows("deleted", lambda r: r[0][0] == newest_first[24], "page 3")
    assert [r[0] for r in third] == newest_first[24:]
    assert console.text("#page-number") == "Page 3"
    assert not console.find("#next-page").is_enabled()
    console.shot("11-third-page")
    console.find("#previous-page").click()
    console.wait_rows("deleted", lambda r: r[0][0] == newest_first[12], "back to page 2")
    assert console.text("#page-number") == "Page 2"
    # The live listing pages the same way.
    for name in names[:14]:
        create(server, "pages", "rg-live", name)
    console.open("workspaces", subscription="pages", limit="10")
    console.wait_rows("workspaces", lambda r: len(r) == 10, "the first live page")
    console.find("#next-page").click()
    rest = console.wait_rows("workspaces", lambda r: len(r) == 4, "the second live page")
    assert [r[0] for r in rest] == names[10:14]


def test_a_hostile_name_shows_as_text(console: Console, server: Server) -> None:
    create(server, "xss", HOSTILE, HOSTILE)
    console.sign_in()
    console.open("workspaces", subscription="xss")
    console.wait_rows("workspaces", lambda r: r == [[HOSTILE, HOSTILE, "running", "Delete"]],
                      "the hostile row")
    assert console.all("img") == []
    console.button("workspaces", HOSTILE, "Delete").click()
    console.wait(lambda: console.find("#delete-ok").is_enabled(), "the dry run")
    assert console.text("#delete-name") == HOSTILE
    assert console.all("img") == []
    console.shot("12-hostile-name-dialog")
    console.find("#delete-ok").click()
    console.wait(lambda: HOSTILE in console.text("#status"), "the delete")
    console.open("recycle-bin", subscription="xss")
    rows = console.wait_rows("deleted", lambda r: len(r) == 1, "the hostile row in the bin")
    assert rows[0][:2] == [HOSTILE, HOSTILE]
    assert console.all("img") == []
    console.no_alert()
    console.shot("13-hostile-name-recycle-bin")
    console.button("deleted", HOSTILE, "Recover").click()
    console.wait(lambda: "was recovered" in console.text("#status"), "the recover")
    assert live(server, "xss", HOSTILE, HOSTILE) == 200
    console.no_alert()


def test_admin_lists_deletable_workspaces_without_names(console: Console,
                                                        server: Server) -> None:
    ws = create(server, "adm", "rg-1", "secret-project-name")
    with server.api(PLATFORM_TOKEN) as api:
        assert api.delete("/subscriptions/adm/resourceGroups/rg-1/workspaces/"
                          "secret-project-name/members/alice").status_code == 204
    console.sign_in()
    console.open("admin", subscription="adm")
    console.wait(lambda: "platform" in console.text("#status"), "alice's refusal")
    assert console.rows("deletable") == []
    console.sign_in(PLATFORM_TOKEN)
    assert console.text("#signed-in-as") == "Signed in as the platform"
    console.open("admin", subscription="adm")
    rows = console.wait_rows("deletable", lambda r: len(r) == 1, "the deletable list")
    kind, workspace_id, since = rows[0]
    assert (kind, workspace_id) == ("orphaned", ws["id"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", since)
    assert "secret-project-name" not in console.driver.page_source
    console.shot("14-admin-deletable")
    console.find("#sign-out").click()
    console.wait(lambda: "reason=signed_out" in console.driver.current_url, "signed out")
    assert console.driver.execute_script("return sessionStorage.length") == 0


OUTER_APP = """\
import sys
import uvicorn
from fastapi import FastAPI
import recyclebin as rb
from recyclebin.auth import BearerTokenAuth
from recyclebin.console import create_console_router
from recyclebin.fastapi import create_router

db, policy, tokens, port = sys.argv[1:5]
engine = rb.Engine.open(db, policy=rb.Policy.load(policy))
auth = BearerTokenAuth.from_file(tokens)
app = FastAPI()

@app.get("/")
def home() -> dict[str, str]:
    return {"platform": "its own routes"}

app.include_router(create_router(engine, auth), prefix="/tools/recyclebin")
app.include_router(create_console_router(), prefix="/tools/recyclebin")
uvicorn.run(app, host="127.0.0.1", port=int(port), log_level="warning")
"""


def test_the_console_under_a_prefix_in_another_app(browser: webdriver.Chrome,
                                                   tmp_path: Path) -> None:
    (tmp_path / "outer.py").write_text(OUTER_APP)
    (tmp_path / "policy.yaml").write_text(POLICY)
    (tmp_path / "tokens.json").write_text(json.dumps(token_table()))
    port = free_loopback_port()
    base = f"http://127.0.0.1:{port}"
    process = _start([sys.executable, str(tmp_path / "outer.py"), str(tmp_path / "rb.db"),
                      str(tmp_path / "policy.yaml"), str(tmp_path / "tokens.json"), str(port)],
                     tmp_path / "outer.log", base, "/")
    try:
        server = Server(process, base, tmp_path / "outer.log")
        server.api_prefix = "/tools/recyclebin"
        server.console = "/tools/recyclebin/console/"
        create(server, "ml", "rg-1", "mounted")
        soft_delete(server, "ml", "rg-1", "mounted")
        console = Console(browser, server)
        browser.get_log("browser")
        console.sign_in()
        console.open("recycle-bin", subscription="ml")
        console.button("deleted", "mounted", "Recover").click()
        console.wait(lambda: "was recovered" in console.text("#status"), "the recover")
        console.shot("15-under-a-prefix")
        assert live(server, "ml", "rg-1", "mounted") == 200
        assert console.script_errors() == []
    finally:
        _stop(process)
