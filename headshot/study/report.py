"""The study's folder: images, plots, study.json and a self-contained report.html."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from headshot.analysis.html import escape, html_page, png_data_uri
from headshot.records import (
    atomic_save_image,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    portable_record,
)


def figure_png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


class StudyOutput:
    """Writes each file as it is made (atomically) and keeps it for the HTML report."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.images: dict[str, Image.Image] = {}  # name (no suffix, relative) -> image
        self.plots: dict[str, str] = {}  # name -> relative file

    def image(self, name: str, image: Image.Image) -> None:
        atomic_save_image(self.folder / f"{name}.png", image)
        self.images[name] = image

    def figure(self, name: str, figure) -> None:
        png = figure_png(figure)
        atomic_write_bytes(self.folder / "plots" / f"{name}.png", png)
        self.images[f"plots/{name}"] = Image.open(io.BytesIO(png))
        self.plots[name] = f"plots/{name}.png"

    def finish(self, record: dict) -> None:
        record["plots"] = dict(self.plots)
        # No absolute paths: relative to the subject folder (<subject>/audit/study), else names.
        record = portable_record(record, self.folder.resolve().parent.parent)
        atomic_write_json(self.folder / "study.json", record)
        atomic_write_text(self.folder / "report.html", render_report(record, self.images))


def _img(images: dict[str, Image.Image], name: str, caption: str = "", width: int | None = None) -> str:
    if name not in images:
        return ""
    style = f" style='width:{width}px'" if width else ""
    return (
        f"<figure><img src='{png_data_uri(images[name])}' alt='{escape(name)}'{style}>"
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def _number(value) -> str:
    return "–" if value is None else f"{value:.4g}" if isinstance(value, float) else escape(value)


def render_report(record: dict, images: dict[str, Image.Image]) -> str:
    parts = [
        "<p>Generation study of a <b>{}</b> model{}. Prompt: <code>{}</code>; seed {}, {} steps, "
        "guidance {}{}. What each part shows and how to read it: docs/study.md.</p>".format(
            escape(record["family"]),
            f" with the LoRA in <code>{escape(record['lora']['folder'])}</code>" if record["lora"] else "",
            escape(record["prompt"]),
            record["seed"],
            record["steps"],
            record["guidance_scale"],
            f", LoRA scale {record['lora_scale']}" if record["lora_scale"] is not None else "",
        ),
        _img(images, "final", "final image", width=256),
    ]
    if "trajectory" in record:
        parts += _trajectory_section(record["trajectory"], images)
    if "attention" in record:
        parts += _attention_section(record["attention"], images)
    if "sweep" in record:
        parts += _sweep_section(record["sweep"], images, record["metrics"])
    if "refine" in record:
        parts += _refine_section(record["refine"], images, record["metrics"])
    return html_page("headshot study", "\n".join(parts))


def _trajectory_section(data: dict, images) -> list[str]:
    settles = "".join(
        f"<tr><td style='text-align:left'>{escape(name)}</td><td>{_number(step)}</td></tr>"
        for name, step in data["settles_at_step"].items()
    )
    return [
        "<h2>Denoising trajectory</h2>",
        f"<p>The model's predicted clean image (x0) at each of the {data['frames']} denoising steps, "
        "in reading order (first step top left). Timesteps: "
        + ", ".join(f"{t:g}" for t in data["timesteps"])
        + "."
        + _repeated_timesteps(data["timesteps"])
        + "</p>",
        _img(images, "trajectory", "x0 per step"),
        _img(images, "plots/trajectory_curves", "measures per step; dashed: where each settles"),
        "<table><tr><th>measure</th><th>settles at step</th></tr>" + settles + "</table>",
    ]


def _repeated_timesteps(timesteps: list[float]) -> str:
    """Why a timestep shows twice: the scheduler called the model twice at it (PNDM's PLMS
    warms its multistep formula up that way), so there is one frame per call, not per step."""
    repeated = sorted({t for t in timesteps if timesteps.count(t) > 1}, reverse=True)
    if not repeated:
        return ""
    which = ("Timesteps " if len(repeated) > 1 else "Timestep ") + ", ".join(f"{t:g}" for t in repeated)
    return (
        f" {which} {'show' if len(repeated) > 1 else 'shows'} twice: the scheduler calls the model "
        "twice there (a multistep scheduler's start, such as PNDM's), and each call has its frame, "
        "so there are more frames than inference steps."
    )


def _attention_section(data: dict, images) -> list[str]:
    figures = "".join(
        _img(
            images,
            token["file"].removesuffix(".png"),
            f"'{token['word']}' (tokens {token['positions']})",
            192,
        )
        for token in data["tokens"]
    )
    return [
        "<h2>Cross-attention</h2>",
        "<p>Where the image attends to each chosen word, averaged over all cross-attention layers "
        "and steps, scaled to [0, 1] per word (bright: strong attention), over the final image.</p>",
        figures,
        _img(images, "plots/attention_steps", "per step"),
    ]


def _sweep_section(data: dict, images, metrics: list[str]) -> list[str]:
    knobs = list(data["knobs"])
    header = "<th>#</th>" + "".join(f"<th>{escape(k)}</th>" for k in knobs)
    header += "".join(f"<th>{escape(m)}</th>" for m in metrics)
    rows = []
    for number, entry in enumerate(data["entries"], start=1):  # the number on its sheet tile
        cells = [number] + [entry["checkpoint"] if k == "checkpoint" else entry[k] for k in knobs]
        cells += [entry["metrics"].get(m) for m in metrics]
        rows.append("<tr>" + "".join(f"<td>{_number(c)}</td>" for c in cells) + "</tr>")
    plots = "".join(_img(images, f"plots/sweep_{knob}", f"against {knob}") for knob in knobs)
    return [
        "<h2>Sweeps</h2>",
        f"<p>Mode <b>{escape(data['mode'])}</b>, seeds {data['seeds']}; {len(data['entries'])} grid points. "
        "Images in table order (first seed), each numbered as its row:</p>",
        _img(images, "sweep", "sweep images"),
        plots,
        f"<table><tr>{header}</tr>" + "".join(rows) + "</table>",
    ]


def _refine_section(data: dict, images, metrics: list[str]) -> list[str]:
    parts = [
        "<h2>Face-detail pass: before and after</h2>",
        f"<p>The same {len(data['seeds'])} seed(s) rendered, then passed through generate's "
        f"face-detail pass (strength {data['options']['strength']}); refined: {data['applied']}. "
        "Each metric before and after, and its mean change over the refined seeds.</p>",
        "<table><tr><th>seed</th><th>refined</th>"
        + "".join(f"<th>{escape(m)}</th>" for m in metrics)
        + "</tr>",
    ]
    for row in data["rows"]:
        done = "yes" if row["applied"] else f"no: {row.get('reason', '')}"
        cells = "".join(
            f"<td>{_number(row['before'].get(m))} → {_number(row['after'].get(m))}</td>" for m in metrics
        )
        parts.append(f"<tr><td>{row['seed']}</td><td>{escape(done)}</td>{cells}</tr>")
    means = "".join(f"<td>{_number(data['mean_change'].get(m))}</td>" for m in metrics)
    parts.append(f"<tr><td>mean change</td><td></td>{means}</tr></table>")
    for row in data["rows"]:
        seed = row["seed"]
        parts.append(_img(images, f"refine/seed-{seed}-before", f"seed {seed} before", width=192))
        parts.append(_img(images, f"refine/seed-{seed}-after", f"seed {seed} after", width=192))
    return parts
