"""Headless Chromium driven over the Chrome DevTools Protocol (no Selenium in the lock).

Just enough for the explorer's browser test: open a URL, wait until Streamlit has finished
rendering, read the DOM with JavaScript, and take a full-page screenshot.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
)

VIEWPORT = (1400, 3200)
# Streamlit's state as seen in the DOM: titles, whether a script run is in progress, errors.
PROBE = """(() => {
  const q = (s) => Array.from(document.querySelectorAll(s));
  return {
    titles: q('h1').map((e) => e.innerText.trim()),
    running: q('[data-testid="stStatusWidgetRunningIcon"]').length > 0
      || q('img').some((e) => !e.complete),
    spinners: q('[data-testid="stSpinner"], [data-testid="stSkeleton"]').length,
    exceptions: q('[data-testid="stException"]').map((e) => e.innerText.slice(0, 500)),
    alerts: q('[data-testid="stAlert"]').map((e) => e.innerText.slice(0, 500)),
    height: Math.max(0, ...q('[data-testid="stMainBlockContainer"]').map(
      (e) => e.getBoundingClientRect().bottom)),
  };
})()"""


class ChromiumError(RuntimeError):
    """Chromium did not start or a DevTools call failed."""


class Chromium:
    """One headless Chromium process and a DevTools connection to its first tab."""

    def __init__(self, binary: str, user_data_dir: Path, log: Path) -> None:
        user_data_dir.mkdir(parents=True, exist_ok=True)
        (user_data_dir / "DevToolsActivePort").unlink(missing_ok=True)  # a previous run's
        self._log = log.open("wb")
        self.process = subprocess.Popen(
            [
                binary,
                *FLAGS,
                f"--user-data-dir={user_data_dir}",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._ids = itertools.count(1)
        try:
            port = self._devtools_port(user_data_dir / "DevToolsActivePort", log)
            targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
            page = next(t for t in targets if t["type"] == "page")
            self.ws: ClientConnection = connect(page["webSocketDebuggerUrl"], max_size=None)
            # A tall viewport from the start: Streamlit scrolls inside its own container, so a
            # full-page screenshot needs the whole page in the viewport (resizing it later makes
            # the sidebar re-animate).
            self.call(
                "Emulation.setDeviceMetricsOverride",
                width=VIEWPORT[0],
                height=VIEWPORT[1],
                deviceScaleFactor=1,
                mobile=False,
            )
        except Exception:
            self._stop()
            raise

    def _devtools_port(self, path: Path, log: Path, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ChromiumError(f"Chromium exited early:\n{log.read_text()[-3000:]}")
            if path.exists() and path.read_text().strip():
                return int(path.read_text().splitlines()[0])
            time.sleep(0.2)
        raise ChromiumError(f"Chromium wrote no DevToolsActivePort:\n{log.read_text()[-3000:]}")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools command; events received meanwhile are ignored."""
        ident = next(self._ids)
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=60))
            if message.get("id") == ident:
                if "error" in message:
                    raise ChromiumError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise ChromiumError(f"JavaScript failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def wait_rendered(self, title: str, timeout: float = 120, settle: float = 2.0) -> dict:
        """Wait until the page shows `title` and Streamlit has stayed idle for `settle` s."""
        deadline = time.monotonic() + timeout
        idle_since: float | None = None
        state: dict = {}
        while time.monotonic() < deadline:
            state = self.evaluate(PROBE) or {}
            idle = title in state.get("titles", []) and not state["running"]
            idle = idle and not state["spinners"]
            if idle or state.get("exceptions"):
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since >= settle:
                    return state
            else:
                idle_since = None
            time.sleep(0.5)
        raise ChromiumError(f"Page {title!r} did not finish rendering in {timeout:.0f} s: {state}")

    def screenshot(self, path: Path) -> None:
        """The page down to the end of its content (at least 1,000 px high)."""
        height = min(max(int(self.evaluate(PROBE)["height"]) + 60, 1000), VIEWPORT[1])
        clip = {"x": 0, "y": 0, "width": VIEWPORT[0], "height": height, "scale": 1}
        shot = self.call("Page.captureScreenshot", format="png", clip=clip)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self._stop()

    def _stop(self) -> None:
        """Stop the browser and its helpers (its own process group: /usr/bin/chromium is a
        wrapper script, the browser a child of it)."""
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        self._log.close()
