"""Loss curves of a job with textual-plotext: several series, linear or log y axis."""

from __future__ import annotations

import math

from textual.reactive import reactive
from textual_plotext import PlotextPlot


class CurvePlot(PlotextPlot):
    """Plots name -> (steps, values); `log_scale` switches the y axis (non-positive values are dropped there)."""

    log_scale: reactive[bool] = reactive(False)
    all_series: reactive[bool] = reactive(False)
    """False: only the losses (when there are any), so an lr or epoch curve does not squash them; True: all."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.series: dict[str, tuple[list[int], list[float]]] = {}

    def show(self, series: dict[str, tuple[list[int], list[float]]], title: str = "") -> None:
        """Replace the plotted curves."""
        self.series = series
        self._title = title
        self._replot()

    def watch_log_scale(self) -> None:
        """Re-plot when the scale toggles."""
        self._replot()

    def watch_all_series(self) -> None:
        """Re-plot when the choice of curves toggles."""
        self._replot()

    @property
    def shown(self) -> dict[str, tuple[list[int], list[float]]]:
        """The curves drawn now."""
        losses = {name: data for name, data in self.series.items() if "loss" in name}
        return self.series if self.all_series or not losses else losses

    def _replot(self) -> None:
        """Draw every series on the plotext figure.

        The log scale is drawn by plotting log10 values with decade tick labels: plotext's own yscale('log')
        transforms its data in place on every build, so a second render of the same figure fails.
        """
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(getattr(self, "_title", "") + ("  (log y)" if self.log_scale else ""))
        plt.xlabel("step")
        lowest, highest = math.inf, -math.inf
        for name, (steps, values) in sorted(self.shown.items()):
            points = [(s, v) for s, v in zip(steps, values) if math.isfinite(v) and (v > 0 or not self.log_scale)]
            if not points:
                continue
            ys = [math.log10(p[1]) if self.log_scale else p[1] for p in points]
            lowest, highest = min(lowest, *ys), max(highest, *ys)
            plt.plot([p[0] for p in points], ys, label=name, marker="braille")
        if self.log_scale and lowest <= highest:
            ticks = log_ticks(lowest, highest)
            plt.yticks(ticks, [f"{10 ** t:.3g}" for t in ticks])
        self.refresh()


def log_ticks(lowest: float, highest: float, count: int = 5) -> list[float]:
    """Tick positions (in log10 units) covering [lowest, highest]: whole decades, or `count` even steps within one."""
    decades = list(range(math.floor(lowest), math.ceil(highest) + 1))
    if len(decades) >= 3:
        return [float(d) for d in decades]
    if highest - lowest < 1e-9:
        return [lowest]
    return [lowest + (highest - lowest) * i / (count - 1) for i in range(count)]
