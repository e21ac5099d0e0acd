"""The queue's job table, virtualised with Textual's line API: only the rows on screen are ever rendered.

Textual's DataTable measures every cell of every row it holds; with 10,000 jobs that alone took seconds. Here a
refresh swaps in the new list of rows (a dict and a list, no widget work), and `render_line` draws the visible
rows from a per-job cache of rendered strips. The cursor follows a job *key*, not a row number, so the selection
stays on its job when the order changes (a job starts running and moves to the top).
"""

from __future__ import annotations

import datetime as _dt
import time
from dataclasses import dataclass, field
from operator import itemgetter

from rich.segment import Segment
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from xaug.store.liveness import parse_stamp

COLUMNS = (("kind", "Kind"), ("study", "Study"), ("label", "Job"), ("status", "Status"), ("progress", "Progress"),
           ("eta", "ETA"), ("gpu", "GPU"), ("elapsed", "Elapsed"), ("priority", "Prio"))
WIDTHS = {"kind": 16, "study": 12, "status": 20, "progress": 17, "eta": 7, "gpu": 5, "elapsed": 8, "priority": 4}
"""Column widths; the job label takes what is left of the widget's width (at least LABEL_MIN)."""
LABEL_MIN = 20
GAP = 1
"""Spaces between columns."""
STATUS_STYLE = {"queued": "dim", "running": "bold cyan", "done": "green", "failed": "bold red",
                "cancelled": "yellow", "blocked": "magenta"}
BAR_WIDTH = 12


def format_duration(seconds: float | None) -> str:
    """Seconds as `1h02m`, `3m07s` or `12s`; empty for None."""
    if seconds is None or seconds < 0:
        return ""
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def progress_bar(done: float, total: float, width: int = BAR_WIDTH, finished: bool = False) -> Text:
    """A text progress bar with a percentage, e.g. `██████░░░░░░  50%`; full once `finished`."""
    fraction = 1.0 if finished else min(max(done / total, 0.0), 1.0) if total else 0.0
    filled = round(fraction * width)
    bar = Text("█" * filled, style="green")
    bar.append("░" * (width - filled), style="dim")
    bar.append(f" {fraction * 100:3.0f}%")
    return bar


def elapsed_s(row: dict) -> float | None:
    """Run time of a job: started -> ended, or started -> now while it runs."""
    start = parse_stamp(row.get("started_at"))
    if start is None:
        return None
    end = parse_stamp(row.get("ended_at")) or _dt.datetime.now(_dt.timezone.utc)
    return (end - start).total_seconds()


def job_cells(row: dict) -> tuple[Text, ...]:
    """The displayed cells of one job row, in column order."""
    status = row["status"]
    note = ""
    if status == "running":  # cancelling, or where Slurm has the job (PENDING means it waits for a node)
        note = " (cancelling)" if row.get("cancel_requested") else (
            f" ({row['slurm_state'].lower()})" if row.get("slurm_state") else "")
    status_text = Text(status + note, style=STATUS_STYLE.get(status, ""))
    eta = format_duration(row.get("eta_s")) if status == "running" else ""
    return (Text(row["kind"]), Text(row.get("studies") or ""), Text(row["label"]), status_text,
            progress_bar(row.get("progress") or 0.0, row.get("progress_total") or 0.0, finished=status == "done"),
            Text(eta), Text(row.get("gpus") or ""), Text(format_duration(elapsed_s(row))),
            Text(str(row.get("priority") or 0)))


SHOWN_FIELDS = ("kind", "studies", "label", "status", "cancel_requested", "progress", "progress_total", "eta_s",
                "gpus", "started_at", "ended_at", "priority", "slurm_state")
"""The job fields the table draws (what the queue reads from the store)."""
_signature = itemgetter(*SHOWN_FIELDS)


def row_signature(row: dict) -> tuple:
    """The raw values a row's cells are drawn from: equal signatures mean nothing to redraw (cheap to compare)."""
    return _signature(row) if len(row) > len(SHOWN_FIELDS) else tuple(row.get(name) for name in SHOWN_FIELDS)


@dataclass(frozen=True)
class JobRows:
    """Rows in display order with their index and signatures: built in a worker thread, so that showing 10,000
    jobs on the UI thread is a swap of references. Never changed once built."""

    jobs: dict[str, dict] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    signatures: dict[str, tuple] = field(default_factory=dict)
    shape: tuple | None = None
    """What the rows were read under (the queue's shape and the view's filter; the screen decides), so that the
    next read can tell whether only progress changed; None for a partial read."""
    read_at: float = 0.0
    """time.monotonic() of the read of every row."""

    @classmethod
    def build(cls, rows: list[dict], shape: tuple | None = None) -> JobRows:
        """Index `rows` (already in display order)."""
        order = [row["key"] for row in rows]
        return cls(dict(zip(order, rows)), order, {key: i for i, key in enumerate(order)},
                   {row["key"]: row_signature(row) for row in rows}, shape, time.monotonic())

    def updated(self, rows: list[dict]) -> JobRows:
        """These rows with some of them replaced by newer reads of the same jobs (their order is unchanged)."""
        known = [row for row in rows if row["key"] in self.index]
        jobs, signatures = dict(self.jobs), dict(self.signatures)
        jobs.update((row["key"], row) for row in known)
        signatures.update((row["key"], row_signature(row)) for row in known)
        return JobRows(jobs, self.order, self.index, signatures, self.shape, self.read_at)

    def changed_since(self, previous: JobRows) -> set[str]:
        """Keys that are new or drawn differently than in `previous`."""
        old = previous.signatures
        return {key for key, signature in self.signatures.items() if old.get(key) != signature}


def column_widths(total: int) -> list[int]:
    """Each column's width for a table `total` cells wide (the label column stretches)."""
    fixed = sum(WIDTHS.values()) + GAP * (len(COLUMNS) - 1)
    return [WIDTHS.get(key, max(LABEL_MIN, total - fixed)) for key, _ in COLUMNS]


def cells_line(cells: tuple[Text, ...], widths: list[int]) -> Text:
    """One table line: each cell cut or padded to its column's width."""
    line = Text(no_wrap=True, end="")
    for i, (cell, width) in enumerate(zip(cells, widths)):
        cell = cell.copy()
        cell.truncate(width, overflow="ellipsis", pad=True)
        line.append_text(cell)
        if i < len(cells) - 1:
            line.append(" " * GAP)
    return line


class JobTable(ScrollView, can_focus=True):
    """Every job of the queue in the order it is given; `set_rows` replaces the rows, the cursor keeps its job."""

    BINDINGS = [
        Binding("enter", "select", "Open", show=False),
        Binding("up", "cursor(-1)", show=False),
        Binding("down", "cursor(1)", show=False),
        Binding("pageup", "page(-1)", show=False),
        Binding("pagedown", "page(1)", show=False),
        Binding("home", "jump(0)", show=False),
        Binding("end", "jump(-1)", show=False),
    ]
    COMPONENT_CLASSES = {"job-table--header", "job-table--cursor", "job-table--even"}
    DEFAULT_CSS = """
    JobTable { background: $surface; }
    JobTable > .job-table--header { text-style: bold; background: $panel; color: $foreground; }
    JobTable:ansi > .job-table--header { background: ansi_bright_blue; color: ansi_default; }
    JobTable > .job-table--even { background: $surface-lighten-1 50%; }
    JobTable:dark > .job-table--even { background: $surface-darken-1 40%; }
    JobTable > .job-table--cursor { background: $block-cursor-blurred-background;
                                    color: $block-cursor-blurred-foreground; }
    JobTable:focus > .job-table--cursor { background: $block-cursor-background; color: $block-cursor-foreground; }
    """
    """DataTable's colours, so the queue looks like the other tables."""

    class JobSelected(Message):
        """The user chose a job (Enter on a row)."""

        def __init__(self, key: str) -> None:
            super().__init__()
            self.key = key

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.rows = JobRows()
        """What the table shows (attributes down: the screen reads it, never the table's cells)."""
        self._strips: dict[str, Strip] = {}
        """Rendered rows (no cursor or stripe style) for the current width; dropped when a row changes."""
        self._width = 0
        self.cursor_key: str | None = None

    @property
    def jobs(self) -> dict[str, dict]:
        """Job key -> row shown."""
        return self.rows.jobs

    @property
    def order(self) -> list[str]:
        """Job keys in display order."""
        return self.rows.order

    # --- what the screen and tests read --------------------------------------------------------------------------

    @property
    def row_count(self) -> int:
        """How many jobs the table holds."""
        return len(self.order)

    @property
    def cursor_row(self) -> int:
        """The cursor's row number (0 when empty)."""
        return self.rows.index.get(self.cursor_key, 0) if self.cursor_key else 0

    @property
    def selected_key(self) -> str | None:
        """The key of the job under the cursor, if any."""
        return self.cursor_key

    def get_row_index(self, key: str) -> int:
        """The row number of a job."""
        return self.rows.index[key]

    def get_row(self, key: str) -> tuple[Text, ...]:
        """The cells shown for a job."""
        return job_cells(self.jobs[key])

    def get_row_at(self, index: int) -> tuple[Text, ...]:
        """The cells shown on row `index`."""
        return self.get_row(self.order[index])

    def move_cursor(self, *, row: int) -> None:
        """Put the cursor on row `row` (clamped) and scroll it into view."""
        if self.order:
            self._set_cursor(self.order[min(max(row, 0), len(self.order) - 1)])

    # --- updating ------------------------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every row."""
        self.show_rows(JobRows())

    def set_rows(self, rows: list[dict]) -> int:
        """Show `rows` in this order (indexing them here; a screen with many rows builds JobRows in a worker and
        calls `show_rows`). Returns how many jobs are new or changed."""
        built = JobRows.build(rows)
        changed = built.changed_since(self.rows)
        self.show_rows(built, changed)
        return len(changed)

    def show_rows(self, rows: JobRows, changed: set[str] | None = None) -> None:
        """Show `rows`; `changed` (default: every job) are drawn again. The cursor stays on its job, at the same
        height on screen, while rows move; only cached, i.e. recently visible, rows are looked at here."""
        old = self.rows
        screen_offset = self.cursor_row - int(self.scroll_y) if self.cursor_key in old.index else None
        if changed is None:
            self._strips.clear()
        else:
            for key in [k for k in self._strips if k in changed or k not in rows.index]:
                del self._strips[key]
        self.rows = rows
        self.virtual_size = Size(self.size.width, len(rows.order) + 1)
        if self.cursor_key not in rows.index:
            at = old.index.get(self.cursor_key, 0) if self.cursor_key else 0
            self.cursor_key = rows.order[min(at, len(rows.order) - 1)] if rows.order else None
        elif screen_offset is not None:  # keep the selected job where the eye is
            self.scroll_to(y=max(self.cursor_row - screen_offset, 0), animate=False, immediate=True)
        self.refresh()

    def tick_elapsed(self) -> None:
        """Redraw the running jobs (their elapsed time moves); only the visible ones are rendered again."""
        for key in [k for k in self._strips if self.jobs[k]["status"] == "running"]:
            del self._strips[key]
        self.refresh()

    # --- drawing -------------------------------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        """Line 0 is the header; line y shows row scroll_y + y - 1."""
        width = self.scrollable_content_region.width  # without the scrollbar
        if width != self._width:
            self._width, self._strips = width, {}
        widths = column_widths(width)
        if y == 0:
            header = cells_line(tuple(Text(label) for _, label in COLUMNS), widths)
            style = self.get_component_rich_style("job-table--header")
            return Strip(header.render(self.app.console)).apply_style(style).crop_extend(0, width, style)
        index = int(self.scroll_y) + y - 1
        if index >= len(self.order):
            return Strip.blank(width, self.rich_style)
        key = self.order[index]
        strip = self._strips.get(key)
        if strip is None:
            strip = self._strips[key] = Strip(cells_line(job_cells(self.jobs[key]), widths)
                                              .render(self.app.console))
        if key == self.cursor_key:  # the cursor's colours win over the cells' (green "done" on a cyan bar)
            style = self.get_component_rich_style("job-table--cursor")
            return Strip([Segment(text, seg_style + style if seg_style else style)
                          for text, seg_style, _ in strip]).crop_extend(0, width, style)
        style = self.get_component_rich_style("job-table--even") if index % 2 else self.rich_style
        return Strip([Segment(text, style + seg_style if seg_style else style)
                      for text, seg_style, _ in strip]).crop_extend(0, width, style)

    def on_resize(self, event: events.Resize) -> None:
        """Widths changed: the cached rows are for the old width."""
        self.virtual_size = Size(event.size.width, len(self.order) + 1)

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    # --- moving --------------------------------------------------------------------------------------------------

    def _set_cursor(self, key: str) -> None:
        """Select a job and scroll so that its row (below the header) is on screen."""
        self.cursor_key = key
        index = self.rows.index[key]
        rows_visible = max(self.size.height - 1, 1)
        top = int(self.scroll_y)
        if index < top:
            self.scroll_to(y=index, animate=False, immediate=True)
        elif index >= top + rows_visible:
            self.scroll_to(y=index - rows_visible + 1, animate=False, immediate=True)
        self.refresh()

    def action_cursor(self, delta: int) -> None:
        """Up/down."""
        self.move_cursor(row=self.cursor_row + delta)

    def action_page(self, direction: int) -> None:
        """Page up/down."""
        self.move_cursor(row=self.cursor_row + direction * max(self.size.height - 2, 1))

    def action_jump(self, row: int) -> None:
        """Home/end."""
        self.move_cursor(row=row if row >= 0 else len(self.order) - 1)

    def action_select(self) -> None:
        """Enter: tell the screen which job was chosen."""
        if self.cursor_key is not None:
            self.post_message(self.JobSelected(self.cursor_key))

    def on_click(self, event: events.Click) -> None:
        """A click selects its row; a second click on it opens the job."""
        index = int(self.scroll_y) + event.y - 1
        if event.y >= 1 and 0 <= index < len(self.order):
            key = self.order[index]
            if key == self.cursor_key and event.chain > 1:
                self.action_select()
            self._set_cursor(key)
