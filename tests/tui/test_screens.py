"""Job detail, study, gallery and reader-study screens driven with Pilot, asserting on widgets and the store."""

from __future__ import annotations

import sqlite3

import pytest
from tui_fake_store import settle

from xaug.tui.app import XaugApp
from xaug.tui.screens.gallery import GalleryScreen
from xaug.tui.screens.job_detail import JobDetailScreen
from xaug.tui.screens.queue import QueueScreen
from xaug.tui.screens.reader import ReaderScreen, reader_items
from xaug.tui.screens.study import StudyScreen
from xaug.tui.widgets.curves import CurvePlot
from xaug.tui.widgets.images import Image
from xaug.tui.widgets.job_table import JobTable
from xaug.tui.widgets.step_slider import StepSlider

pytestmark = pytest.mark.anyio

GAN_TRAIN = "g1" + "0" * 62


async def _open_job(pilot, key):
    table = pilot.app.screen.query_one(JobTable)
    table.focus()
    table.move_cursor(row=table.get_row_index(key))
    await pilot.press("enter")
    await settle(pilot)
    assert isinstance(pilot.app.screen, JobDetailScreen)
    return pilot.app.screen


async def test_generator_detail_curves_slider_config(fake_store):
    app = XaugApp(fake_store, poll_s=0.1)
    async with app.run_test(size=(160, 45)) as pilot:
        await settle(pilot)
        screen = await _open_job(pilot, GAN_TRAIN)
        plot = screen.query_one(CurvePlot)
        assert set(plot.series) == {"g_loss", "d_loss"} and len(plot.series["g_loss"][0]) == 7
        assert not plot.log_scale
        await pilot.press("y")
        assert plot.log_scale and "(log y)" in plot.plt.build() and "(log y)" in plot.plt.build()
        slider = screen.query_one(StepSlider)
        assert slider.steps == [100, 200, 300] and slider.current_step == 300  # follows the newest grid
        image = screen.query_one("#grid-image", Image)
        assert image.image is not None and image.image.size == (48, 48)
        before = image.image.tobytes()
        await pilot.press("left")
        await settle(pilot)
        assert slider.current_step == 200 and image.image.tobytes() != before
        await pilot.press("left", "left")
        assert slider.current_step == 100  # clamped at the first step
        await pilot.press("right")
        assert slider.current_step == 200
        assert "step 300: g_loss" in "\n".join(screen.query_one("#log-tail").lines)
        assert screen.query_one("#config").has_class("hidden")
        await pilot.press("k")
        assert not screen.query_one("#config").has_class("hidden") and screen.query_one("#log-tail").has_class("hidden")
        assert '"gan"' in str(screen.query_one("#config").render())
        assert not screen.query_one("#class-table").display
        await pilot.press("escape")
        assert isinstance(app.screen, QueueScreen)


async def test_classifier_detail_class_table_and_confusion(fake_store):
    app = XaugApp(fake_store, poll_s=0.1)
    async with app.run_test(size=(160, 45)) as pilot:
        await settle(pilot)
        screen = await _open_job(pilot, "c" * 64)  # train_classifier: metrics come from its evaluate job
        table = screen.query_one("#class-table")
        assert table.row_count == 3 and table.get_row_at(1)[:4] == ["viral", "0.200", "0.100", "0.133"]
        confusion = screen.query_one("#confusion")
        assert confusion.row_count == 3 and [c.plain for c in confusion.get_row_at(1)] == ["viral", "6", "1", "3"]
        assert "accuracy 0.78" in str(screen.query_one("#results").render())
        assert set(screen.query_one(CurvePlot).series) == {"train_loss", "val_loss"}
        assert not screen.query_one(StepSlider).display


async def test_all_curves_toggle(fake_store):
    from xaug.store import open_store
    from xaug.store.metrics import record_metrics

    record_metrics(open_store(fake_store), GAN_TRAIN, 300, {"ada_p": 0.2})
    app = XaugApp(fake_store, poll_s=0.1)
    async with app.run_test(size=(160, 45)) as pilot:
        await settle(pilot)
        screen = await _open_job(pilot, GAN_TRAIN)
        plot = screen.query_one(CurvePlot)
        assert set(plot.series) == {"g_loss", "d_loss", "ada_p"} and set(plot.shown) == {"g_loss", "d_loss"}
        await pilot.press("a")
        assert set(plot.shown) == {"g_loss", "d_loss", "ada_p"} and "ada_p" in plot.plt.build()


async def test_curves_update_live(fake_store):
    from xaug.store import open_store
    from xaug.store.metrics import record_metric

    app = XaugApp(fake_store, poll_s=0.1)
    async with app.run_test(size=(160, 45)) as pilot:
        await settle(pilot)
        screen = await _open_job(pilot, GAN_TRAIN)
        record_metric(open_store(fake_store), GAN_TRAIN, "g_loss", 350, 0.3)
        await pilot.pause(0.4)
        await settle(pilot)
        assert screen.query_one(CurvePlot).series["g_loss"][0][-1] == 350


async def test_study_matrix_cycles_and_export(fake_store):
    app = XaugApp(fake_store, poll_s=0.1)
    async with app.run_test(size=(160, 45)) as pilot:
        await settle(pilot)
        await pilot.press("f3")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, StudyScreen)
        matrix = screen.query_one("#matrix")
        assert matrix.row_count == 2
        ddpm = matrix.get_row_at(0)
        assert ddpm[:2] == ["ddpm", "resnet18"]
        assert ddpm[2].plain.startswith("+1.00") and ddpm[3].plain.endswith("*")  # +500 is significant
        assert screen.metric == "accuracy"
        await pilot.press("m")
        await settle(pilot)
        assert screen.metric == "balanced_accuracy" and matrix.get_row_at(0)[2].plain.startswith("+2.00")
        await pilot.press("b")
        await settle(pilot)
        assert screen.reference == "duplicate" and matrix.get_row_at(0)[2].plain.startswith("+1.00")
        deltas = screen.query_one("#class-deltas")
        assert deltas.row_count == 0 or deltas.get_row_at(0)[0] in ("ddpm", "gan")
        await pilot.press("b")
        await settle(pilot)
        assert deltas.row_count == 2 and deltas.get_row_at(0)[3].plain.startswith("+4.00")  # ddpm covid19
        assert "r = -1.00" in str(screen.query_one("#correlations").render())
        await pilot.press("e")
        exports = fake_store.parent / "demo-artifacts" / "exports"
        csv_text = (exports / "demo-comparisons.csv").read_text()
        assert csv_text.splitlines()[0].startswith("generator,classifier,amount")
        assert len(csv_text.splitlines()) == 1 + 24 + 12
        assert "\\toprule" in (exports / "demo-comparisons.tex").read_text()
        assert "| ddpm | resnet18 |" in (exports / "demo-comparisons.md").read_text()


async def test_study_screen_shows_the_unit_and_honours_the_stored_alpha(fake_store):
    with sqlite3.connect(fake_store) as conn:  # the analysis was run at alpha 0.01: p_adj 0.04 is not significant
        conn.execute("UPDATE analyses SET alpha = 0.01 WHERE study = 'demo'")
    app = XaugApp(fake_store, poll_s=0.1)
    async with app.run_test(size=(160, 45)) as pilot:
        await settle(pilot)
        await pilot.press("f3")
        await settle(pilot)
        screen = app.screen
        title = str(screen.query_one("#study-title").render())
        assert "n = 5 units; unit = fold (seeds averaged within a fold)" in title and "99% CI" in title
        assert not screen.query_one("#matrix").get_row_at(0)[3].plain.endswith("*")


async def test_study_screen_puts_the_near_copy_rate_next_to_utility(fake_store):
    with sqlite3.connect(fake_store) as conn:  # gan: held-out FID not meaningful; ddpm: 1.5% near-copies
        conn.executemany("INSERT INTO quality (job_key, reference, class_name, metric, features, value, n_real,"
                         " n_fake, meaningful) VALUES (?, ?, '', ?, ?, ?, 50, 50, ?)",
                         [("q0" + "0" * 62, "train", "memorised_fraction", "pixels", 0.015, 1),
                          ("q1" + "0" * 62, "heldout", "fid", "inception", 71.0, 0)])
    app = XaugApp(fake_store, poll_s=0.1)
    async with app.run_test(size=(160, 45)) as pilot:
        await settle(pilot)
        await pilot.press("f3")
        await settle(pilot)
        table = app.screen.query_one("#qvu-table")
        rows = {table.get_row_at(i)[0]: [c.plain for c in table.get_row_at(i)[1:]] for i in range(table.row_count)}
        assert rows["ddpm"][0].startswith("+1.62") and rows["ddpm"][1:3] == ["1.50", "40.00"]  # headline, stored
        assert rows["ddpm"][3] == "-" and rows["gan"][1] == "-"
        assert rows["gan"][2:] == ["65.00", "71.00†"]  # only the value that is not meaningful is marked
        assert "† = too few images" in str(app.screen.query_one("#correlations").render())


async def test_gallery_real_and_synthetic(fake_store):
    app = XaugApp(fake_store, poll_s=0.1)
    async with app.run_test(size=(160, 45)) as pilot:
        await settle(pilot)
        await pilot.press("f4")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, GalleryScreen)
        assert screen.class_names == ["healthy", "viral", "covid19"] and screen.generators == ["ddpm", "gan"]
        real, synthetic = screen.query_one("#real-image", Image), screen.query_one("#synthetic-image", Image)
        assert real.image is not None and synthetic.image is not None
        assert real.image.size == (4 * 96 + 6, 2 * 96 + 2)  # 8 real healthy images, 4 per row
        assert real.image.mode == synthetic.image.mode == "L"  # grey all the way (see the next test)
        first = synthetic.image.tobytes()
        await pilot.press("right")
        await settle(pilot)
        assert screen.generator == "gan" and synthetic.image.tobytes() != first
        await pilot.press("down")
        await settle(pilot)
        assert screen.class_name == "viral" and "viral" in str(screen.query_one("#synthetic-caption").render())
        await pilot.press("f2")
        assert isinstance(app.screen, QueueScreen)


def test_reader_items_are_blinded_mixed_and_stable(fake_store):
    from xaug.store import artifact_root, open_store
    from xaug.store.artifacts import load_study_samples
    from xaug.tui.widgets.images import real_image_folder

    db = open_store(fake_store)
    samples = load_study_samples(db, "demo")
    folder = real_image_folder(db, fake_store, "demo")
    root = artifact_root(fake_store)
    items = reader_items(samples, folder, root, 2, 0.25, "demo", "ann")
    sources = [i["source"] for i in items]
    assert sources.count("ddpm") == 6 and sources.count("gan") == 6 and sources.count("real") == 6
    assert items == reader_items(samples, folder, root, 2, 0.25, "demo", "ann")
    assert items != reader_items(samples, folder, root, 2, 0.25, "demo", "bob")


async def _start_reader(pilot, rater: str = "ann"):
    """Open the reader study and enter a rater name; returns the screen."""
    await settle(pilot)
    await pilot.press("f5")
    await settle(pilot)
    await pilot.press(*rater, "enter")
    await settle(pilot)
    return pilot.app.screen


async def test_reader_study_stores_ratings(fake_store):
    app = XaugApp(fake_store, poll_s=0.1)
    async with app.run_test(size=(160, 45)) as pilot:
        screen = await _start_reader(pilot)
        assert isinstance(screen, ReaderScreen) and screen.rater == "ann" and len(screen.items) == 18
        assert screen.query_one("#reader-image", Image).image is not None
        first = screen.item
        await pilot.press("4", "s")
        assert screen.position == 0  # waits for the guess
        assert "quality 4/5   plausibility 2/3" in str(screen.query_one("#reader-choice").render())
        await pilot.press("r")
        assert screen.position == 1
        second = screen.item
        await pilot.press("2", "a", "f")
        await pilot.press("space")  # skip the third
        assert screen.position == 3
        with sqlite3.connect(fake_store) as conn:
            rows = conn.execute("SELECT rater, image_path, source, quality, plausibility, guess FROM ratings"
                                " ORDER BY id").fetchall()
        assert rows == [("ann", first["image_path"], first["source"], 4, 2, "real"),
                        ("ann", second["image_path"], second["source"], 2, 1, "synthetic")]
        summary = screen.query_one("#reader-summary")
        await pilot.press("t")  # blinded: no summary before the end
        assert summary.has_class("hidden")
        # a second session of the same rater resumes after the rated images
        await pilot.press("w", "ctrl+u", *"ann", "enter")
        await settle(pilot)
        assert screen.position == 2
        while screen.item is not None:
            await pilot.press("5", "d", "f")
        await pilot.press("t")
        assert not summary.has_class("hidden")
        with sqlite3.connect(fake_store) as conn:
            per_source = dict(conn.execute("SELECT source, count(*) FROM ratings WHERE rater = 'ann'"
                                           " GROUP BY source").fetchall())
        assert sum(per_source.values()) == 18 and per_source["real"] == 6
        assert summary.row_count == 3 and summary.get_row_at(0)[0] == "real"  # real first, then generators
        assert summary.get_row_at(0)[2] == "6"


async def test_evaluate_job_shows_its_training_curves(fake_store):
    app = XaugApp(fake_store, poll_s=0.1)
    async with app.run_test(size=(160, 45)) as pilot:
        await settle(pilot)
        screen = await _open_job(pilot, "e" * 64)
        plot = screen.query_one(CurvePlot)
        assert set(plot.series) == {"train_loss", "val_loss"} and "of its train_classifier" in plot.plt.build()


def test_ema_smoothing_and_zoom_are_what_is_drawn():
    from xaug.tui.widgets.curves import ema, prepared

    assert ema([1.0, 2.0, 3.0], 0.0) == [1.0, 2.0, 3.0]
    smoothed = ema([0.0, 10.0, 10.0, 10.0], 0.5)
    assert smoothed[0] == 0.0 and smoothed[1] == pytest.approx(10 * 0.5 / 0.75)  # bias-corrected, not pulled to 0
    assert all(a < b for a, b in zip(smoothed[1:], smoothed[2:])) and smoothed[-1] < 10.0
    steps, values = list(range(0, 100, 10)), [1.0, -1.0, float("nan")] + [2.0] * 7
    xs, ys = prepared(steps, values, smoothing=0.0, last_steps=30, log_scale=True)
    assert xs == [60, 70, 80, 90] and ys == [2.0] * 4  # non-positive and NaN points dropped on a log axis


def _add_arms(db_path):
    """Validation curves for three arms of resnet18 fold 0 seed 0 (baseline, ddpm +100, duplicate +100) and one
    arm of fold 1, which the overlay of fold 0 must leave out."""
    from tui_fake_store import CLASSES, add_job

    from xaug.store import open_store
    from xaug.store.metrics import record_metrics

    db = open_store(db_path)
    base = {"classifier": {"model": "resnet18", "name": "resnet18"}, "fold": 0, "seed": 0, "classes": CLASSES}
    arms = {"c" * 64: None,
            "d1" + "0" * 62: {**base, "arm": "synthetic", "generator": {"name": "ddpm"}, "amount": 100},
            "d2" + "0" * 62: {**base, "arm": "duplicate", "generator": None, "amount": 100},
            "d3" + "0" * 62: {**base, "arm": "synthetic", "generator": {"name": "ddpm"}, "amount": 100, "fold": 1}}
    for i, (key, config) in enumerate(arms.items()):
        if config is not None:
            add_job(db, key, "train_classifier", f"train arm {i}", "done", config)
        for epoch in range(1, 6):
            record_metrics(db, key, epoch * 10, {"val_loss": 1.0 / epoch + 0.1 * i, "val_accuracy": 0.5 + 0.05 * i})


async def test_curve_smoothing_zoom_and_arm_overlay(fake_store):
    _add_arms(fake_store)
    app = XaugApp(fake_store, poll_s=0.1)
    async with app.run_test(size=(160, 45)) as pilot:
        await settle(pilot)
        screen = await _open_job(pilot, "e" * 64)  # the baseline's evaluate job
        plot = screen.query_one(CurvePlot)
        raw = plot.drawn()["train_loss"][1]
        await pilot.press("right_square_bracket", "right_square_bracket")
        assert plot.smoothing == pytest.approx(0.2) and "EMA 0.2" in plot.plt.build()
        smoothed = plot.drawn()["train_loss"][1]
        assert smoothed[0] == pytest.approx(raw[0]) and smoothed[-1] > raw[-1]  # a falling curve lags when smoothed
        await pilot.press("left_square_bracket", "left_square_bracket", "left_square_bracket")
        assert plot.smoothing == 0.0
        await pilot.press("o")  # every arm's validation loss
        await settle(pilot)
        assert set(plot.series) == {"baseline", "ddpm +100", "duplicate +100"}  # fold 1 left out
        assert plot.series["ddpm +100"][1][0] == pytest.approx(1.1)
        assert "every arm of this classifier x fold" in plot.plt.build()
        await pilot.press("o")  # validation accuracy
        await settle(pilot)
        assert plot.series["duplicate +100"][1] == [pytest.approx(0.6)] * 5
        await pilot.press("o")
        await settle(pilot)
        assert set(plot.series) == {"train_loss", "val_loss", "val_accuracy"}  # its own curves again


async def test_zoom_to_the_last_steps(fake_store):
    app = XaugApp(fake_store, poll_s=0.1)
    async with app.run_test(size=(160, 45)) as pilot:
        await settle(pilot)
        screen = await _open_job(pilot, GAN_TRAIN)  # curves from step 0 to 300
        plot = screen.query_one(CurvePlot)
        await pilot.press("z")
        assert plot.last_steps == 200 and plot.drawn()["g_loss"][0] == [100, 150, 200, 250, 300]
        assert "last 200 steps" in plot.plt.build()
        await pilot.press("z")
        assert plot.last_steps == 50 and plot.drawn()["d_loss"][0] == [250, 300]
        await pilot.press("z")
        assert plot.last_steps is None and len(plot.drawn()["g_loss"][0]) == 7


def test_blinded_images_share_resolution_and_processing():
    """A real image and a synthetic one with the same content at a quarter of its resolution come out identical:
    nothing but content is left to tell them apart."""
    import numpy as np
    from PIL import Image as PILImage

    from xaug.tui.widgets.images import READER_DISPLAY, blinded

    rng = np.random.default_rng(0)
    real = PILImage.fromarray(rng.integers(0, 255, (128, 160), dtype=np.uint8))  # not even square
    square = real.crop((16, 0, 144, 128))
    synthetic = square.resize((32, 32), PILImage.Resampling.LANCZOS).convert("RGB")  # RGB PNG from a generator
    a, b = blinded(real, 32), blinded(synthetic, 32)
    assert a.size == b.size == (READER_DISPLAY, READER_DISPLAY) and a.mode == b.mode == "L"
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(blinded(real, 128)), np.asarray(a))  # the common side matters


def test_tiles_reach_the_sixel_encoder_with_every_grey_level():
    """A mosaic of grey ramps keeps all its levels through sixel encoding (the format's 101); as RGB the encoder's
    octree quantiser kept 16, which posterised radiographs and erased faint detail such as a GAN's ribs."""
    import re

    import numpy as np
    from PIL import Image as PILImage
    from textual_image._sixel import SixelOptions, image_to_sixels  # what textual-image's sixel renderable calls

    from xaug.tui.widgets.images import mosaic

    ramp = PILImage.fromarray(np.tile(np.arange(256, dtype=np.uint8), (256, 1)))
    sheet = mosaic([ramp, ramp.rotate(90)], tile=256)
    registers = lambda image: len(set(re.findall(r"#(\d+);2;", image_to_sixels(image, SixelOptions()))))
    assert sheet.mode == "L" and registers(sheet) >= 100
    assert registers(sheet.convert("RGB")) <= 32  # what the gallery sent before


def _sharpness(image) -> float:
    import numpy as np

    pixels = np.asarray(image.convert("L"), dtype=float)
    return float(np.abs(np.diff(pixels, axis=1)).mean())


async def test_reader_shows_real_and_synthetic_at_one_size_and_sharpness(fake_store):
    """Real radiographs at 128 px, samples at 32 px (as paper.yaml's 512 vs 128): the rater sees both at the same
    size and, noise for noise, the same sharpness."""
    import numpy as np

    from xaug.tui.widgets.images import ImagePane

    from PIL import Image as PILImage

    rng = np.random.default_rng(1)
    root = fake_store.parent / "demo-artifacts"
    folder = next((root / "jobs" / "prepare_data").iterdir())
    def radiograph():  # 128 px with detail at every scale
        coarse = np.kron(rng.integers(40, 215, size=(32, 32)), np.ones((4, 4)))
        return np.clip(coarse + rng.normal(0, 20, size=(128, 128)), 0, 255).astype(np.uint8)

    np.save(folder / "images.npy", np.stack([radiograph() for _ in range(24)]))
    for png in (root / "jobs" / "sample").rglob("*.png"):  # a perfect generator of the same images, at 32 px
        PILImage.fromarray(radiograph()).resize((32, 32), PILImage.Resampling.LANCZOS).save(png)
    app = XaugApp(fake_store, poll_s=0.1)
    async with app.run_test(size=(160, 45)) as pilot:
        screen = await _start_reader(pilot)
        assert screen.side == 32  # the coarsest source
        seen: dict[str, list] = {}
        while screen.item is not None and len(seen.get("real", [])) < 2:
            await settle(pilot)
            image = screen.query_one("#reader-box", ImagePane).image
            seen.setdefault("real" if screen.item["source"] == "real" else "synthetic", []).append(image)
            await pilot.press("space")
        sizes = {image.size for images in seen.values() for image in images}
        assert len(seen) == 2 and len(sizes) == 1
        real, synthetic = (np.mean([_sharpness(i) for i in seen[s]]) for s in ("real", "synthetic"))
        assert 0.8 < real / synthetic < 1.25, (real, synthetic)


async def test_an_image_change_blanks_the_box_for_one_frame(fake_store):
    """A sixel terminal keeps pixels Textual did not overwrite: the pane paints its background over its whole
    area (the image hidden) before it shows the next image, or nothing when there is none."""
    from PIL import Image as PILImage

    from xaug.tui.widgets.images import ImagePane

    app = XaugApp(fake_store, poll_s=0.1)
    async with app.run_test(size=(160, 45)) as pilot:
        await settle(pilot)
        await pilot.press("f4")
        await settle(pilot)
        pane = app.screen.query_one("#synthetic-pane", ImagePane)
        inner = pane.query_one(Image)
        assert inner.display and pane.image is not None
        small = PILImage.new("RGB", (8, 8))
        pane.show(small)
        assert not inner.display and pane.image is not small  # this frame: only the pane's background
        await pilot.pause()
        await pilot.pause()
        assert inner.display and pane.image is small
        pane.show(None)
        await pilot.pause()
        await pilot.pause()
        assert not inner.display and pane.image is None  # no image: the background stays
