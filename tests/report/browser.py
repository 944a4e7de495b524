"""Just enough of the W3C WebDriver protocol (stdlib HTTP to chromedriver) to open a page in headless
Chromium, read its console, run a script and take a full-page screenshot. No Selenium needed."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import time
import urllib.request

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    # nothing may reach the network: the report must render from the file alone
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--no-first-run",
    "--metrics-recording-only",
    "--disable-extensions",
]


def find() -> tuple[str, str] | str:
    """(browser, driver) paths, or the reason they cannot be used."""
    browser = next((path for name in BROWSERS if (path := shutil.which(name))), None)
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        missing = " and ".join(n for n, p in (("chromium", browser), ("chromedriver", driver)) if not p)
        return f"{missing} not installed (Debian: apt-get install chromium chromium-driver; .ci/run does this)"
    return browser, driver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    def __init__(self, browser: str, driver: str, width: int = 1280, height: int = 1000):
        self.port = _free_port()
        self.process = subprocess.Popen(
            [driver, f"--port={self.port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.base = f"http://127.0.0.1:{self.port}"
        self._wait_ready()
        capabilities = {
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {"binary": browser, "args": ARGS + [f"--window-size={width},{height}"]},
        }
        self.session = self._call("POST", "/session", {"capabilities": {"alwaysMatch": capabilities}})["sessionId"]

    def _wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self._call("GET", "/status").get("ready"):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("chromedriver did not become ready")

    def _call(self, method: str, path: str, body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read())["value"]
        except urllib.error.HTTPError as err:
            raise RuntimeError(f"webdriver {method} {path}: {err.read()[:500]!r}") from None

    def _session(self, method: str, path: str, body: dict | None = None):
        return self._call(method, f"/session/{self.session}{path}", body)

    def open(self, url: str) -> None:
        self._session("POST", "/url", {"url": url})

    def script(self, source: str):
        return self._session("POST", "/execute/sync", {"script": source, "args": []})

    def console(self) -> list[dict]:
        return self._session("POST", "/se/log", {"type": "browser"})

    def screenshot(self) -> bytes:
        """The whole page: the window is grown to the document's height first."""
        width, height = self.script(
            "return [document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
        )
        self._session("POST", "/window/rect", {"width": max(width, 800), "height": height + 120})
        return base64.b64decode(self._session("GET", "/screenshot"))

    def close(self) -> None:
        try:
            self._session("DELETE", "")
        finally:
            self.process.terminate()
            self.process.wait(timeout=20)
