"""Browser tests: a chatgate of their own (SQLite, engines played by the OpenAI double over real
HTTP), driven through Debian's Chromium by Playwright. `scripts/ensure-browser.sh` installs the
browser; Playwright never downloads one."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, expect, sync_playwright

from chatgate.core.config import AssistantConfig, Settings
from tests.conftest import GUARDS_OFF, JWT_AUDIENCE, JWT_SECRET, ROOT, Double, double_provider
from tests.runner import run_chatgate

CHROMIUM = Path(os.environ.get("CHATGATE_CHROMIUM", "/usr/bin/chromium"))
# Without these, Chromium on a machine with no network stalls on its background services.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "test-artifacts"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
MAX_CONTENT_CHARS = 2000

expect.set_options(timeout=10_000)


def _assistant(assistant_id: str, name: str, description: str, **extra: Any) -> AssistantConfig:
    values: dict[str, Any] = {
        "id": assistant_id,
        "name": name,
        "description": description,
        "provider": "double",
        "model": f"double-{assistant_id}",
        "system_prompt": f"You are {name}.",
        "max_context_tokens": 8000,
        "max_answer_tokens": 200,
        "guards": GUARDS_OFF,
        **extra,
    }
    return AssistantConfig(**values)


def web_settings(database_url: str, double_url: str, **overrides: Any) -> Settings:
    os.environ["DOUBLE_API_KEY"] = "sk-double"
    values: dict[str, Any] = {
        "database_url": database_url,
        "auth_mode": "none",
        "stream_flush_seconds": 0.2,
        "max_content_chars": MAX_CONTENT_CHARS,
        # One browser user makes many requests in a row, and repeats questions across tests:
        # the limits and the answer cache have suites of their own.
        "rate_limits": {"requests_per_minute": 100_000, "ip_requests_per_minute": 100_000},
        "cache": {"enabled": False},
        "providers": [double_provider(double_url)],
        "assistants": [
            _assistant("echo", "Echo", "Repeats what you say, word by word."),
            _assistant("support", "Support", "Answers questions about orders and shipping."),
            _assistant(
                "tiny", "Tiny", "A very small memory.", max_context_tokens=120, max_answer_tokens=40
            ),
        ],
        **overrides,
    }
    return Settings(**values)


@dataclass
class WebGateway:
    url: str
    settings: Settings
    double: Double
    token: str | None = None

    def client(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@pytest.fixture(scope="session")
def web_gateway(
    openai_double: Double, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebGateway]:
    path = tmp_path_factory.mktemp("web") / "chatgate.db"
    settings = web_settings(f"sqlite+aiosqlite:///{path}", openai_double.url)
    with run_chatgate(settings) as url:
        yield WebGateway(url=url, settings=settings, double=openai_double)


@pytest.fixture(scope="session")
def jwt_gateway(
    openai_double: Double, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebGateway]:
    path = tmp_path_factory.mktemp("web-jwt") / "chatgate.db"
    settings = web_settings(
        f"sqlite+aiosqlite:///{path}",
        openai_double.url,
        auth_mode="jwt",
        jwt_secret=JWT_SECRET,
        jwt_audience=JWT_AUDIENCE,
    )
    with run_chatgate(settings) as url:
        yield WebGateway(url=url, settings=settings, double=openai_double)


@pytest.fixture
def api(web_gateway: WebGateway) -> Iterator[httpx.Client]:
    """The HTTP API as the page's user (`local`), starting every test with no conversations."""
    with web_gateway.client() as client:
        while sessions := client.get("/v1/sessions", params={"limit": 100}).json()["data"]:
            for session in sessions:
                assert client.delete(f"/v1/sessions/{session['id']}").status_code == 204
        yield client


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: run scripts/ensure-browser.sh")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@dataclass
class PageProblems:
    """What the page said went wrong on its own: uncaught errors and console errors."""

    errors: list[str] = field(default_factory=list)

    def console(self, message: ConsoleMessage) -> None:
        # A refused request is logged by the browser itself; the tests that cause one check
        # what the page says about it.
        if message.type == "error" and "Failed to load resource" not in message.text:
            self.errors.append(f"console: {message.text}")


FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


@contextmanager
def open_page(
    browser: Browser, request: pytest.FixtureRequest, **context_options: Any
) -> Iterator[Page]:
    """A page in a fresh browser context (own storage); its uncaught errors fail the test, and
    a failing test leaves a screenshot in test-artifacts/."""
    context = browser.new_context(
        viewport=context_options.pop("viewport", DESKTOP),
        locale="en-US",
        timezone_id="UTC",
        **context_options,
    )
    page = context.new_page()
    problems = PageProblems()
    page.on("console", problems.console)
    page.on("pageerror", lambda error: problems.errors.append(f"uncaught: {error}"))
    name = re.sub(r"[^\w.-]+", "_", request.node.name)
    failure = ARTIFACTS / f"failed-{name}.png"
    failure.unlink(missing_ok=True)

    def keep_screenshot() -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(failure), full_page=True)

    try:
        try:
            yield page
        except BaseException:
            keep_screenshot()
            raise
        if request.node.stash.get(FAILED, False):
            keep_screenshot()
        assert not problems.errors, problems.errors
    finally:
        context.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    with open_page(browser, request) as page:
        yield page


class Chat:
    """The chat page as a person uses it, and what they see."""

    def __init__(self, page: Page, url: str) -> None:
        self.page = page
        self.url = url
        self.input = page.get_by_label("Message", exact=True)
        self.messages = page.locator("#messages > li")
        self.answers = page.locator("#messages > li.msg-assistant")
        self.notice = page.locator("#notice")

    def open(self) -> Chat:
        self.page.goto(self.url)
        self.wait_ready()
        return self

    def wait_ready(self) -> None:
        expect(self.input).to_be_enabled()
        expect(self.page.locator("#scroller")).not_to_have_attribute("aria-busy", "true")

    def send(self, text: str) -> None:
        self.input.fill(text)
        self.input.press("Enter")

    def last_answer(self) -> Any:
        return self.answers.last

    def ask(self, text: str) -> Any:
        """Sends and waits for the whole answer."""
        before = self.answers.count()
        self.send(text)
        expect(self.answers).to_have_count(before + 1)
        answer = self.last_answer()
        expect(answer).to_have_attribute("data-status", "complete")
        return answer

    def session_id(self) -> str:
        value = self.page.evaluate("localStorage.getItem('chatgate.session')")
        assert value, "the page keeps no session id"
        uuid.UUID(value)
        return str(value)

    def tab(self, name: str) -> Any:
        return self.page.get_by_role("tab", name=name, exact=True)

    def screenshot(self, name: str, **options: Any) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        self.page.screenshot(path=str(path), **options)
        return path


@pytest.fixture
def chat(page: Page, web_gateway: WebGateway, api: httpx.Client) -> Chat:
    return Chat(page, web_gateway.url)
