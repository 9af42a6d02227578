"""The other half of the notebooks in JupyterLab: the checks are test_notebooks_in_browser.py's.

A second file so that pytest-xdist (`-n 2 --dist loadfile`) runs the two halves on its two
workers at once; each worker starts its own JupyterLab and chromium (the session fixtures of
conftest.py).
"""
import pytest

from test_notebooks_in_browser import NOTEBOOKS, THERE, check_notebook_in_jupyterlab


def test_the_two_files_share_the_notebooks_out():
    from test_notebooks_in_browser import HERE

    assert sorted(HERE + THERE) == NOTEBOOKS and not set(HERE) & set(THERE)


@pytest.mark.parametrize("path", THERE, ids=[p.name for p in THERE])
def test_notebook_in_jupyterlab(path, page, lab):
    check_notebook_in_jupyterlab(path, page, lab)
