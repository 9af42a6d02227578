"""Live views of a search in Jupyter (ipywidgets); the only part of nasnb that imports Jupyter code.

    from nasnb.widgets import Dashboard
    Dashboard(search)   # Step / Play / Pause / Reset, a history slider, and the strategy's panels

Widgets observe a search and draw what `nasnb.viz` computes from its history; every view is also
available headless as a matplotlib Figure.
"""
from nasnb.widgets.dashboard import Dashboard
from nasnb.widgets.live_panels import AlphasPanel, LivePanel
from nasnb.widgets.panels import PANELS, CellPanel, Panel, PlotPanel, figure_png, make_panel

__all__ = ["Dashboard", "PANELS", "AlphasPanel", "CellPanel", "LivePanel", "Panel", "PlotPanel", "figure_png",
           "make_panel"]
