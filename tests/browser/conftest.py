"""Fixtures for the real-browser tests: a JupyterLab server and a headless chromium driving it.

The server runs on 127.0.0.1 with a random token, on a temporary root holding copies of the
notebooks, with its own settings and workspaces folders (so nothing of the user's JupyterLab leaks
in or out), and with NASNB_QUICK=1, which the kernels inherit: every notebook runs with its small
budget. The browser is Debian's chromium (scripts/install-browser.sh), driven by Python's
playwright; we never download a browser (`playwright install`).

If either is missing, the tests FAIL with the command that installs it: a browser test that skips
silently would let a broken notebook through.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
HERE = Path(__file__).resolve().parent
ARTIFACTS = ROOT / "artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
CHROMIUM = os.environ.get("NASNB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                 # Hermetic: no host name resolves (the server is 127.0.0.1), so the notebooks' Colab and
                 # Binder badge images fail at once instead of waiting on a network there may not be.
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"]

# Settings that make JupyterLab testable: no news/update pop-up over the page, and every cell
# rendered (the default windowing mode only renders cells near the viewport, so outputs below the
# fold would not exist in the DOM).
LAB_OVERRIDES = {
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
}

INSTALL_HINT = ("run `bash scripts/install-browser.sh` (Debian's chromium via apt-get) and "
                "`pip install -e '.[test]'` (or `pip install playwright jupyterlab`); "
                "never `playwright install`")


class Lab:
    """A running JupyterLab: its base URL, token, root folder and process."""

    def __init__(self, url: str, token: str, root: Path, process: subprocess.Popen, log: Path):
        self.url, self.token, self.root, self.process, self.log = url, token, root, process, log

    def api(self, path: str, method: str = "GET"):
        """Call the server's REST API (e.g. 'api/kernels'); returns the decoded JSON or None."""
        request = urllib.request.Request(f"{self.url}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def notebook_url(self, name: str) -> str:
        """A fresh workspace for `name`: JupyterLab restores no tabs of earlier tests."""
        workspace = f"t{secrets.token_hex(4)}"
        return f"{self.url}lab/workspaces/{workspace}/tree/{name}?reset&token={self.token}"

    def shutdown_kernels(self) -> None:
        for kernel in self.api("api/kernels") or []:
            try:
                self.api(f"api/kernels/{kernel['id']}", method="DELETE")
            except urllib.error.URLError:
                pass

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _require_jupyterlab() -> None:
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        pytest.fail(f"JupyterLab is not installed in {sys.prefix}: {INSTALL_HINT}", pytrace=False)


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """JupyterLab on 127.0.0.1 (free port, random token) serving copies of notebooks/."""
    _require_jupyterlab()
    base = tmp_path_factory.mktemp("lab")
    root, settings, user_settings, workspaces = (base / n for n in ("root", "app-settings", "user-settings", "workspaces"))
    for folder in (root, settings, user_settings, workspaces):
        folder.mkdir()
    for notebook in NOTEBOOKS + sorted(HERE.glob("*.ipynb")):
        shutil.copy(notebook, root / notebook.name)
    (settings / "overrides.json").write_text(json.dumps(LAB_OVERRIDES, indent=2))

    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, NASNB_QUICK="1", JUPYTERLAB_SETTINGS_DIR=str(user_settings),
               JUPYTERLAB_WORKSPACES_DIR=str(workspaces), PYTHONUNBUFFERED="1")
    env.pop("MPLBACKEND", None)  # the notebooks choose their own (%matplotlib inline)
    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / "jupyter-lab.log"
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
               f"--port={port}", "--ServerApp.ip=127.0.0.1", f"--ServerApp.token={token}",
               f"--ServerApp.root_dir={root}", "--ServerApp.port_retries=0",
               f"--LabApp.app_settings_dir={settings}",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root)
    server = Lab(f"http://127.0.0.1:{port}/", token, root, process, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"jupyter lab exited with code {process.returncode}:\n{server.log_tail()}", pytrace=False)
            try:
                server.api("api/status")
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab did not answer /api/status within 60 s:\n{server.log_tail()}",
                                pytrace=False)
                time.sleep(0.25)
        yield server
    finally:
        if process.poll() is None:
            try:
                server.shutdown_kernels()
            except (urllib.error.URLError, OSError):
                pass
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="session")
def browser():
    """Headless Debian chromium through playwright (FAILS, with the fix, when either is missing)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(f"Python's playwright is not installed in {sys.prefix}: {INSTALL_HINT}", pytrace=False)
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"no chromium at {CHROMIUM} (set NASNB_CHROMIUM to another path): {INSTALL_HINT}",
                    pytrace=False)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, lab):
    """A fresh browser page (1400 px wide); the notebook's kernel is shut down afterwards."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        yield page
    finally:
        context.close()
        lab.shutdown_kernels()
