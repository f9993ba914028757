"""Sweeps: render the same prompt and seed(s) over a grid of knobs, measure every image.

Knobs: guidance scale, steps, LoRA scale and LoRA training checkpoint (the last two only
with a LoRA). `grid` renders every combination; `axes` varies one knob at a time with the
others at the study's own values (cheaper; what the per-knob plots show most directly).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

from headshot.study.config import StudyConfig
from headshot.study.measures import MetricSet, measure
from headshot.study.model import FINAL, StudyModel


@dataclass(frozen=True)
class GridPoint:
    guidance_scale: float
    steps: int
    lora_scale: float | None = None  # None: no LoRA
    checkpoint: str | None = None  # LoRA label: "final" or a checkpoint folder name
    checkpoint_step: int | None = None


def sweep_steps(config: StudyConfig) -> list[int]:
    """`sweep.steps` as configured, else a third, two thirds and all of the study's steps."""
    if config.sweep.steps is not None:
        return list(dict.fromkeys(config.sweep.steps))
    return sorted({max(1, round(config.steps * part)) for part in (1 / 3, 2 / 3, 1)})


def sweep_knobs(model: StudyModel, config: StudyConfig) -> dict[str, list]:
    """The values of each knob the sweep varies (LoRA knobs only with a LoRA)."""
    knobs: dict[str, list] = {
        "guidance_scale": list(dict.fromkeys(config.sweep.guidance_scales)),
        "steps": sweep_steps(config),
    }
    if model.has_lora:
        knobs["lora_scale"] = list(dict.fromkeys(config.sweep.lora_scales))
        if config.sweep.checkpoints and len(model.loras) > 1:
            knobs["checkpoint"] = [lora.label for lora in model.checkpoints]
    return knobs


def grid_points(model: StudyModel, config: StudyConfig) -> list[GridPoint]:
    knobs = sweep_knobs(model, config)
    base = {
        "guidance_scale": config.guidance_scale,
        "steps": config.steps,
        "lora_scale": config.lora_scale,
        "checkpoint": FINAL,
    }
    names = list(knobs)
    if config.sweep.mode == "grid":
        combos = [dict(zip(names, values)) for values in itertools.product(*knobs.values())]
    else:
        combos = []
        for name in names:
            for value in knobs[name]:
                combos.append({**{n: base[n] for n in names}, name: value})
    points = []
    for combo in combos:
        lora = model.loras.get(combo.get("checkpoint", FINAL)) if model.has_lora else None
        if lora is not None and float(combo.get("lora_scale", base["lora_scale"])) == 0:
            lora = model.loras[FINAL]  # at scale 0 every checkpoint renders the base model: once
        points.append(
            GridPoint(
                guidance_scale=float(combo["guidance_scale"]),
                steps=int(combo["steps"]),
                lora_scale=float(combo.get("lora_scale", base["lora_scale"])) if lora else None,
                checkpoint=lora.label if lora else None,
                checkpoint_step=lora.step if lora else None,
            )
        )
    return list(dict.fromkeys(points))  # axes mode meets the base point once per knob


Renderer = Callable[..., Image.Image]


def run_sweep(
    model: StudyModel,
    config: StudyConfig,
    metrics: MetricSet,
    render: Renderer,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[dict], list[Image.Image]]:
    """One entry per grid point: its knobs, per-seed metrics and their mean over the seeds."""
    seeds = config.sweep.seeds or [config.seed]
    points = grid_points(model, config)
    entries, images = [], []
    for number, point in enumerate(points):
        if point.checkpoint is not None:
            model.use_lora(point.checkpoint, point.lora_scale)
        per_seed = []
        for seed in seeds:
            image = render(seed=seed, steps=point.steps, guidance_scale=point.guidance_scale)
            per_seed.append({"seed": seed, "metrics": measure(image, metrics)})
            if seed == seeds[0]:
                images.append(image)
        entries.append({**asdict(point), "per_seed": per_seed, "metrics": _mean_metrics(per_seed)})
        if progress:
            progress(number + 1, len(points))
    if model.has_lora:
        model.use_lora(FINAL, config.lora_scale)
    return entries, images


def _mean_metrics(per_seed: list[dict]) -> dict[str, float | None]:
    names = per_seed[0]["metrics"]
    means = {}
    for name in names:
        values = [s["metrics"][name] for s in per_seed if s["metrics"][name] is not None]
        means[name] = float(np.mean(values)) if values else None
    return means


def _knob_value(entry: dict, knob: str):
    return entry["checkpoint_step"] if knob == "checkpoint" else entry[knob]


def plot_knob(entries: list[dict], knob: str, metric_names: list[str], base: dict):
    """One row per metric: every grid point (dots) and the mean at each knob value (line).

    In `axes` mode only the points on this knob's axis (others at the study's values) count.
    """
    from matplotlib.figure import Figure

    from headshot.analysis.html import wrapped_title

    others = [k for k in ("guidance_scale", "steps", "lora_scale", "checkpoint") if k != knob]
    if base.get("mode") == "axes":
        entries = [e for e in entries if all(e.get(k) is None or e.get(k) == base.get(k) for k in others)]
    measured = [n for n in metric_names if any(e["metrics"][n] is not None for e in entries)]
    missing = [n for n in metric_names if n not in measured]
    figure = Figure(figsize=(4.5, 2.2 * max(len(measured), 1) + 0.4), layout="constrained")
    axes = figure.subplots(max(len(measured), 1), 1, squeeze=False)[:, 0]
    for axis, name in zip(axes, measured):
        points = [
            (_knob_value(e, knob), e["metrics"][name]) for e in entries if e["metrics"][name] is not None
        ]
        if points:
            xs, ys = zip(*points)
            axis.scatter(xs, ys, s=12, alpha=0.5)
            values = sorted(set(xs))
            axis.plot(values, [np.mean([y for x, y in points if x == v]) for v in values], marker="o")
        axis.set_ylabel(name.replace("_", " "), fontsize=8)
    axes[-1].set_xlabel("training step (checkpoint)" if knob == "checkpoint" else knob.replace("_", " "))
    title = f"metrics against {knob.replace('_', ' ')}"
    if missing:
        title += "\nno value in any image (no face found): " + ", ".join(missing)
    wrapped_title(figure, title)
    return figure
