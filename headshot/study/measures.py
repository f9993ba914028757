"""What the study measures on each image, and on a trajectory as a whole.

Image metrics are a mapping `name -> function(PIL image) -> float | None` (None: not
measurable on this image, e.g. no face). The artifact metrics of `headshot audit` join
them (study/artifacts.py; others with `register_metric`); the two below are generic image
statistics that say how far a predicted x0 is from a finished photograph, and duplicate
none of the audit's metrics:

- high_frequency_energy: the share of the luminance spectrum's energy above half the
  Nyquist frequency (0..1, unitless). Early x0 predictions are blurred averages, so it
  rises as detail forms; a late drop means detail is being smoothed away (plastic look).
  Fails on: JPEG blocking and sensor noise, which read as detail.
- rms_contrast: the standard deviation of luminance in [0, 1]. Early x0 predictions are
  washed-out grey; it says when the tonal range is committed. Fails on: flat scenes.

Trajectory measures compare each step's x0 with the final image:
change_to_final (mean absolute RGB difference, 0..1) and identity_to_final (dlib embedding
distance between the step's face and the final image's face). Likeness to the subject is
the audit's identity_relative (study/artifacts.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
from PIL import Image

from headshot.errors import HeadshotError

ImageMetric = Callable[[Image.Image], "float | None"]
MetricSet = Mapping[str, ImageMetric]


def _luminance(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L"), dtype=np.float64) / 255.0


def high_frequency_energy(image: Image.Image) -> float:
    gray = _luminance(image)
    # A Hann window: without it the jump between opposite borders (the FFT wraps around)
    # adds broadband energy that no amount of blur removes.
    window = np.outer(np.hanning(gray.shape[0]), np.hanning(gray.shape[1]))
    spectrum = np.abs(np.fft.fft2((gray - gray.mean()) * window)) ** 2
    fy = np.fft.fftfreq(gray.shape[0])[:, None]
    fx = np.fft.fftfreq(gray.shape[1])[None, :]
    radius = np.sqrt(fx**2 + fy**2)  # cycles per pixel; Nyquist is 0.5
    total = spectrum.sum()
    return 0.0 if total <= 0 else float(spectrum[radius > 0.25].sum() / total)


def rms_contrast(image: Image.Image) -> float:
    return float(_luminance(image).std())


_METRICS: dict[str, ImageMetric] = {
    "high_frequency_energy": high_frequency_energy,
    "rms_contrast": rms_contrast,
}


def register_metric(name: str, metric: ImageMetric) -> None:
    """Add an image metric (e.g. one of the audit's artifact metrics) to what studies measure."""
    _METRICS[name] = metric


def metrics_from_features(
    features: Callable[[Image.Image], Mapping[str, float] | None], names: list[str]
) -> dict[str, ImageMetric]:
    """Per-name metrics from one function that measures many at once (such as the audit's
    features of a face-normalised crop): it runs once per image, however many names are used.
    A name missing from its result, or no result (no face), reads as None."""
    last: dict = {"image": None, "values": {}}

    def values_of(image: Image.Image) -> Mapping[str, float]:
        if last["image"] is not image:
            last["image"], last["values"] = image, features(image) or {}
        return last["values"]

    def metric_named(name: str) -> ImageMetric:
        def metric(image: Image.Image) -> float | None:
            value = values_of(image).get(name)
            return None if value is None or not np.isfinite(value) else float(value)

        return metric

    return {name: metric_named(name) for name in names}


def available_metrics() -> dict[str, ImageMetric]:
    return dict(_METRICS)


def select_metrics(
    names: list[str], source: str = "config", extra: MetricSet | None = None
) -> dict[str, ImageMetric]:
    """The named metrics (all when `names` is empty) among the registered ones and `extra`;
    an unknown name is a clear error."""
    available = available_metrics() | dict(extra or {})
    unknown = [name for name in names if name not in available]
    if unknown:
        raise HeadshotError(
            f"{source}: field 'metrics': unknown metric {', '.join(map(repr, unknown))}; "
            f"available: {', '.join(sorted(available))}"
        )
    return {name: available[name] for name in names} if names else available


def measure(image: Image.Image, metrics: MetricSet) -> dict[str, float | None]:
    values = {}
    for name, metric in metrics.items():
        value = metric(image)
        values[name] = None if value is None or not np.isfinite(value) else float(value)
    return values


def change_to_final(frames: list[Image.Image]) -> list[float]:
    final = np.asarray(frames[-1].convert("RGB"), dtype=np.float64) / 255.0
    return [
        float(np.abs(np.asarray(f.convert("RGB"), dtype=np.float64) / 255.0 - final).mean()) for f in frames
    ]


def face_embeddings(frames: list[Image.Image]) -> list[np.ndarray | None]:
    """The largest face's identity embedding in each frame (None where dlib finds no face)."""
    from headshot.analysis.faces import detect_faces

    embeddings = []
    for frame in frames:
        # Upsampling finds small faces but costs 4x; full-size renders do not need it.
        faces = detect_faces(frame.convert("RGB"), upsample=1 if max(frame.size) < 512 else 0)
        embeddings.append(faces[0].embedding if faces else None)
    return embeddings


def identity_to_final(embeddings: list[np.ndarray | None]) -> list[float | None]:
    from headshot.analysis.faces import identity_distance

    final = embeddings[-1]
    if final is None:
        return [None] * len(embeddings)
    return [None if e is None else identity_distance(e, final) for e in embeddings]


def trajectory_curves(frames: list[Image.Image], metrics: MetricSet) -> dict[str, list]:
    """Every measure at every step: the image metrics, then the trajectory measures."""
    per_frame = [measure(frame, metrics) for frame in frames]
    curves: dict[str, list] = {name: [values[name] for values in per_frame] for name in metrics}
    curves["change_to_final"] = change_to_final(frames)
    embeddings = face_embeddings(frames)
    curves["identity_to_final"] = identity_to_final(embeddings)
    return curves
