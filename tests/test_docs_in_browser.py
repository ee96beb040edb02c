"""/docs in a real browser: headless Chromium (Debian's chromium package), driven over the Chrome
DevTools protocol, renders every operation of the spec, and Swagger UI's own Authorize dialog
and "Try it out" get a 200 from GET /api/v1/users/{user_id} on a real HTTP server. Nothing is
fetched from outside: the page and its files come from the service."""

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request

import pytest
import websocket

from .support import TOKEN, new_user

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",  # as root Chromium refuses to start without it
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-port=0",  # it writes the port it chose to DevToolsActivePort
]


class Page:
    """One browser tab over the DevTools protocol: just what this test needs."""

    def __init__(self, url: str):
        self._socket = websocket.create_connection(url, timeout=30, suppress_origin=True)
        self._last_id = 0
        self.events = []  # what the browser reported meanwhile, in order

    def call(self, method: str, **params):
        self._last_id += 1
        self._socket.send(json.dumps({"id": self._last_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv())
            if message.get("id") == self._last_id:
                assert "error" not in message, message["error"]
                return message["result"]
            if "method" in message:
                self.events.append(message)

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def wait_for(self, expression: str, seconds: float = 20):
        """The value of `expression` once it is truthy."""
        deadline = time.monotonic() + seconds
        while not (value := self.evaluate(expression)):
            assert time.monotonic() < deadline, f"never true in the page: {expression}"
            time.sleep(0.05)
        return value

    def click(self, selector: str) -> None:
        found = json.dumps(selector)
        self.wait_for(f"document.querySelector({found}) !== null")
        self.evaluate(f"document.querySelector({found}).click()")

    def type(self, selector: str, text: str) -> None:
        """Types into the field as a keyboard would, then leaves it (Swagger UI's fields pass
        their value on after a pause, or at once when they lose focus)."""
        found = json.dumps(selector)
        self.wait_for(f"document.querySelector({found}) !== null")
        self.evaluate(f"document.querySelector({found}).focus()")
        self.call("Input.insertText", text=text)
        self.evaluate(f"document.querySelector({found}).blur()")

    def close(self) -> None:
        self._socket.close()


@pytest.fixture
def browser(tmp_path):
    """A headless Chromium of its own (fresh profile); yields a Page on its first tab."""
    if not shutil.which(CHROMIUM):
        pytest.fail("chromium is missing: `make test` installs it (apt-get install chromium)")
    profile = tmp_path / "profile"
    chromium = subprocess.Popen(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the browser's helpers end with it
    )
    page = None
    try:
        active_port = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 20
        while not (active_port.exists() and active_port.read_text().count("\n") >= 1):
            assert chromium.poll() is None, "chromium exited"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            time.sleep(0.05)
        port = int(active_port.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
            [tab] = [t for t in json.load(answer) if t["type"] == "page"]
        page = Page(tab["webSocketDebuggerUrl"])
        yield page
    finally:
        if page is not None:
            page.close()
        os.killpg(chromium.pid, signal.SIGKILL)
        chromium.wait()


def spec_operations(client) -> set[tuple[str, str]]:
    spec = client.get("/openapi.json").get_json()
    return {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in {"get", "put", "post", "patch", "delete"}
    }


def test_docs_render_every_operation_and_try_it_out_works(app, client, serve, browser):
    created = client.post("/api/v1/users", json=new_user(7)).get_json()
    base = serve(app)

    browser.call("Network.enable")
    browser.call("Page.navigate", url=base + "/docs")
    browser.wait_for("document.querySelectorAll('.opblock').length > 0")
    rendered = browser.evaluate(
        "[...document.querySelectorAll('.opblock')].map(block => ["
        "  block.querySelector('.opblock-summary-method').textContent,"
        "  block.querySelector('.opblock-summary-path').dataset.path])"
    )
    assert {tuple(operation) for operation in rendered} == spec_operations(client)
    assert len(rendered) == len(spec_operations(client))

    # Swagger UI's own dialog: the bearer token, then Authorize and Close.
    browser.click(".auth-wrapper .btn.authorize")
    browser.type(".modal-ux input[aria-label='auth-bearer-value']", TOKEN)
    browser.click(".modal-ux .auth-btn-wrapper .btn.modal-btn.authorize")
    browser.click(".modal-ux .auth-btn-wrapper .btn-done")

    operation = "#operations-users-get_user"
    browser.click(f"{operation} .opblock-summary-control")
    browser.click(f"{operation} .try-out__btn")
    browser.type(f"{operation} input[placeholder='user_id']", str(created["id"]))
    browser.click(f"{operation} .btn.execute")
    answer = f"{operation} .live-responses-table tr.response"  # what Swagger UI shows
    status = browser.wait_for(
        f"document.querySelector('{answer} .response-col_status')?.textContent.trim()"
    )
    assert status == "200"
    shown = browser.evaluate(
        f"document.querySelector('{answer} .response-col_description').textContent"
    )
    assert created["username"] in shown
    # Everything the page loaded or sent came from the service.
    asked = {
        event["params"]["request"]["url"]
        for event in browser.events
        if event["method"] == "Network.requestWillBeSent"
    }
    assert f"{base}/api/v1/users/{created['id']}" in asked
    assert all(url.startswith(base + "/") or url.startswith("data:") for url in asked), asked
