"""The built-in procedural chest X-ray phantom: five classes, several images per patient, deterministic from a seed.

Each simulated patient gets an anatomy (body outline, lungs, diaphragm domes, heart, aortic knob, spine,
clavicles, posterior and anterior ribs, lung vessel markings) with its own size, rotation, contrast and exposure;
each of their images changes the pose and exposure slightly and redraws the noise. A class adds its finding:

- bacterial: lobar consolidation, a dense patch in one zone of one lung, cut sharp by a fissure;
- viral: bilateral interstitial pattern, a reticular net of streaks around both hila;
- fungal: several round nodules;
- covid19: faint patchy ground-glass opacities in the periphery of both lower zones;
- healthy: none.

Findings vary in size, position and strength, some are faint, and with a probability that grows with
`difficulty` a patient also gets a mild finding of another class (or a healthy patient a small granuloma), so
that a small CNN is clearly above chance but far from perfect. Drawing works in densities (attenuation): air 0,
soft tissue 1, bone and heart more; the film is bright where density is high, as in a real radiograph.
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from xaug.engine.data.records import RecordSet, number_records, order_classes
from xaug.store.errors import DataError
from xaug.engine.recipe.schema import CLASS_NAMES_PAPER, PhantomConfig

PAPER_COUNTS = {"healthy": 673, "bacterial": 100, "viral": 74, "fungal": 125, "covid19": 110}
"""Images per class in the paper's dataset (1,082 in all)."""
MIN_PER_CLASS = 8
"""No class gets fewer images than this, whatever the scale."""
FINDINGS = ("bacterial", "viral", "fungal", "covid19")


def phantom_class_counts(cfg: PhantomConfig, classes: list[str] | None = None) -> dict[str, int]:
    """Images per class: the paper's counts times `cfg.scale`, at least MIN_PER_CLASS."""
    names = classes or list(CLASS_NAMES_PAPER)
    return {name: max(MIN_PER_CLASS, round(PAPER_COUNTS[name] * cfg.scale)) for name in names}


def phantom_records(cfg: PhantomConfig, classes: list[str] | None = None) -> RecordSet:
    """Records of the phantom dataset (patients and their images per class), in the paper's class order."""
    unknown = [c for c in classes or [] if c not in PAPER_COUNTS]
    if unknown:
        raise DataError(f"phantom: unknown class(es) {unknown} in dataset.classes;"
                        f" the phantom has {list(CLASS_NAMES_PAPER)}")
    low, high = cfg.images_per_patient
    if not 1 <= low <= high:
        raise DataError(f"phantom.images_per_patient {list(cfg.images_per_patient)}: need 1 <= min <= max")
    items = []
    for name, count in phantom_class_counts(cfg, classes).items():
        rng = np.random.default_rng([cfg.seed, _class_index(name), 7])
        patient, made = 0, 0
        while made < count:
            n = min(int(rng.integers(low, high + 1)), count - made)
            for image in range(n):
                items.append((f"{name}-{patient:04d}", name, f"phantom:{name}/{patient:04d}/{image}"))
            made += n
            patient += 1
    ordered = order_classes({label for _, label, _ in items}, classes or list(CLASS_NAMES_PAPER), "phantom")
    return RecordSet(number_records(items), ordered, [])


def render_source(cfg: PhantomConfig, source: str) -> np.ndarray:
    """Render the image a phantom record's source names (`phantom:<class>/<patient>/<image>`)."""
    try:
        name, patient, image = source.removeprefix("phantom:").split("/")
        return render_phantom(cfg, name, int(patient), int(image))
    except ValueError as exc:
        raise DataError(f"{source}: not a phantom image address (phantom:<class>/<patient>/<image>)") from exc


def render_phantom(cfg: PhantomConfig, class_name: str, patient: int, image: int) -> np.ndarray:
    """One phantom radiograph, uint8 [native_size, native_size], the same for the same arguments."""
    if class_name not in PAPER_COUNTS:
        raise ValueError(f"unknown phantom class {class_name!r}")
    n = cfg.native_size
    anatomy = _patient_anatomy(np.random.default_rng([cfg.seed, _class_index(class_name), patient, 0]))
    findings = _patient_findings(np.random.default_rng([cfg.seed, _class_index(class_name), patient, 1]),
                                 class_name, cfg.difficulty)
    rng = np.random.default_rng([cfg.seed, _class_index(class_name), patient, 2, image])
    x, y = _pose_grid(n, anatomy, rng)
    lungs, density, parts = _anatomy_density(x, y, anatomy, rng, n)
    density = density + _findings_density(x, y, lungs, parts, findings, rng, n)
    return _film(density, anatomy, rng, n, cfg.difficulty)


def preview_grid(cfg: PhantomConfig, per_class: int = 4, classes: list[str] | None = None) -> np.ndarray:
    """A uint8 grid with one row per class and `per_class` images of different patients in it."""
    names = classes or list(CLASS_NAMES_PAPER)
    rows = [np.concatenate([render_phantom(cfg, name, p, 0) for p in range(per_class)], axis=1) for name in names]
    return np.concatenate(rows, axis=0)


def write_preview(cfg: PhantomConfig, path, per_class: int = 4, classes: list[str] | None = None) -> None:
    """Save `preview_grid` as a PNG (rows: classes in order; columns: patients)."""
    Image.fromarray(preview_grid(cfg, per_class, classes)).save(path)


def _class_index(name: str) -> int:
    """Position of a class in the paper's order: part of every per-patient seed."""
    return CLASS_NAMES_PAPER.index(name)


# ----------------------------------------------------------------------------------------------- patient
def _patient_anatomy(rng: np.random.Generator) -> dict:
    """Per-patient anatomy and exposure: sizes, positions, rotation, contrast."""
    u = rng.uniform
    return {
        "scale": u(0.92, 1.06), "rot": u(-0.06, 0.06), "dx": u(-0.04, 0.04), "dy": u(-0.03, 0.05),
        "body_w": u(0.84, 0.95), "lung_w": u(0.5, 0.6), "lung_top": u(-0.8, -0.7),
        "medial": u(0.08, 0.12), "dome": u(0.34, 0.46), "dome_depth": u(0.06, 0.14), "right_up": u(0.0, 0.07),
        "heart_x": u(0.08, 0.15), "heart_y": u(0.18, 0.26), "heart_rx": u(0.3, 0.38), "heart_ry": u(0.2, 0.26),
        "rib_gap": u(0.12, 0.15), "rib_first": u(-0.86, -0.78), "rib_w": u(0.13, 0.18),
        "rib_amp": u(0.12, 0.2), "lung_depth": u(0.62, 0.78), "mu": u(1.05, 1.35),
        "gamma": u(0.85, 1.2), "contrast": u(0.9, 1.15), "bright": u(-0.05, 0.05),
    }


def _patient_findings(rng: np.random.Generator, class_name: str, difficulty: float) -> list[dict]:
    """The findings of a patient: their class's (strength varies, some faint) and maybe a mild other one."""
    findings = []
    if class_name != "healthy":
        findings.append(_finding(rng, class_name, rng.uniform(0.5, 1.0)))
    if rng.uniform() < min(0.8, 0.3 * difficulty):
        others = [f for f in FINDINGS if f != class_name]
        findings.append(_finding(rng, others[int(rng.integers(len(others)))], rng.uniform(0.2, 0.45)))
    return findings


def _finding(rng: np.random.Generator, kind: str, strength: float) -> dict:
    """Parameters of one finding; positions are in lung-relative coordinates, resolved per image."""
    side = float(rng.choice([-1.0, 1.0]))
    if kind == "bacterial":
        zone = int(rng.integers(3))
        return {"kind": kind, "strength": strength, "side": side, "zone": zone, "lat": rng.uniform(0.25, 0.75),
                "rx": rng.uniform(0.16, 0.3), "ry": rng.uniform(0.13, 0.24), "amp": rng.uniform(0.35, 0.55)}
    if kind == "viral":
        return {"kind": kind, "strength": strength, "amp": rng.uniform(0.3, 0.5), "scale": rng.uniform(2.0, 3.2),
                "spread": rng.uniform(0.25, 0.45), "asym": rng.uniform(0.6, 1.0), "side": side}
    if kind == "fungal":
        count = int(rng.integers(3, 8))
        return {"kind": kind, "strength": strength, "sides": rng.choice([-1.0, 1.0], count),
                "lat": rng.uniform(0.15, 0.85, count), "ver": rng.uniform(0.1, 0.85, count),
                "r": rng.uniform(0.04, 0.08, count), "amp": rng.uniform(0.3, 0.55, count)}
    return {"kind": kind, "strength": strength, "amp": rng.uniform(0.3, 0.5), "scale": rng.uniform(3.0, 6.0),
            "asym": rng.uniform(0.5, 1.0), "side": side, "cut": rng.uniform(-0.2, 0.3)}


# ----------------------------------------------------------------------------------------------- image
def _pose_grid(n: int, a: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Anatomy coordinates of each pixel: image coords in [-1, 1] rotated, scaled and shifted by the pose."""
    t = ((np.arange(n) + 0.5) / n * 2 - 1).astype(np.float32)
    yy, xx = np.meshgrid(t, t, indexing="ij")
    rot = a["rot"] + rng.uniform(-0.025, 0.025)
    scale = a["scale"] * rng.uniform(0.97, 1.03)
    dx, dy = a["dx"] + rng.uniform(-0.025, 0.025), a["dy"] + rng.uniform(-0.025, 0.025)
    c, s = np.cos(rot), np.sin(rot)
    x = ((c * xx + s * yy) / scale - dx).astype(np.float32)
    y = ((-s * xx + c * yy) / scale - dy).astype(np.float32)
    return x, y


def _soft(v: np.ndarray, edge: float) -> np.ndarray:
    """A smooth step: 0 for v < -edge, 1 for v > edge, a cubic in between (cheaper than tanh)."""
    t = np.clip(v * (0.5 / edge) + 0.5, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


@functools.lru_cache(maxsize=32)
def _gaussian_transfer(n: int, sigma_px: float) -> np.ndarray:
    """The Fourier transfer function of a Gaussian blur of `sigma_px` on an n x n periodic grid."""
    fy = np.fft.fftfreq(n)[:, None]
    fx = np.fft.rfftfreq(n)[None, :]
    return np.exp(-2 * (np.pi * sigma_px) ** 2 * (fx**2 + fy**2)).astype(np.complex64)


def _smooth_noise(rng: np.random.Generator, n: int, sigma_px: float) -> np.ndarray:
    """Gaussian-filtered white noise with unit standard deviation, float32 [n, n].

    Narrow blurs use a short convolution kernel. Wide blurs are drawn on a coarser grid (about 3 cells per
    sigma) and upsampled bilinearly: the same look at a fraction of the cost. The blur is a multiplication in
    the Fourier domain (periodic edges, fine for noise).
    """
    if sigma_px < 3:  # a short kernel is cheaper than two FFTs
        field = gaussian_filter(rng.standard_normal((n, n), dtype=np.float32), sigma_px, mode="wrap", truncate=3.0)
        return field / (field.std() + 1e-8)
    m = int(min(n, max(8, np.ceil(3.0 * n / sigma_px))))
    white = rng.standard_normal((m, m), dtype=np.float32)
    field = np.fft.irfft2(np.fft.rfft2(white) * _gaussian_transfer(m, round(sigma_px * m / n, 3)), s=(m, m))
    field = field.astype(np.float32)
    if m < n:
        field = np.asarray(Image.fromarray(field).resize((n, n), Image.Resampling.BILINEAR))
    return field / (field.std() + 1e-8)


def _anatomy_density(x, y, a: dict, rng: np.random.Generator, n: int):
    """Density of the normal chest; returns the lung mask, the density and geometry the findings need."""
    ax = np.abs(x)
    px = 2.0 / n  # one pixel in anatomy units: edges are never sharper than this
    body = _soft(1 - (np.abs(x / a["body_w"]) ** 4 + np.abs((y - 0.3) / 1.25) ** 4), 0.1) * _soft(y + 0.97, 0.05)
    neck = _soft(0.22 - ax, 0.04) * _soft(-0.7 - y, 0.1)
    body = np.maximum(body, neck)
    density = 0.95 * body

    # Lungs: the upper half of an ellipse centred at the diaphragm (narrow apex, wide base), lateral of the
    # mediastinum, cut below by a dome (the right hemidiaphragm, on the image's left, a little higher).
    dome_mid = a["dome"] - 0.5 * a["right_up"]
    lung_h = dome_mid + 0.12 - a["lung_top"]
    e = ((ax - a["medial"]) / a["lung_w"]) ** 2 + ((y - dome_mid - 0.12) / lung_h) ** 2
    lat = (ax - a["medial"]) / a["lung_w"]
    dome = (a["dome"] - np.where(x < 0, a["right_up"], 0.0)
            + a["dome_depth"] * (((lat - 0.45) / 0.6) ** 2 - 1)).astype(np.float32)
    lungs = _soft(1 - e, 0.08 + px) * _soft(ax - a["medial"], 0.03 + px) * _soft(dome - y, 0.02 + px)
    below = _soft(y - dome, 0.04) * body
    density = density - a["lung_depth"] * lungs + 0.12 * below

    # Heart (mostly over the left lung, i.e. the right of the image), aortic knob, spine.
    hx, hy = x - a["heart_x"], y - a["heart_y"]
    c, s = np.cos(0.4), np.sin(0.4)
    heart = _soft(1 - ((c * hx + s * hy) / a["heart_rx"]) ** 2 - ((-s * hx + c * hy) / a["heart_ry"]) ** 2, 0.25)
    knob = _soft(1 - ((x - 0.1) ** 2 + (y + 0.3) ** 2) / 0.065**2, 0.5)
    spine = _soft(0.06 - ax, 0.015 + px) * (0.8 + 0.2 * np.cos(2 * np.pi * y / 0.11)) * body
    density = density + 0.8 * a["lung_depth"] * heart * lungs + 0.3 * knob * lungs + 0.12 * spine

    # Ribs: posterior ones arc laterally downward from the spine, anterior ones (fainter) run down medially;
    # over soft tissue they show less than over the air of the lungs.
    rlat = np.clip((ax - 0.05) / 0.8, 0, 1)
    arc = -0.1 * np.sin(np.pi * rlat) + 0.3 * rlat**2
    phase = (y - arc - a["rib_first"]) / a["rib_gap"]
    frac = phase - np.floor(phase)
    thorax = (phase >= 0) & (phase < 10) & (y < dome + 0.05)
    rib = np.exp(-(((frac - 0.5) / a["rib_w"]) ** 2)) * thorax * _soft(ax - 0.07, 0.03)
    phase2 = (y + 0.45 * rlat - 0.25 - a["rib_first"]) / (a["rib_gap"] * 1.1)
    frac2 = phase2 - np.floor(phase2)
    rib2 = np.exp(-(((frac2 - 0.5) / 0.22) ** 2)) * ((phase2 >= 0) & (phase2 < 6)) * _soft(ax - 0.25, 0.08)
    clav_y = -0.72 - 0.1 * rlat + 0.05 * np.sin(np.pi * rlat * 1.5)
    clavicle = np.exp(-(((y - clav_y) / 0.028) ** 2)) * _soft(0.6 - ax, 0.05) * _soft(ax - 0.07, 0.03)
    density = density + (a["rib_amp"] * (rib + 0.4 * rib2) * (0.3 + 0.7 * lungs) + 0.3 * clavicle) * body

    # Lung markings: vessels fanning out of the hila, as smooth noise fading towards the periphery.
    hilum = np.exp(-((ax - a["medial"] - 0.1) ** 2 / 0.06 + y**2 / 0.12))
    vessels = np.maximum(_smooth_noise(rng, n, n / 90), 0)
    density = density + (0.05 * vessels * (0.3 + hilum) + 0.12 * hilum) * lungs
    parts = {"dome": dome, "lung_top": a["lung_top"], "medial": a["medial"], "lung_w": a["lung_w"]}
    return lungs, density, parts


def _findings_density(x, y, lungs, parts: dict, findings: list[dict], rng: np.random.Generator, n: int):
    """Added density of a patient's findings in this image (strength jitters a little per image)."""
    total = np.zeros_like(x)
    for f in findings:
        gain = f["strength"] * rng.uniform(0.85, 1.15)
        total += gain * _FINDING_DRAWERS[f["kind"]](x, y, lungs, parts, f, rng, n)
    return total


def _zone_y(parts: dict, ver):
    """A vertical position in a lung: 0 = apex, 1 = base (at the dome's mid level)."""
    top, bottom = parts["lung_top"], float(np.median(parts["dome"]))
    return top + 0.12 + (bottom - top - 0.2) * np.asarray(ver)


def _draw_consolidation(x, y, lungs, parts, f, rng, n):
    cx = f["side"] * (parts["medial"] + parts["lung_w"] * f["lat"])
    cy = _zone_y(parts, (0.15, 0.5, 0.85)[f["zone"]])
    e = ((x - cx) / f["rx"]) ** 2 + ((y - cy) / f["ry"]) ** 2
    blob = _soft(1 - e + 0.4 * _smooth_noise(rng, n, n / 25), 0.4)
    # A lobe ends at a fissure: the upper zone's patch stops sharp below, the lower zone's above.
    fissure = _zone_y(parts, 0.42)
    if f["zone"] == 0:
        blob = blob * _soft(fissure - y, 0.01)
    elif f["zone"] == 2:
        blob = blob * _soft(y - fissure, 0.01)
    mottle = 0.75 + 0.25 * _smooth_noise(rng, n, n / 60)
    return f["amp"] * blob * mottle * lungs


def _draw_interstitial(x, y, lungs, parts, f, rng, n):
    band = _smooth_noise(rng, n, f["scale"] * n / 128)
    net = np.exp(-((band / 0.35) ** 2))  # zero crossings of band-limited noise form a reticular net
    ax = np.abs(x)
    side_gain = np.where(np.sign(x) == f["side"], 1.0, f["asym"])
    perihilar = np.exp(-((ax - parts["medial"] - 0.12) ** 2 + 0.5 * (y - 0.05) ** 2) / f["spread"] ** 2)
    return f["amp"] * (0.6 * net + 0.4) * perihilar * side_gain * lungs


def _draw_nodules(x, y, lungs, parts, f, rng, n):
    out = np.zeros_like(x)
    cys = _zone_y(parts, f["ver"])
    for side, lat, cy, r, amp in zip(f["sides"], f["lat"], cys, f["r"], f["amp"]):
        # The lung is narrower near the apex and the base: keep nodules inside its outline.
        width = np.sqrt(max(0.0, 1 - (2 * (cy - _zone_y(parts, 0.5))) ** 2))
        cx = side * (parts["medial"] + parts["lung_w"] * lat * width)
        d2 = ((x - cx) ** 2 + (y - cy) ** 2) / r**2
        out += amp * _soft(1 - d2, 0.35)
    return out * lungs


def _draw_ground_glass(x, y, lungs, parts, f, rng, n):
    patches = _soft(_smooth_noise(rng, n, f["scale"] * n / 128) + 0.2, 0.6)
    ax = np.abs(x)
    peripheral = _soft((ax - parts["medial"]) / parts["lung_w"] - 0.45, 0.12)
    lower = _soft(y - f["cut"], 0.12)
    side_gain = np.where(np.sign(x) == f["side"], 1.0, f["asym"])
    return f["amp"] * patches * peripheral * lower * side_gain * lungs


_FINDING_DRAWERS = {"bacterial": _draw_consolidation, "viral": _draw_interstitial, "fungal": _draw_nodules,
                    "covid19": _draw_ground_glass}


def _film(density, a: dict, rng: np.random.Generator, n: int, difficulty: float) -> np.ndarray:
    """Expose the film: attenuation to brightness, exposure and contrast, blur, quantum and scatter noise."""
    bright = 1 - np.exp(-a["mu"] * np.clip(density, 0, None))
    bright = (bright - 0.5) * a["contrast"] * rng.uniform(0.93, 1.07) + 0.5 + a["bright"] + rng.uniform(-0.03, 0.03)
    bright = np.clip(bright, 0, 1) ** (a["gamma"] * rng.uniform(0.95, 1.05))
    bright = gaussian_filter(bright, 0.6 * n / 128, truncate=3.0)
    noise = (0.025 * difficulty) * rng.standard_normal((n, n)) * np.sqrt(bright + 0.05)
    scatter = (0.02 * difficulty) * _smooth_noise(rng, n, n / 10)
    return np.clip(np.rint((bright + noise + scatter) * 255), 0, 255).astype(np.uint8)
