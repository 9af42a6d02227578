"""ProgramPanel: the dashboard's view of an AutoML-Zero search, its best program as code.

The program is text, so the panel is an ipywidgets.HTML: `nasnb.viz.program.program_html` of
`program_data(history, upto)`, changed lines since the previous best on yellow, dead code grey.
Setting the HTML costs a string; the panel sets it only when the best trial changes (or another
history is shown), so a step that found nothing better costs the look-up of one more record
(`best_trial` extends its kept scan of the history by the records that are new; the
program's lines are built only when the best changed). `draws` counts
real redraws, `last_seconds` the time of the last one, as for every Panel.
"""
from __future__ import annotations

import ipywidgets as widgets

from nasnb.widgets.panels import Panel


class ProgramPanel(Panel):
    """The best program of the first `upto` records, as code (nasnb.viz.program)."""

    title = "program"

    def __init__(self):
        super().__init__()
        self.html = widgets.HTML(value="<i>no complete trial yet: press Step or Play</i>")
        self.widget = widgets.VBox([self.html])
        self._shown: tuple | None = None  # (history object, best trial number) on screen
        self.data_shown: dict | None = None

    def update(self, search, upto: int) -> bool:
        from nasnb.viz.program import best_trial, program_data, program_html

        best = best_trial(search.history, upto)
        key = (search.history, None if best is None else best.number)
        if self._shown is not None and self._shown[0] is key[0] and self._shown[1] == key[1]:
            return False  # the same best program is on screen
        data = program_data(search.history, upto)
        self._shown, self.data_shown = key, data
        return self._timed(lambda: setattr(self.html, "value", program_html(data)))
