"""The denoising trajectory: the model's predicted clean image (x0) at every step.

How x0 is captured. `callback_on_step_end` only sees the latents *after* a step, and a
forward hook on the UNet sees the unguided noise predictions of both classifier-free
guidance halves. The scheduler's `step(model_output, timestep, sample)` is the one place
that receives exactly what x0 is made of: the guided prediction, the timestep and the
latents it was made for. So `X0Recorder` wraps `step` on the scheduler *instance* for the
duration of one pipeline call (any scheduler, either family) and keeps x0 per step: the
scheduler's own `pred_original_sample` where its output has one (Euler, DDIM, LMS), else
computed from the prediction and the scheduler's noise schedule (PNDM, DPM-Solver, ...).
A family whose objective has its own x0 (flow matching: x0 = x_t - sigma v) supplies it as
`x0_of`, computed before the step; FLUX's packed latents are unpacked for decoding by the
family too (`latents_for_decoding`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image

from headshot.errors import HeadshotError


@dataclass
class X0Step:
    index: int
    timestep: float
    x0: object  # torch.Tensor (batch, channels, h, w): latents, float32, on the CPU


class X0Recorder:
    """`with X0Recorder(pipe.scheduler) as rec: pipe(...)`; then `rec.steps` holds x0 per step."""

    def __init__(self, scheduler, x0_of=None):
        self.scheduler = scheduler
        self.x0_of = x0_of  # f(scheduler, output, timestep, sample) -> x0, or None
        self.steps: list[X0Step] = []
        self._original_step = None

    def __enter__(self) -> X0Recorder:
        self._original_step = self.scheduler.step  # the bound class method
        self.scheduler.step = self._recording_step  # an instance attribute shadows it
        return self

    def __exit__(self, *exc_info) -> None:
        del self.scheduler.step

    def _recording_step(self, model_output, timestep, sample, *args, return_dict: bool = True, **kwargs):
        # Read the sigma before the call: `step` advances the scheduler's step index.
        sigma = current_sigma(self.scheduler, timestep)
        own = self.x0_of(self.scheduler, model_output, timestep, sample) if self.x0_of else None
        output = self._original_step(model_output, timestep, sample, *args, return_dict=True, **kwargs)
        x0 = own if own is not None else getattr(output, "pred_original_sample", None)
        if x0 is None:
            x0 = predicted_x0(self.scheduler, model_output, timestep, sample, sigma)
        self.steps.append(X0Step(len(self.steps), float(timestep), x0.detach().float().cpu().clone()))
        return output if return_dict else output.to_tuple()


def sigma_space(scheduler) -> bool:
    return float(getattr(scheduler, "init_noise_sigma", 1.0)) != 1.0


def current_sigma(scheduler, timestep) -> float | None:
    """The current sigma of a sigma-space (Euler/Heun-style) scheduler, else None."""
    sigmas = getattr(scheduler, "sigmas", None)
    if not sigma_space(scheduler) or sigmas is None:
        return None
    index = getattr(scheduler, "step_index", None)
    if index is None and hasattr(scheduler, "index_for_timestep"):
        index = scheduler.index_for_timestep(timestep)
    return None if index is None else float(sigmas[index])


def predicted_x0(scheduler, model_output, timestep, sample, sigma: float | None):
    """x0 from one prediction, for schedulers whose step output does not carry it.

    Two sample conventions exist: variance-preserving, x_t = sqrt(abar) x0 + sqrt(1-abar) eps
    (init_noise_sigma == 1: DDPM, PNDM, DPM-Solver, UniPC), and sigma space, x_t = x0 + sigma eps
    (init_noise_sigma > 1: Euler/Heun-style, where sigma is the scheduler's current one).
    """
    prediction = scheduler.config.get("prediction_type", "epsilon")
    if prediction == "sample":
        return model_output
    if sigma_space(scheduler):
        if sigma is not None and prediction == "epsilon":
            return sample - sigma * model_output
        if sigma is not None and prediction == "v_prediction":
            return model_output * (-sigma / (sigma**2 + 1) ** 0.5) + sample / (sigma**2 + 1)
    elif hasattr(scheduler, "alphas_cumprod"):
        abar = scheduler.alphas_cumprod[int(timestep)].to(sample.device, sample.dtype)
        if prediction == "epsilon":
            return (sample - (1 - abar).sqrt() * model_output) / abar.sqrt()
        if prediction == "v_prediction":
            return abar.sqrt() * sample - (1 - abar).sqrt() * model_output
    raise HeadshotError(
        f"study: cannot compute the predicted clean image for the scheduler "
        f"{type(scheduler).__name__} (prediction type '{prediction}'); use an Euler, DDIM or PNDM scheduler"
    )


def decode_latents(pipeline, latents) -> list[Image.Image]:
    """Latents (b, c, h, w) -> PIL images with the pipeline's own VAE, as the pipeline decodes."""
    import torch

    from headshot.families import family_of_pipeline

    vae = pipeline.vae
    config = vae.config
    latents = family_of_pipeline(pipeline).vae_latents(vae, latents.to(vae.device))
    # float16 SDXL VAEs overflow; decode those in float32 as the pipeline does.
    dtype = torch.float32 if vae.dtype == torch.float16 and config.get("force_upcast") else vae.dtype
    original = vae.dtype
    with torch.no_grad():
        vae.to(dtype)
        try:
            decoded = vae.decode(latents.to(dtype), return_dict=False)[0]
        finally:
            vae.to(original)
    return pipeline.image_processor.postprocess(decoded.float(), output_type="pil")


def trajectory_frames(pipeline, steps: list[X0Step], to_vae_layout=None) -> list[Image.Image]:
    """The decoded x0 of every step (the first image of the batch)."""
    to_vae_layout = to_vae_layout or (lambda latents: latents)
    return [decode_latents(pipeline, to_vae_layout(step.x0[:1]))[0] for step in steps]


def contact_sheet(
    frames: list[Image.Image], tile: int, columns: int, labels: list[str] | None = None
) -> Image.Image:
    """Frames in reading order on a grid; tiles are `tile` wide at most (never upscaled).
    `labels` are written in each tile's top-left corner, white on black (the report's table
    and curves name the same numbers)."""
    from PIL import ImageDraw

    if not frames:
        raise ValueError("no frames for a contact sheet")
    width = min(frames[0].width, tile)
    height = round(frames[0].height * width / frames[0].width)
    columns = min(columns, len(frames))
    rows = math.ceil(len(frames) / columns)
    sheet = Image.new("RGB", (columns * width, rows * height))
    for index, frame in enumerate(frames):
        thumb = frame.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
        left, top = (index % columns) * width, (index // columns) * height
        sheet.paste(thumb, (left, top))
        if labels is not None:
            draw = ImageDraw.Draw(sheet)
            box = draw.textbbox((left + 2, top + 1), labels[index])
            draw.rectangle((box[0] - 1, box[1] - 1, box[2] + 1, box[3] + 1), fill=(0, 0, 0))
            draw.text((left + 2, top + 1), labels[index], fill=(255, 255, 255))
    return sheet


def settle_step(values: list[float | None], tolerance: float = 0.1) -> int | None:
    """First step from which a curve stays within `tolerance` of its range around its final value.

    "Where does skin texture flatten / identity settle": the answer is this step. None when the
    curve has no values (e.g. no face was found at any step).
    """
    points = [(index, value) for index, value in enumerate(values) if value is not None]
    if not points:
        return None
    numbers = [value for _, value in points]
    final, spread = numbers[-1], max(numbers) - min(numbers)
    settled = points[-1][0]
    for index, value in reversed(points):
        if abs(value - final) > tolerance * spread:
            break
        settled = index
    return settled


def plot_curves(
    curves: dict[str, list[float | None]], timesteps: list[float], settles: dict[str, int | None]
):
    """One panel per measure against the step; a dashed line where the curve settles.

    Measures with no value at any step (face metrics on a faceless image) are named, not drawn.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    from headshot.analysis.html import wrapped_title

    names = [name for name, values in curves.items() if any(v is not None for v in values)]
    missing = [name for name in curves if name not in names]
    figure = Figure(figsize=(6, 1.9 * max(len(names), 1) + 0.4), layout="constrained")
    axes = figure.subplots(max(len(names), 1), 1, squeeze=False, sharex=True)[:, 0]
    for axis, name in zip(axes, names):
        axis.plot(
            *zip(*[(i, v) for i, v in enumerate(curves[name]) if v is not None]), marker="o", markersize=3
        )
        if settles.get(name) is not None:
            axis.axvline(settles[name], linestyle="--", color="grey")
        axis.set_ylabel(name.replace("_", " "), fontsize=8)
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    shown = ", ".join(f"{t:g}" for t in timesteps[:12]) + (" ..." if len(timesteps) > 12 else "")
    axes[-1].set_xlabel(f"step (timestep: {shown})")
    title = "predicted clean image (x0) per denoising step"
    if missing:
        title += "\nno value at any step (no face found): " + ", ".join(missing)
    wrapped_title(figure, title)
    return figure
