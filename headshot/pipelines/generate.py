"""`headshot generate`: render the template grid, rank the candidates, deliver signed headshots.

Under `accelerate launch --num_processes N` every process renders the grid entries
whose index modulo N is its rank (no overlap, no gaps, the same split on every
re-run); the main process then ranks and delivers once all renders exist.
"""

from __future__ import annotations

import time
from pathlib import Path

from PIL import Image
from rich.console import Console

from headshot.analysis.likeness import SubjectIdentity
from headshot.busy import subject_busy
from headshot.dataset_record import read_dataset
from headshot.errors import HeadshotError, Interrupted
from headshot.layout import SubjectLayout
from headshot.pipelines import delivery, ranking
from headshot.pipelines.generate_config import GenerateConfig
from headshot.pipelines.render import load_renderer, read_finished, render_jobs
from headshot.pipelines.templates import (
    RenderJob,
    check_templates_for_family,
    expand_grid,
    load_templates,
    shipped_template_names,
)
from headshot.records import library_versions, portable_record
from headshot.signing import commitments
from headshot.signing.repository import recover
from headshot.storage import StagedFolder
from headshot.terminal import shown_path
from headshot.training.training_record import read_training_record

console = Console(stderr=True, soft_wrap=True)


def generate(lora_folder: Path, config: GenerateConfig) -> Path | None:
    """Render, rank and deliver; returns headshots/index.json (None on non-main processes
    and when max_images stopped the rendering before the grid was complete)."""
    layout = SubjectLayout.of_stage_folder(Path(lora_folder))
    with subject_busy(layout.root, "generate"):
        try:
            return _generate(Path(lora_folder), config)
        except KeyboardInterrupt:  # Ctrl-C: say what is kept (the command line adds how to go on)
            finished = sum(1 for _ in layout.renders.glob("*/*.json")) if layout.renders.is_dir() else 0
            raise Interrupted(
                f"{finished} finished renders in {shown_path(layout.renders)} (a re-run skips them); "
                f"{shown_path(layout.headshots)} is unchanged"
            ) from None


def _generate(lora_folder: Path, config: GenerateConfig) -> Path | None:
    import torch
    from accelerate import PartialState

    lora_folder = Path(lora_folder)
    if not lora_folder.is_dir():
        raise HeadshotError(f"{lora_folder}: lora folder not found (run `headshot finetune` first)")
    templates = load_templates(config.templates or shipped_template_names())
    jobs = expand_grid(templates, config.seed_list())
    record = read_training_record(lora_folder)
    layout = SubjectLayout.of_stage_folder(lora_folder)
    dataset_folder = Path(config.dataset) if config.dataset else layout.dataset
    dataset = read_dataset(dataset_folder)
    identity = _subject_identity(dataset, dataset_folder)

    # On a machine without CUDA, processes started by `accelerate launch --multi_gpu` (or
    # torchrun) must be told to join a CPU (gloo) group; accelerate does not infer it.
    state = PartialState(cpu=config.performance.device == "cpu" or not torch.cuda.is_available())
    device = str(state.device) if config.performance.device == "auto" else config.performance.device
    if state.is_main_process:
        _remove_interrupted_writes(layout.renders)
    state.wait_for_everyone()  # no process writes before leftovers are cleaned
    mine = jobs[state.process_index :: state.num_processes]
    renderer = load_renderer(lora_folder, record, config, device)
    check_templates_for_family(templates, renderer.loaded.family, config.size, renderer.loaded.resolution)
    renderer.process_index = state.process_index
    if state.is_main_process:
        console.print(
            f"generate: {len(templates)} templates, {len(jobs)} candidates"
            + (f", split over {state.num_processes} processes" if state.num_processes > 1 else "")
        )
    summary = render_jobs(
        renderer,
        mine,
        layout.renders,
        batch_size=config.batch_size,
        max_images=config.max_images,
        show_progress=state.is_main_process,
    )
    state.wait_for_everyone()
    if not state.is_main_process:
        return None
    missing = [job for job in jobs if read_finished(layout.renders, job, renderer.settings(job)) is None]
    if missing:
        console.print(
            f"rendered {summary.rendered} (max_images {config.max_images}); {len(missing)} candidates "
            "left: run the same command again to continue. Nothing ranked or delivered yet."
        )
        return None
    return _rank_and_deliver(jobs, renderer, identity, dataset, record, layout, config, summary)


def _subject_identity(dataset, dataset_folder: Path) -> SubjectIdentity:
    with_embeddings = [p for p in dataset.accepted if p.embedding is not None]
    if not with_embeddings:
        raise HeadshotError(
            f"{dataset_folder / 'dataset.json'}: no accepted photo has an identity embedding, "
            "so likeness cannot be judged; re-run `headshot prepare`"
        )
    return SubjectIdentity.from_dataset(dataset)


def _remove_interrupted_writes(renders: Path) -> None:
    """Temporary files a killed run left behind (atomic writes rename them when complete)."""
    if renders.is_dir():
        for leftover in renders.glob("*/.*.tmp"):
            leftover.unlink(missing_ok=True)


def _rank_and_deliver(jobs, renderer, identity, dataset, record, layout, config, render_summary):
    options = config.ranking
    started = time.perf_counter()
    candidates = [_candidate(job, renderer, layout) for job in jobs]
    auditor = _auditor(options, layout.dataset if not config.dataset else Path(config.dataset))
    for candidate in candidates:
        with Image.open(layout.root / candidate.render) as image:
            ranking.score_candidate(candidate, image, identity, options, auditor)
    ranking.choose(candidates, options)
    ranking_seconds = time.perf_counter() - started

    signer, signer_error = None, None
    if any(c.selected for c in candidates):
        try:
            # The outputs root: OUTPUTS/<subject>/.. holds keys/ and manifest-store/.
            signer = delivery.load_signer(config.signing_config, layout.root.parent, config.store)
        except HeadshotError as exc:
            signer_error = str(exc)
    secret = None
    if signer is not None and signer.commit_photos:
        secret = commitments.load_or_create_secret(commitments.secret_path(layout.root))
    provenance = delivery.Provenance(sorted(p.sha256 for p in dataset.accepted), secret, options)
    # New headshots and index.json are built beside the old ones and swapped in only when
    # every chosen candidate is signed; a failure leaves the earlier delivery as it was.
    staged = StagedFolder(layout.headshots)
    repaired = staged.recover()
    if repaired:
        console.print(f"[yellow]{repaired}[/]")
    if signer is not None and signer.store is not None:
        recover(signer.store)  # entries a killed run left: kept if their file was delivered
    previous = delivery.read_previous_index(layout.headshots)
    staging = staged.begin()
    try:
        kept = delivery.carry_over(layout.headshots, staging, previous, {c.template for c in candidates})
        delivered = delivery.deliver(candidates, layout.root, staging, signer, signer_error, provenance)
        _refuse_partial_delivery(candidates, signer_error, layout.headshots)
        if not delivered and not config.allow_empty:
            raise HeadshotError(_nothing_delivered(candidates, layout))
        index_summary = {
            "format": 1,
            "subject": record.subject,
            "base_model": record.base_model,
            "base_model_sha256": renderer.base_model_sha256,
            "lora_sha256": renderer.lora_sha256,
            "identity": {
                "photos": len(identity.embeddings),
                "spread_mean": round(identity.spread_mean, 4),
                "spread_max": round(identity.spread_max, 4),
            },
            "ranking": options.model_dump(mode="json"),
            "audit": auditor.note if auditor else "off (ranking.audit: false)",
            "config": config.model_dump(mode="json"),
            "timings": {
                "render_s": round(render_summary.seconds, 3),
                "rendered": render_summary.rendered,
                "reused": render_summary.skipped,
                "ranking_s": round(ranking_seconds, 3),
            },
            "versions": library_versions(),
        }
        delivery.write_index(staging, candidates, portable_record(index_summary, layout.root), kept)
        staged.commit()
    except BaseException:
        staged.abort()
        raise
    finally:
        if signer is not None and signer.store is not None:
            recover(signer.store)  # keeps the entries of delivered files, drops the rest
    index = layout.headshots / delivery.INDEX_FILE
    if auditor is not None and auditor.note.startswith("skipped"):
        console.print(f"[yellow]artifact audit {auditor.note}[/]")
    _report(candidates, delivered, signer_error, index, options)
    return index


def _refuse_partial_delivery(candidates, signer_error: str | None, headshots: Path) -> None:
    """A chosen candidate that could not be signed fails the stage (exit 1), before the swap."""
    unsigned = [c for c in candidates if c.dropped == "signing_failed"]
    if unsigned:
        reason = signer_error or unsigned[0].detail
        raise HeadshotError(
            f"{reason} ({len(unsigned)} chosen candidate(s) not signed; {headshots} is unchanged "
            "and the candidates stay in renders/)"
        )


def _nothing_delivered(candidates, layout: SubjectLayout) -> str:
    """Why no candidate was delivered, counted by reason, for a script and for the person."""
    from collections import Counter

    reasons = Counter(c.dropped for c in candidates if c.dropped)
    why = "; ".join(
        f"{count} of {len(candidates)}: {ranking.DROP_REASONS[code]}" for code, count in reasons.items()
    )
    return (
        f"nothing delivered: {why or 'no candidates'}. {layout.headshots} is unchanged and the "
        f"candidates stay in {layout.renders}; to record an empty delivery anyway: --allow-empty"
    )


def _auditor(options, dataset_folder: Path) -> ranking.Auditor | None:
    from headshot.analysis.audit import AuditConfig
    from headshot.config import load_config

    if not options.audit:
        return None
    return ranking.Auditor(dataset_folder, load_config(AuditConfig, options.audit_config, {}))


def _candidate(job: RenderJob, renderer, layout: SubjectLayout) -> ranking.Candidate:
    sidecar = read_finished(layout.renders, job, renderer.settings(job))
    png = layout.renders / job.template.name / f"{job.stem}.png"
    return ranking.Candidate(
        key=job.key,
        template=job.template.name,
        variant=dict(job.variant),
        seed=job.seed,
        render=png.relative_to(layout.root).as_posix(),
        sidecar=sidecar or {},
    )


def _report(candidates, delivered, signer_error, index: Path, options) -> None:
    faces = sum(1 for c in candidates if c.faces)
    if not options.require_face or options.max_relative_distance is None:
        console.print(
            "[yellow]relaxed ranking[/] (require_face: false or max_relative_distance: null): "
            "candidates may be delivered without a face or a likeness check - a demo setting"
        )
    console.print(
        f"ranked {len(candidates)} candidates ({faces} with a face); delivered {len(delivered)} "
        f"signed headshots; details in {index}"
    )
    if signer_error:
        console.print(f"[yellow]nothing delivered[/]: {signer_error}")
    unsigned = [c for c in candidates if c.dropped == "signing_failed"]
    if unsigned and not signer_error:
        console.print(
            f"[yellow]{len(unsigned)} chosen candidates could not be signed and stay in renders/[/]: "
            f"{unsigned[0].detail}"
        )
    flagged = [c for c in candidates if c.dropped in ("artifact_flagged", "artifact_never_delivered")]
    if flagged:
        console.print(
            f"{len(flagged)} candidates with a flagged artifact not delivered (reasons in index.json)"
        )
    copies = [c.key for c in candidates if c.copy_suspect]
    if copies:
        console.print(f"[yellow]possible copies of a training photo[/]: {', '.join(copies)}")
