"""The subject's own real photos as the yardstick for every artifact metric.

Each metric is measured on the accepted photos of the dataset (`headshot prepare`'s
images/*.png crops); an audited image is then scored as a z-score against that
distribution: z = (value - mean) / max(std, floor), where the floor (MetricSpec.
min_spread) stands for the natural variation between real photos of one person, so
a dataset of near-identical photos does not turn every small difference into a flag.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from headshot.analysis.likeness import SubjectIdentity
from headshot.analysis.metrics import METRICS, METRICS_BY_NAME, measure_features, normalise_face
from headshot.analysis.metrics.identity import linear_to_lab
from headshot.analysis.metrics.symmetry import ear_asymmetry, typical_ear_spot
from headshot.errors import HeadshotError

# Below this eye distance (source px) the canonical crop is upsampled 2x or more and fine
# texture is gone: such a face is measured, with a warning, and a dataset crop this small
# is replaced by its source photo when that is available.
MIN_EYE_DISTANCE = 32.0


@dataclass
class Measurement:
    """Raw features of one image's face plus its identity embedding."""

    features: dict[str, float]
    embedding: np.ndarray | None
    faces_found: int = 1
    eye_distance: float = 0.0  # in the image's own pixels: how much detail the face had


def measure_image(image, detect_max_side: int = 640) -> Measurement | None:
    """Normalise the largest face and measure it; None when no face is found."""
    face = normalise_face(image, detect_max_side)
    if face is None:
        return None
    return Measurement(
        measure_features(face), face.face.embedding, face.faces_found, face.source_eye_distance
    )


@dataclass
class ReferenceProfile:
    """Metric distributions over the subject's real photos."""

    names: list[str]  # the photos, for the report
    identity: SubjectIdentity
    identity_min_spread: float
    tone_chromaticity: np.ndarray  # mean cheek linear-RGB chromaticity (r, g, b sum to 1)
    tone_ita: float
    gaze: tuple[float, float]  # mean (h, v) iris position
    ear_spot: float  # mean earlobe colour spot over both ears
    values: dict[str, list[float]] = field(default_factory=dict)  # metric -> value per photo
    spread_floor: dict[str, float] = field(default_factory=dict)
    # Metrics the reference cannot measure (every photo's face too small for them) -> why.
    unmeasured: dict[str, str] = field(default_factory=dict)
    small_photos: list[str] = field(default_factory=list)  # faces under MIN_EYE_DISTANCE px

    @classmethod
    def from_measurements(
        cls,
        names: list[str],
        measurements: list[Measurement],
        identity_min_spread: float = 0.2,
        spread_floor: dict[str, float] | None = None,
    ) -> ReferenceProfile:
        embeddings = [m.embedding for m in measurements if m.embedding is not None]
        if not embeddings:
            raise HeadshotError("no face found in any of the subject's reference photos")
        feats = [m.features for m in measurements]
        tone = np.array([[f["tone_r"], f["tone_g"], f["tone_lin_b"]] for f in feats], dtype=np.float64)
        chroma = tone / tone.sum(axis=1, keepdims=True)
        profile = cls(
            names=names,
            identity=SubjectIdentity.from_embeddings(embeddings),
            identity_min_spread=identity_min_spread,
            tone_chromaticity=np.nanmean(chroma, axis=0),
            tone_ita=float(np.nanmean([f["tone_ita"] for f in feats])),
            gaze=(
                float(np.nanmean([f["gaze_h"] for f in feats])),
                float(np.nanmean([f["gaze_v"] for f in feats])),
            ),
            ear_spot=typical_ear_spot([f[k] for f in feats for k in ("ear_spot_left", "ear_spot_right")]),
            spread_floor={spec.name: spec.min_spread for spec in METRICS} | dict(spread_floor or {}),
        )
        scored = [profile.metric_values(m) for m in measurements]
        profile.values = {spec.name: [row[spec.name] for row in scored] for spec in METRICS}
        profile._set_aside_small_faces(measurements)
        return profile

    def _set_aside_small_faces(self, measurements: list[Measurement]) -> None:
        """A face under MIN_EYE_DISTANCE px between the eyes (a 64 px tiny-model crop) has no
        texture to measure: its values do not count for the metrics that need detail, and when
        every photo is that small those metrics are not measured at all (never flagged)."""
        small = [m.eye_distance < MIN_EYE_DISTANCE for m in measurements]
        self.small_photos = [name for name, is_small in zip(self.names, small) if is_small]
        if not self.small_photos:
            return
        largest = max(m.eye_distance for m in measurements)
        for spec in METRICS:
            if not spec.needs_detail:
                continue
            self.values[spec.name] = [
                float("nan") if is_small else value for value, is_small in zip(self.values[spec.name], small)
            ]
            if all(small):
                self.unmeasured[spec.name] = (
                    f"every reference photo's face is under {MIN_EYE_DISTANCE:.0f} px between the eyes "
                    f"(largest {largest:.0f} px), too small to measure it"
                )

    def reference_note(self) -> str:
        """One line on the photos set aside or the metrics not measured; empty when none."""
        if not self.small_photos:
            return ""
        count = f"{len(self.small_photos)} of the {len(self.names)} reference photos"
        if not self.unmeasured:
            return (
                f"{count} have a face under {MIN_EYE_DISTANCE:.0f} px between the eyes: "
                "left out of the metrics that need detail"
            )
        return (
            f"{count} have a face under {MIN_EYE_DISTANCE:.0f} px between the eyes (dataset crops "
            f"too small): not measured: {', '.join(self.unmeasured)}; give the subject's source "
            "photos (--photos) to measure them"
        )

    def metric_values(self, measurement: Measurement) -> dict[str, float]:
        """The scored metrics of one measurement (some are distances to this profile)."""
        from skimage.color import deltaE_ciede2000

        f = measurement.features
        values = dict(f) | {spec.name: f.get(spec.name, float("nan")) for spec in METRICS}
        values["gaze_offset"] = abs(f["gaze_h"] - self.gaze[0])
        values["gaze_v_offset"] = abs(f["gaze_v"] - self.gaze[1])
        linear = np.array([f["tone_r"], f["tone_g"], f["tone_lin_b"]], dtype=np.float64)
        if np.all(np.isfinite(linear)):
            # the subject's own colour at this image's exposure: only the cast remains
            expected = self.tone_chromaticity * linear.sum()
            values["skin_tone_delta_e"] = float(
                deltaE_ciede2000(linear_to_lab(linear), linear_to_lab(expected))
            )
        else:
            values["skin_tone_delta_e"] = float("nan")
        values["ear_asymmetry"] = ear_asymmetry(f["ear_spot_left"], f["ear_spot_right"], self.ear_spot)
        values["ita_shift"] = float(f["tone_ita"] - self.tone_ita)
        if measurement.embedding is not None:
            likeness = self.identity.score(measurement.embedding)
            values["identity_distance"] = likeness.distance
            values["identity_relative"] = likeness.distance / max(
                self.identity.spread_max, self.identity_min_spread
            )
        else:
            values["identity_distance"] = values["identity_relative"] = float("nan")
        return values

    def stats(self, name: str) -> tuple[float, float]:
        """(mean, spread) of a metric over the real photos; spread has its floor applied."""
        data = np.array([v for v in self.values.get(name, []) if np.isfinite(v)])
        floor = self.spread_floor.get(name, 0.0)
        if data.size == 0:
            prior = METRICS_BY_NAME[name].prior_mean if name in METRICS_BY_NAME else None
            return (float("nan") if prior is None else prior), floor
        return float(data.mean()), max(float(data.std()), floor)

    def z_score(self, name: str, value: float) -> float:
        if name in self.unmeasured:
            return float("nan")
        mean, spread = self.stats(name)
        if not np.isfinite(value) or not np.isfinite(mean) or spread <= 0:
            return float("nan")
        return (value - mean) / spread


def load_reference(
    dataset: Path,
    identity_min_spread: float = 0.2,
    detect_max_side: int = 640,
    spread_floor: dict[str, float] | None = None,
    photos: Path | None = None,
) -> ReferenceProfile:
    """Measure the accepted photos of a `headshot prepare` dataset folder.

    Each accepted photo is measured on its crop (dataset/images/*.png). A crop without a
    detectable face, or with under MIN_EYE_DISTANCE px between the eyes (a 64 px
    tiny-model dataset), is replaced by its source photo from `photos` when given."""
    from headshot.analysis.image_io import read_photo
    from headshot.dataset_record import read_dataset

    record = read_dataset(dataset)
    names, measurements = [], []
    for photo in record.accepted:
        name = photo.source
        measured = measure_image(read_photo(Path(dataset) / str(photo.image)), detect_max_side)
        source = Path(photos) / photo.source if photos is not None else None
        too_small = measured is None or measured.eye_distance < MIN_EYE_DISTANCE
        if too_small and source is not None and source.is_file():
            from_source = measure_image(read_photo(source), detect_max_side)
            if from_source is not None:
                measured, name = from_source, f"{photo.source} (source photo)"
        if measured is not None:
            names.append(name)
            measurements.append(measured)
    if not measurements:
        hint = (
            ""
            if photos is not None
            else " (crops of a tiny model are too small: give the source photos, --photos)"
        )
        raise HeadshotError(
            f"{dataset}: no face found in any accepted photo's crop{hint}; cannot audit against it"
        )
    return ReferenceProfile.from_measurements(names, measurements, identity_min_spread, spread_floor)
