"""A new Python environment that sees this one's packages but has its own site-packages on top.

Used to test what users meet elsewhere without downloading torch again: a kernel without nasnb
(a fresh Colab runtime), or one with another ipywidgets (Colab's 7.7.1).
"""
import site
import subprocess
import venv
from pathlib import Path


def borrowing_venv(env_dir: Path) -> tuple[Path, Path]:
    """Create a venv at `env_dir` whose Python imports this environment's packages after its own.
    Returns (its python, its site-packages). nasnb is NOT importable there (outside the checkout)."""
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    site_dir = Path(subprocess.run([python, "-c", "import site; print(site.getsitepackages()[0])"],
                                   capture_output=True, text=True, check=True).stdout.strip())
    # A plain directory line in a .pth: its packages are importable, but its own .pth files (the
    # editable install of nasnb among them) are not run.
    (site_dir / "borrowed.pth").write_text(site.getsitepackages()[0] + "\n")
    # ensurepip's old setuptools would shadow the borrowed one, which torch's metadata needs (>= 77).
    subprocess.run([python, "-m", "pip", "uninstall", "-y", "-q", "setuptools"], check=True, capture_output=True)
    return python, site_dir
