"""Every notebook, run in JupyterLab in a real (headless) chromium: what a user actually sees.

nbclient (tests/test_notebooks.py) proves the code runs; it cannot see a widget that never renders,
an SVG that fails to show or a Play button that freezes the page. Here each notebook is opened in
JupyterLab, run with Run All (quick budget, NASNB_QUICK=1), and checked in the DOM: no cell shows an
error, the widgets and drawings are there, and clicking Step redraws the dashboard's panels. A
full-page screenshot of each notebook goes to artifacts/screenshots/, with one of its main widget
after the click (`<notebook>.widget.png`, which scripts/gallery.py puts in the README).

Images are compared by content: a widget Image shows its PNG through a blob: URL, which changes at
every redraw even when the picture does not, so the page fetches the bytes and hashes them.
Set up: `bash scripts/install-browser.sh` and `pip install -e '.[test]'` (see conftest.py).
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))  # the same list conftest.py serves
SCREENSHOTS = ROOT / "artifacts" / "screenshots"

RUN_ALL_TIMEOUT = 240  # seconds; the quick notebooks take 20-45 s headless, more with a browser
STATUS = re.compile(r"(?:trial|step) (\d+) of (\d+)")  # a search of trials, or of steps (DARTS, ENAS)

# The prompts of every code cell, and whether any output is an error (JupyterLab shows an error
# with the stderr MIME type; its traceback names the exception, which a warning does not).
CELLS_JS = """() => [...document.querySelectorAll('.jp-Notebook .jp-CodeCell')].map(cell => ({
    prompt: (cell.querySelector('.jp-InputArea-prompt') || {}).textContent || '',
    errors: [...cell.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
        .map(o => o.textContent).filter(t => /Traceback|^\\s*\\w*(Error|Exception)\\b/m.test(t)),
}))"""

# FNV-1a hash of an <img>'s bytes (its src may be a blob: URL, a data: URL or a file).
IMAGE_HASH_JS = """async img => {
    if (!img.src) return '';
    const bytes = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
    let h = 2166136261;
    for (const b of bytes) { h ^= b; h = Math.imul(h, 16777619) >>> 0; }
    return bytes.length + ':' + h.toString(16);
}"""


# ---------------------------------------------------------------------------- helpers

def open_notebook(page, lab, name: str) -> None:
    """Open `name` in a fresh workspace and wait until its kernel is idle."""
    page.goto(lab.notebook_url(name))
    page.locator(".jp-Notebook .jp-Cell").first.wait_for()
    page.locator(".jp-StatusBar-Widget", has_text=re.compile(r"\|\s*Idle")).first.wait_for(timeout=90_000)


def run_all(page, name: str, timeout: float = RUN_ALL_TIMEOUT) -> list[dict]:
    """Run > Run All Cells; wait until every code cell has run (or one failed). Returns the cells."""
    page.locator(".lm-MenuBar-item", has_text="Run").first.click()
    page.locator(".lm-Menu-item[data-command='runmenu:run-all']").click()
    deadline = time.monotonic() + timeout
    while True:
        cells = page.evaluate(CELLS_JS)
        prompts = [c["prompt"].strip() for c in cells]
        if all(re.fullmatch(r"\[\d+\]:", p) for p in prompts):
            return cells
        failed = [i for i, c in enumerate(cells) if c["errors"]]
        if failed and not any("*" in p for p in prompts):  # Run All stops at the first error
            return cells
        if time.monotonic() > deadline:
            screenshot(page, name + ".timeout")
            pytest.fail(f"{name}: Run All did not finish in {timeout:.0f} s; prompts {prompts}")
        time.sleep(0.5)


def assert_no_errors(cells: list[dict], name: str) -> None:
    errors = {i: c["errors"][0][-1500:] for i, c in enumerate(cells) if c["errors"]}
    assert not errors, f"{name}: code cells {sorted(errors)} show errors:\n" + "\n\n".join(errors.values())
    unrun = [i for i, c in enumerate(cells) if not re.fullmatch(r"\[\d+\]:", c["prompt"].strip())]
    assert not unrun, f"{name}: code cells {unrun} did not run"


def image_hashes(locator) -> list[str]:
    """The content hash of each <img> in `locator` ('' for an image with no src)."""
    return [img.evaluate(IMAGE_HASH_JS) for img in locator.all()]


def screenshot(page, stem: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{stem}.png"), full_page=True)


def notebook_screenshot(page, name: str) -> None:
    """A picture of the whole notebook (not just one screen). JupyterLab scrolls inside the notebook
    panel (whose scroll height includes one extra screen of 'scroll past end'), so the window is made
    as tall as the cells, the panel scrolled to the top, and the panel photographed."""
    panel = page.locator(".jp-NotebookPanel:visible").first
    scroller = panel.locator(".jp-WindowedPanel-outer").first
    content = scroller.evaluate("el => el.scrollHeight - el.clientHeight")
    page.set_viewport_size({"width": 1400, "height": min(int(content) + 200, 16_000)})
    page.wait_for_timeout(500)  # let JupyterLab lay the taller window out
    scroller.evaluate("el => { el.scrollTop = 0; }")
    page.wait_for_timeout(300)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    panel.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def widget_screenshot(locator, stem: str, caption: str) -> None:
    """The notebook's main widget alone, after it was clicked: `<stem>.widget.png`, the picture
    that scripts/gallery.py puts in the README, and `<stem>.widget.txt`, what it shows."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / f"{stem}.widget.txt").write_text(" ".join(caption.split()) + "\n")
    box = locator.bounding_box() or {"height": 800}
    locator.page.set_viewport_size({"width": 1400, "height": max(1000, int(box["height"]) + 200)})  # all of it
    locator.scroll_into_view_if_needed()
    locator.page.wait_for_timeout(300)
    locator.screenshot(path=str(SCREENSHOTS / f"{stem}.widget.png"))


def panel_names(dashboard) -> str:
    """The dashboard's panel titles ('cell and population'): bold one-word headings over the panels."""
    names = [t.strip() for t in dashboard.locator(".widget-html b").all_inner_texts()
             if re.fullmatch(r"\s*[a-z]+\s*", t)]
    return " and ".join(names)


def button(scope, text: str):
    return scope.locator(".jupyter-widgets.widget-button, .jupyter-widgets.widget-toggle-button",
                         has_text=re.compile(rf"^\s*{re.escape(text)}\s*$"))


def wait_for_status(dashboard, predicate, timeout: float = 30, what: str = "", stable_for: float = 0.0
                    ) -> tuple[int, int]:
    """Poll the dashboard's status line 'trial t of n' until predicate(t, n), holding for `stable_for`
    seconds (the same t and n throughout); returns (t, n)."""
    status = dashboard.locator(".widget-html", has_text=STATUS).first
    deadline = time.monotonic() + timeout
    held, since = None, 0.0
    while True:
        match = STATUS.search(status.inner_text())
        numbers = (int(match[1]), int(match[2])) if match else None
        if numbers is not None and predicate(*numbers):
            if numbers != held:
                held, since = numbers, time.monotonic()
            if time.monotonic() - since >= stable_for:
                return numbers
        else:
            held = None
        if time.monotonic() > deadline:
            pytest.fail(f"the dashboard's status never showed {what}: it reads {status.inner_text()!r}")
        time.sleep(0.1)


def status_numbers(dashboard) -> tuple[int, int]:
    match = STATUS.search(dashboard.locator(".widget-html", has_text=STATUS).first.inner_text())
    assert match, "the dashboard shows no 'trial t of n' status line"
    return int(match[1]), int(match[2])


def last_dashboard(page):
    """The output area of the last Dashboard on the page (the one that holds the last Step button)."""
    return page.locator(".jp-OutputArea-output", has=button(page, "Step")).last


# ---------------------------------------------------------------------------- the notebooks

def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no notebook"


# Half of the notebooks here, the other half in test_notebooks_in_second_browser.py: under
# `pytest -n 2 --dist loadfile` the two files go to the two workers, each with its own JupyterLab
# and chromium, so the slowest tests of the suite run side by side instead of one after another.
HERE, THERE = NOTEBOOKS[1::2], NOTEBOOKS[0::2]


@pytest.mark.parametrize("path", HERE, ids=[p.name for p in HERE])
def test_notebook_in_jupyterlab(path, page, lab):
    check_notebook_in_jupyterlab(path, page, lab)


def check_notebook_in_jupyterlab(path, page, lab):
    """Run All on one notebook, then check what JupyterLab shows (the module docstring)."""
    name = path.name
    open_notebook(page, lab, name)
    cells = run_all(page, name)
    notebook_screenshot(page, path.stem)  # taken before the asserts: a failure is worth a look too
    assert_no_errors(cells, name)

    # The generated first cells (scripts/sync_notebooks.py): the launch badges render as links to this
    # notebook (their images come from the internet, which the test browser cannot reach), and the
    # set-up cell ran and names the device.
    for site in ("https://colab.research.google.com/github/", "https://mybinder.org/v2/gh/"):
        badge = page.locator(f".jp-RenderedMarkdown a[href^='{site}']", has=page.locator("img"))
        assert badge.count() == 1, f"{name}: no {site} badge rendered"
        assert badge.get_attribute("href").replace("%2F", "/").endswith(f"notebooks/{name}")
    setup = page.locator(".jp-Notebook .jp-CodeCell").first.locator(".jp-OutputArea-output")
    assert "training will run on:" in setup.inner_text(), f"{name}: the set-up cell printed no device"

    svgs = page.locator(".jp-RenderedSVG svg, .jp-RenderedSVG img, .jp-RenderedImage img")
    assert svgs.count() >= 1, f"{name}: no cell drawing (SVG) or plot rendered"
    images = page.locator(".jupyter-widgets.widget-image")
    assert images.count() >= 1, f"{name}: no widget image rendered"
    assert all(image_hashes(images)), f"{name}: a widget image has no picture"  # every src set and loadable

    if button(page, "Step").count():  # a notebook with a Dashboard: Step must redraw its panels
        dashboard = last_dashboard(page)
        panel_images = dashboard.locator(".widget-image")
        assert panel_images.count() >= 2, f"{name}: the dashboard shows {panel_images.count()} images"
        for control in ("Step", "Play", "Reset"):
            assert button(dashboard, control).count() == 1, f"{name}: the dashboard has no {control} button"
        # A run in a later cell is drawn on the dashboard's timer, up to MAX_REDRAW_WAIT (3 s) after its
        # last record: Run All can end before that redraw reaches the page, and an earlier timed redraw
        # also reads 't of t' (CI at 7cc4fb8 read 'trial 1 of 1' of a 6-trial run), so wait until the
        # reading has held for longer than that wait.
        shown, total = wait_for_status(dashboard, lambda t, n: t == n > 0, timeout=25, stable_for=3.5,
                                       what=f"{name}'s newest trial (t of t) after Run All")
        before = image_hashes(panel_images)
        button(dashboard, "Step").click()
        wait_for_status(dashboard, lambda t, n: t == n == total + 1, timeout=60,
                        what=f"trial {total + 1} of {total + 1} after Step")
        page.wait_for_timeout(300)  # the images arrive with (or just after) the status line
        after = image_hashes(panel_images)
        assert after != before, f"{name}: Step added a trial but no panel image changed"
        goal = re.compile(" (maximising|minimising|objectives) ")  # the title: what the search optimises
        header = dashboard.locator(".widget-html", has_text=goal).first.inner_text()
        widget_screenshot(dashboard, path.stem, f"The Dashboard of {header}, after clicking Step "
                                                f"(trial {total + 1} of {total + 1}), with the {panel_names(dashboard)} panels.")
    elif button(page, "mutate one edge").count():  # 01: the sampler widget
        picture = page.locator(".jp-OutputArea-output", has=button(page, "mutate one edge")).locator(".widget-image")
        before = image_hashes(picture)
        button(page, "mutate one edge").click()
        deadline = time.monotonic() + 20
        while image_hashes(picture) == before and time.monotonic() < deadline:
            time.sleep(0.2)
        assert image_hashes(picture) != before, f"{name}: 'mutate one edge' did not change the cell picture"
        widget_screenshot(page.locator(".jp-OutputArea-output", has=button(page, "mutate one edge")), path.stem,
                          "The cell sampler: a NAS-Bench-201 cell drawn from its seed, after clicking "
                          "'mutate one edge'.")
    else:
        pytest.fail(f"{name}: neither a Dashboard (Step) nor the sampler (mutate one edge) is shown; "
                    "add what this notebook's widgets are to the test")


# ---------------------------------------------------------------------------- Play, Pause, slider

def test_dashboard_play_pause_and_history_slider(page, lab):
    """Play runs the search on a background thread; Pause stops it within one step; the history
    slider redraws an earlier step (tests/browser/dashboard_play.ipynb: a 0.3 s-per-trial search)."""
    name = "dashboard_play.ipynb"
    open_notebook(page, lab, name)
    assert_no_errors(run_all(page, name, timeout=90), name)
    dashboard = last_dashboard(page)
    dashboard.locator(".widget-image").first.wait_for(state="attached")
    assert status_numbers(dashboard) == (0, 0)

    button(dashboard, "Play").click()
    wait_for_status(dashboard, lambda t, n: n >= 6, timeout=60, what="6 trials while playing")
    # While it plays, the page stays responsive and Step is disabled (the play thread owns the search).
    assert button(dashboard, "Step").is_disabled(), "Step stays enabled while playing"

    button(dashboard, "Pause").click()
    _, at_pause = status_numbers(dashboard)
    button(dashboard, "Play").wait_for(timeout=10_000)  # the toggle pops back up when the thread ends
    page.wait_for_timeout(2000)  # about four steps' time: a search that kept going would show it
    _, settled = status_numbers(dashboard)
    # The page may show trial k while the kernel has finished k+1 (its redraw still on the way) and
    # started k+2 when the click arrives: that step is finished, none after it.
    assert settled <= at_pause + 2, f"after Pause at {at_pause} trials the search went on to {settled}"
    page.wait_for_timeout(1000)
    assert status_numbers(dashboard)[1] == settled, "the search is still running after Pause"
    assert button(dashboard, "Step").is_enabled(), "Step stays disabled after Pause"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    dashboard.screenshot(path=str(SCREENSHOTS / "dashboard_play.paused.png"))

    # The history slider ('step'), by keyboard as a user may: Home (step 0), then two steps right.
    images = dashboard.locator(".widget-image")
    latest = image_hashes(images)
    slider = dashboard.locator(".widget-slider", has=page.locator("label", has_text=re.compile(r"^\s*step\s*$")))
    handle = slider.locator(".noUi-handle")
    handle.focus()
    handle.press("Home")
    for _ in range(2):
        handle.press("ArrowRight")
    wait_for_status(dashboard, lambda t, n: t == 2 and n == settled, timeout=20,
                    what=f"trial 2 of {settled} after moving the slider")
    page.wait_for_timeout(300)
    earlier = image_hashes(images)
    assert earlier != latest, "moving the history slider back did not redraw the panels"
    dashboard.screenshot(path=str(SCREENSHOTS / "dashboard_play.slider.png"))

    # Back to the newest step (arrow keys), drawn exactly as before: a picture is a function of the step.
    for _ in range(settled - 2):
        handle.press("ArrowRight")
    wait_for_status(dashboard, lambda t, n: t == n == settled, timeout=20,
                    what=f"trial {settled} of {settled} after moving the slider to the end")
    page.wait_for_timeout(300)
    assert image_hashes(images) == latest, "the newest step looks different after scrubbing back to it"
