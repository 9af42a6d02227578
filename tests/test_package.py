"""The package as users meet it: what `import nasnb` loads, what the wheel ships, the set-up files."""
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_nasnb_and_its_strategies_and_tables_loads_no_jupyter_plotting_torchvision_or_extras():
    code = (
        "import sys, nasnb, nasnb.strategies, nasnb.bench, nasnb.distributed\n"
        "heavy = ['ipywidgets', 'IPython', 'matplotlib', 'torchvision', 'sklearn', 'pandas', 'optuna', 'nats_bench', 'dask', 'distributed']\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import nasnb imported: {out.stdout.strip()}"


def test_core_never_imports_widget_stack():
    offenders = []
    for path in (ROOT / "nasnb").rglob("*.py"):
        if "widgets" in path.parts:
            continue
        text = path.read_text()
        for name in ("import ipywidgets", "from ipywidgets", "import IPython", "from IPython"):
            if name in text:
                offenders.append(f"{path.relative_to(ROOT)}: {name}")
    assert not offenders, offenders


def test_no_eval_or_exec_in_the_library():
    import ast

    offenders = []
    for path in (ROOT / "nasnb").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("eval", "exec"):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.func.id}()")
    assert not offenders, offenders


def test_every_subpackage_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    found = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "nasnb").rglob("__init__.py")
    }
    assert found - listed == set(), f"add these packages to pyproject.toml: {sorted(found - listed)}"
    assert "nasnb.notebooks" in listed


def test_notebooks_are_found_from_a_source_checkout():
    from nasnb.cli import bundled_notebooks

    names = [p.name for p in bundled_notebooks()]
    on_disk = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert names == on_disk and "01_search_spaces.ipynb" in names


def test_wheel_ships_the_package_and_the_notebooks(tmp_path):
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("nasnb-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for notebook in (ROOT / "notebooks").glob("*.ipynb"):
        assert f"nasnb/notebooks/{notebook.name}" in names
    for module in (ROOT / "nasnb").rglob("*.py"):
        assert module.relative_to(ROOT).as_posix() in names
    assert any(n.endswith("entry_points.txt") for n in names)


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = "bash scripts/test.sh"
    assert command in readme
    ci_commands = [l.strip() for l in ci.splitlines() if l.strip() and not l.strip().startswith(("#", "set ", "cd "))]
    assert ci_commands == [command]


def test_dependencies_keep_loose_lower_bounds():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    torch = next(d for d in deps if d.startswith("torch>") or d.startswith("torch="))
    assert torch.startswith("torch>="), "torch must be a lower bound so Colab's torch is reused"
    assert not any("==" in d for d in deps), "no pinned runtime dependencies"
