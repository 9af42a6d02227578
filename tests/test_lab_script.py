"""scripts/lab.sh, the README's main command, for real: in a fresh clone of this checkout, with
extra arguments for jupyter lab, until JupyterLab serves the notebooks.

As root (containers, cloud VMs: where JupyterLab refuses to start without --allow-root) the script
runs in full: it installs the clone into a new Python with `pip install -e .[lab]`, as on a fresh
machine. That Python borrows this environment's packages (tests/venvs.py), so torch is not
downloaded again and this environment's own editable install of nasnb stays where it is. As a
normal user (`nobody`, via runuser) it runs with NASNB_SKIP_INSTALL=1 in this environment's Python:
`nobody` may not write into either environment.

The clone is of HEAD: commit changes to scripts/lab.sh or nasnb/cli.py before running this.
"""
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from pathlib import Path

import pytest

from venvs import borrowing_venv

ROOT = Path(__file__).resolve().parents[1]
STARTUP_LIMIT = 120  # seconds; JupyterLab is up in a few on an idle machine

pytestmark = pytest.mark.skipif(not hasattr(os, "geteuid") or shutil.which("git") is None,
                                reason="needs a POSIX system with git")


@pytest.fixture(scope="module")
def clone():
    """A `git clone` of this checkout's HEAD, in a folder every user can read (pytest's tmp_path is
    root's alone)."""
    changed = subprocess.run(["git", "status", "--porcelain", "--", "scripts/lab.sh", "nasnb/cli.py"],
                             cwd=ROOT, capture_output=True, text=True).stdout
    if changed:
        warnings.warn(f"uncommitted changes are not tested here (a clone of HEAD runs):\n{changed}")
    folder = Path(tempfile.mkdtemp(prefix="nasnb-lab-"))
    folder.chmod(0o755)
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(folder / "nasnb")], check=True)
    yield folder / "nasnb"
    shutil.rmtree(folder)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def serve_with_lab_sh(clone: Path, env: dict, log: Path, as_user: str | None = None) -> list[dict]:
    """Run `bash scripts/lab.sh --no-browser --port P --ServerApp.token=T --ServerApp.ip=127.0.0.1`
    in `clone`, wait until the server answers, and return the entries of its root folder
    (GET /api/contents). The server's process group is terminated afterwards, whatever happened."""
    port, token = free_port(), secrets.token_hex(16)
    command = ["bash", "scripts/lab.sh", "--no-browser", "--port", str(port), f"--ServerApp.token={token}",
               "--ServerApp.ip=127.0.0.1", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if as_user is not None:
        command = ["runuser", "-u", as_user, "--preserve-environment", "--", *command]
    api = f"http://127.0.0.1:{port}/api"
    with open(log, "w") as output:
        server = subprocess.Popen(command, cwd=clone, env=env, stdout=output, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        deadline = time.monotonic() + STARTUP_LIMIT
        while True:
            assert server.poll() is None, f"lab.sh exited with {server.returncode}:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no server after {STARTUP_LIMIT} s:\n{log.read_text()[-3000:]}"
            try:
                get_json(f"{api}/status?token={token}")
                break
            except OSError:  # not listening yet
                time.sleep(0.5)
        return get_json(f"{api}/contents?token={token}")["content"]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def notebooks_of(clone: Path) -> list[str]:
    names = sorted(p.name for p in (clone / "notebooks").glob("*.ipynb"))
    assert names, "the clone has no notebooks/*.ipynb"
    return names


def served_notebooks(entries: list[dict]) -> list[str]:
    return sorted(e["name"] for e in entries if e["type"] == "notebook")


def importing_nasnb(python, cwd) -> str:
    """Where `python` imports nasnb from, run outside any checkout."""
    return subprocess.run([python, "-c", "import nasnb; print(nasnb.__file__)"], cwd=cwd,
                          capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.slow
@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() != 0, reason="the root variant runs as root")
def test_lab_sh_as_root_installs_the_clone_and_serves_the_notebooks(clone, tmp_path):
    python, site_dir = borrowing_venv(tmp_path / "venv")
    env = dict(os.environ, NASNB_PYTHON=str(python), HOME=str(tmp_path / "home"), PIP_NO_INDEX="1")
    env.pop("NASNB_SKIP_INSTALL", None)
    log = tmp_path / "lab.log"
    entries = serve_with_lab_sh(clone, env, log)
    assert served_notebooks(entries) == notebooks_of(clone)
    assert "running as root: passing --allow-root to jupyter lab" in log.read_text()
    # pip install -e put the clone into the new Python, and left this environment's nasnb alone.
    assert importing_nasnb(python, tmp_path).startswith(str(clone / "nasnb"))
    assert importing_nasnb(sys.executable, tmp_path).startswith(str(ROOT / "nasnb"))


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("runuser") is None or hasattr(os, "geteuid") and os.geteuid() != 0,
                    reason="the normal-user variant switches to `nobody` with runuser, which needs root")
def test_lab_sh_as_a_normal_user_serves_the_notebooks_without_allow_root(clone, tmp_path):
    nobody = pwd.getpwnam("nobody")
    home = Path(tempfile.mkdtemp(prefix="nasnb-nobody-"))  # JupyterLab writes its runtime files here
    os.chown(home, nobody.pw_uid, nobody.pw_gid)
    try:
        env = dict(os.environ, NASNB_PYTHON=sys.executable, NASNB_SKIP_INSTALL="1", HOME=str(home),
                   USER="nobody", LOGNAME="nobody")
        log = tmp_path / "lab.log"
        entries = serve_with_lab_sh(clone, env, log, as_user="nobody")
        assert served_notebooks(entries) == notebooks_of(clone)
        assert "--allow-root" not in log.read_text()
    finally:
        shutil.rmtree(home)
