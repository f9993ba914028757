"""Validation samples during training, each scored for likeness against the dataset.

Samples use fixed seeds, so the images of successive steps show what training
changed; each face's leave-one-out likeness is what picks the exported checkpoint
(training/selection.py). A sample in which no face is found is recorded as such ("no face"), not
scored: on the tiny random models that is every sample.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from headshot.records import atomic_save_image, atomic_write_json


@dataclass
class SampleScore:
    step: int
    seed: int
    image: str  # relative to the samples folder
    face: bool
    likeness_distance: float | None = None  # dlib distance to the subject's centroid
    likeness_relative: float | None = None  # 1.0 = as far as the subject's most unusual photo
    same_person: bool | None = None
    # Relative distance without the training photo nearest to it (training/selection.py).
    likeness_loo: float | None = None


@dataclass
class Validator:
    folder: Path  # lora/samples
    prompt: str
    seeds: list[int]
    steps: int
    guidance: float
    resolution: int
    identity: object | None  # SubjectIdentity, or None when the dataset has no embeddings
    prompt_length: int | None = None  # the training prompts' token length (FLUX); None: the pipeline's

    @torch.no_grad()
    def run(self, pipeline, step: int) -> list[SampleScore]:
        from headshot.families import family_of_pipeline

        family = family_of_pipeline(pipeline)
        denoiser = family.denoiser_of(pipeline)
        # Each module's own mode comes back afterwards: peft's LoRA dropout layers train while
        # the frozen base is in eval mode, and a blanket train(False) would switch dropout off
        # for the rest of the run (a resumed run, not validated yet, would then differ).
        modes = [(module, module.training) for module in denoiser.modules()]
        denoiser.eval()
        # Parts moved off the accelerator after caching come back for the samples only.
        parked = [m for m in (*family.text_encoders(pipeline), pipeline.vae) if m.device != denoiser.device]
        for module in parked:
            module.to(denoiser.device)
        scores = []
        # Mixed precision: frozen weights in bf16/fp16 meet float32 LoRA layers; autocast joins them.
        frozen = pipeline.vae.dtype
        precision = (
            torch.autocast(denoiser.device.type, dtype=frozen)
            if frozen != torch.float32
            else contextlib.nullcontext()
        )
        try:
            for seed in self.seeds:
                with precision:
                    image = pipeline(
                        **family.render_kwargs([self.prompt], None, self.guidance, self.prompt_length),
                        num_inference_steps=self.steps,
                        height=self.resolution,
                        width=self.resolution,
                        generator=torch.Generator(device="cpu").manual_seed(seed),
                    ).images[0]
                name = f"step-{step:06d}_seed-{seed}.png"
                atomic_save_image(self.folder / name, image)
                score = score_sample(image, self.identity)
                score.step, score.seed, score.image = step, seed, name
                scores.append(score)
        finally:
            for module, mode in modes:
                module.train(mode)
            for module in parked:
                module.to("cpu")
        return scores

    def record(self, history: list[SampleScore]) -> None:
        atomic_write_json(self.folder / "samples.json", [asdict(score) for score in history])


def score_sample(image, identity) -> SampleScore:
    """Find the largest face in a sample and score it against the subject (if there is an identity)."""
    from headshot.analysis.faces import detect_faces
    from headshot.training.selection import leave_one_out_relative

    score = SampleScore(step=0, seed=0, image="", face=False)
    faces = detect_faces(np.asarray(image.convert("RGB")), upsample=1)
    if not faces:
        return score
    score.face = True
    if identity is not None:
        likeness = identity.score(faces[0].embedding)
        score.likeness_distance = likeness.distance
        score.likeness_relative = likeness.relative
        score.same_person = likeness.same_person
        score.likeness_loo = leave_one_out_relative(identity, faces[0].embedding)
    return score


def summarize(scores: list[SampleScore]) -> dict[str, float]:
    """Numbers for the log: share of samples with a face and their mean likeness."""
    summary = {"faces_found": sum(s.face for s in scores) / max(len(scores), 1)}
    distances = [s.likeness_distance for s in scores if s.likeness_distance is not None]
    if distances:
        summary["likeness_distance"] = float(np.mean(distances))
    held_out = [s.likeness_loo for s in scores if s.likeness_loo is not None]
    if held_out:  # the score select: best_likeness ranks steps by (TensorBoard plots it)
        summary["likeness_loo"] = float(np.mean(held_out))
    return summary
