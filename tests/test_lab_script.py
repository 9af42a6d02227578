"""scripts/lab.sh, the README's main command, for real: in a fresh clone of this checkout, with
extra arguments for jupyter lab, until JupyterLab serves the notebooks.

As root (containers, cloud VMs: where JupyterLab refuses to start without --allow-root) the script
runs in full: it installs the clone into a new Python with `pip install -e .[lab]`, as on a fresh
machine. That Python borrows this environment's packages (tests/venvs.py), so torch is not
downloaded again and this environment's own editable install of nasnb stays where it is. As a
normal user (`nobody`) it runs with NASNB_SKIP_INSTALL=1 in this environment's Python, which
`nobody` may not write into.

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
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not IS_ROOT or shutil.which("git") is None,
                                                   reason="runs as root (as the tests do here), with git")]


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


def serve_with_lab_sh(clone: Path, env: dict, log: Path, run_as: list[str] = ()) -> list[dict]:
    """Run `bash scripts/lab.sh --no-browser --port P --ServerApp.token=T --ServerApp.ip=127.0.0.1`
    in `clone` (after the `run_as` prefix), wait until the server answers, and return the entries of
    its root folder (GET /api/contents). Its process group is terminated afterwards, whatever happened."""
    port, token = free_port(), secrets.token_hex(16)
    command = ["bash", "scripts/lab.sh", "--no-browser", "--port", str(port), f"--ServerApp.token={token}",
               "--ServerApp.ip=127.0.0.1", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    api = f"http://127.0.0.1:{port}/api"
    with open(log, "w") as output:
        server = subprocess.Popen([*run_as, *command], cwd=clone, env=env, stdout=output, stderr=subprocess.STDOUT,
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
        stop(server)


def stop(server: subprocess.Popen) -> None:
    """Terminate the process group lab.sh started in (bash's exec'd nasnb lab, jupyter lab)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:  # all gone already (lab.sh failed early)
            pass
        try:
            server.wait(timeout=30)
            return
        except subprocess.TimeoutExpired:
            continue


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


def test_lab_sh_as_root_installs_the_clone_and_serves_the_notebooks(clone, tmp_path):
    python, _ = borrowing_venv(tmp_path / "venv")
    # (pip's build of the editable install takes setuptools from pip's configured index, as anywhere)
    env = dict(os.environ, NASNB_PYTHON=str(python), HOME=str(tmp_path / "home"))
    env.pop("NASNB_SKIP_INSTALL", None)
    log = tmp_path / "lab.log"
    entries = serve_with_lab_sh(clone, env, log)
    assert served_notebooks(entries) == notebooks_of(clone)
    assert "running as root: passing --allow-root to jupyter lab" in log.read_text()
    # pip install -e put the clone into the new Python, and left this environment's nasnb alone.
    assert importing_nasnb(python, tmp_path).startswith(str(clone / "nasnb"))
    assert importing_nasnb(sys.executable, tmp_path).startswith(str(ROOT / "nasnb"))


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="becomes `nobody` with setpriv (util-linux)")
def test_lab_sh_as_a_normal_user_serves_the_notebooks_without_allow_root(clone, tmp_path):
    nobody = pwd.getpwnam("nobody")
    assert nobody.pw_uid != 0
    # nobody's uid and gid, no groups. The one capability to read and search any folder is kept
    # because this environment's Python may live where only root can look (here: pyenv under /root,
    # mode 700). It gives no write access, and to JupyterLab and nasnb this is no root: geteuid() != 0.
    as_nobody = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups",
                 "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search", "--"]
    home = Path(tempfile.mkdtemp(prefix="nasnb-nobody-"))  # JupyterLab writes its runtime files here
    os.chown(home, nobody.pw_uid, nobody.pw_gid)
    try:
        env = dict(os.environ, NASNB_PYTHON=sys.executable, NASNB_SKIP_INSTALL="1", HOME=str(home),
                   USER="nobody", LOGNAME="nobody")
        log = tmp_path / "lab.log"
        entries = serve_with_lab_sh(clone, env, log, run_as=as_nobody)
        assert served_notebooks(entries) == notebooks_of(clone)
        assert "--allow-root" not in log.read_text()
    finally:
        shutil.rmtree(home)
