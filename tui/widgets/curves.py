"""Curves with textual-plotext: several series, EMA smoothing, linear or log y axis, zoom to the last N steps."""

from __future__ import annotations

import math

from textual.reactive import reactive
from textual_plotext import PlotextPlot

Series = dict[str, tuple[list[int], list[float]]]
"""Curves as name -> (steps, values)."""

SMOOTHING_STEP = 0.1
SMOOTHING_MAX = 0.95
ZOOMS = (None, 5000, 1000, 200, 50)
"""Steps shown by the zoom key, in turn: everything, then the last N steps."""


def curves_from_points(points: list[dict]) -> Series:
    """Stored metric rows (name, step, value; ordered by name then step) as curves."""
    series: Series = {}
    for point in points:
        steps, values = series.setdefault(point["name"], ([], []))
        steps.append(point["step"])
        values.append(point["value"])
    return series


def ema(values: list[float], weight: float) -> list[float]:
    """Exponential moving average with bias correction (TensorBoard's smoothing): weight 0 returns the values,
    weight 0.9 averages over roughly the last ten; the first points are not pulled towards zero."""
    if weight <= 0:
        return list(values)
    out, last = [], 0.0
    for n, value in enumerate(values, start=1):
        last = weight * last + (1 - weight) * value
        out.append(last / (1 - weight ** n))
    return out


def prepared(steps: list[int], values: list[float], *, smoothing: float, last_steps: int | None,
             log_scale: bool) -> tuple[list[int], list[float]]:
    """One curve as drawn: finite points (positive ones on a log axis), smoothed, then cut to the last N steps
    (smoothing first, so the zoomed curve starts where the full one is at that step)."""
    points = [(s, v) for s, v in zip(steps, values) if math.isfinite(v) and (v > 0 or not log_scale)]
    xs = [p[0] for p in points]
    ys = ema([p[1] for p in points], smoothing)
    if last_steps is not None and xs:
        start = xs[-1] - last_steps
        kept = [i for i, x in enumerate(xs) if x >= start]
        xs, ys = [xs[i] for i in kept], [ys[i] for i in kept]
    return xs, ys


class CurvePlot(PlotextPlot):
    """Plots curves; `log_scale`, `smoothing` (EMA weight) and `last_steps` change how they are drawn."""

    log_scale: reactive[bool] = reactive(False)
    all_series: reactive[bool] = reactive(False)
    """False: only the losses (when there are any), so an lr or epoch curve does not squash them; True: all."""
    smoothing: reactive[float] = reactive(0.0)
    """EMA weight, 0 (raw) to SMOOTHING_MAX."""
    last_steps: reactive[int | None] = reactive(None)
    """Show only the last N steps (None: all)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.series: Series = {}
        self._title = ""

    def show(self, series: Series, title: str = "") -> None:
        """Replace the plotted curves."""
        self.series = series
        self._title = title
        self._replot()

    def watch_log_scale(self) -> None:
        self._replot()

    def watch_all_series(self) -> None:
        self._replot()

    def watch_smoothing(self) -> None:
        self._replot()

    def watch_last_steps(self) -> None:
        self._replot()

    def smooth_more(self, delta: float) -> None:
        """Change the smoothing by `delta`, within 0..SMOOTHING_MAX."""
        self.smoothing = round(min(max(self.smoothing + delta, 0.0), SMOOTHING_MAX), 2)

    def next_zoom(self) -> None:
        """Zoom to the next of ZOOMS that is shorter than the curves (back to everything after the last)."""
        span = max((steps[-1] - steps[0] for steps, _ in self.series.values() if steps), default=0)
        options = [z for z in ZOOMS if z is None or z < span]
        index = options.index(self.last_steps) if self.last_steps in options else 0
        self.last_steps = options[(index + 1) % len(options)]

    @property
    def shown(self) -> Series:
        """The curves drawn now (before smoothing and zoom)."""
        losses = {name: data for name, data in self.series.items() if "loss" in name}
        return self.series if self.all_series or not losses else losses

    @property
    def settings(self) -> str:
        """'EMA 0.6, last 200 steps, log y' (empty when drawn raw)."""
        parts = [f"EMA {self.smoothing:g}" if self.smoothing else "",
                 f"last {self.last_steps} steps" if self.last_steps else "", "log y" if self.log_scale else ""]
        return ", ".join(p for p in parts if p)

    def drawn(self) -> Series:
        """The curves exactly as plotted: filtered, smoothed and zoomed (log10 is applied when drawing)."""
        return {name: prepared(steps, values, smoothing=self.smoothing, last_steps=self.last_steps,
                               log_scale=self.log_scale)
                for name, (steps, values) in sorted(self.shown.items())}

    def _replot(self) -> None:
        """Draw every series on the plotext figure.

        The log scale is drawn by plotting log10 values with decade tick labels: plotext's own yscale('log')
        transforms its data in place on every build, so a second render of the same figure fails.
        """
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(self._title + (f"  ({self.settings})" if self.settings else ""))
        plt.xlabel("step")
        lowest, highest = math.inf, -math.inf
        for name, (xs, ys) in self.drawn().items():
            if not xs:
                continue
            ys = [math.log10(y) for y in ys] if self.log_scale else ys
            lowest, highest = min(lowest, *ys), max(highest, *ys)
            plt.plot(xs, ys, label=name, marker="braille")
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
