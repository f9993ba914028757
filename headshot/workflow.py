"""`headshot run` and `headshot demo`: the stages end to end, folder to folder.

Each stage is called through its own entry function with its own config; this
module only chains them, so any stage can also be run (and resumed) alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from headshot.busy import subject_busy
from headshot.config import DEFAULT_BASE_MODEL, DEMO_FAMILY, StrictModel, configs_root, load_config
from headshot.errors import HeadshotError
from headshot.layout import SubjectLayout

console = Console(stderr=True)

STAGES = ("prepare", "finetune", "generate", "audit", "study")
# The sample photo the demo holds out of training for its showcase of the checks.
SHOWCASE_PHOTO = "hopper_05_rotate_right"


class RunConfig(StrictModel):
    """Options of `headshot run` (and of the demo, which fills them in itself)."""

    photos: Path
    subject: str
    base_model: str = DEFAULT_BASE_MODEL
    outputs: Path = Path("outputs")
    allow_pickle: bool = False
    # Each stage's own YAML config (the same file its own command takes with --config).
    prepare_config: Path | None = None
    finetune_config: Path | None = None
    generate_config: Path | None = None
    audit_config: Path | None = None
    # The study is research, not delivery: it runs after the audit only when configured.
    study_config: Path | None = None

    @classmethod
    def from_cli(cls, config_file: Path | None, **options) -> RunConfig:
        """Relative paths in the run's YAML file are read from that file's folder; so is a
        base_model there that names a file or folder beside it (else a preset or hub id)."""
        fields = cls.model_fields.items()
        paths = tuple(name for name, field in fields if field.annotation in (Path, Path | None))
        config = load_config(cls, config_file, options, paths_from_file=paths)
        if config_file is not None and options.get("base_model") is None:
            beside = Path(config_file).parent / config.base_model
            if not Path(config.base_model).expanduser().is_absolute() and beside.exists():
                config = config.model_copy(update={"base_model": str(beside)})
        return config

    @property
    def layout(self) -> SubjectLayout:
        return SubjectLayout.for_subject(self.outputs, self.subject)


@dataclass(frozen=True)
class StageConfigs:
    """Each stage's config as the run will use it: its YAML with the run's options applied."""

    prepare: Any
    finetune: Any
    generate: Any
    audit: Any
    study: Any | None


def check_run(config: RunConfig) -> StageConfigs:
    """Every check that can fail without training, before any stage writes: the photo folder,
    the base model (a local file or folder, in the Hugging Face cache, or on the hub for this
    user), and every stage config the run names (it exists and validates, and so do the
    templates, signing config and audit config it names in turn)."""
    from headshot.analysis.audit import AuditConfig
    from headshot.models.hub_access import check_model_available
    from headshot.models.model_spec import resolve_base_model
    from headshot.pipelines.templates import load_templates, shipped_template_names
    from headshot.signing.config import load_signing_config

    if not config.photos.is_dir():
        raise HeadshotError(f"{config.photos}: photo folder not found")
    check_model_available(resolve_base_model(config.base_model), allow_pickle=config.allow_pickle)
    stages = StageConfigs(
        prepare=prepare_config(config),
        finetune=finetune_config(config),
        generate=generate_config(config),
        audit=audit_config(config),
        study=study_config(config) if config.study_config is not None else None,
    )
    load_templates(stages.generate.templates or shipped_template_names())
    if stages.generate.signing_config is not None:
        load_signing_config(stages.generate.signing_config)
    if stages.generate.ranking.audit_config is not None:
        load_config(AuditConfig, stages.generate.ranking.audit_config)
    return stages


def run_all(config: RunConfig) -> SubjectLayout:
    """prepare -> finetune -> generate (+ sign) -> audit, each writing its own folder."""
    layout = config.layout
    # Fail before hours of work, not after, and before any stage replaces what it wrote last time.
    stages = check_run(config)
    console.rule(f"[bold]headshot run[/]: subject '{config.subject}' -> {layout.root}")
    with subject_busy(layout.root, "run", create=True):  # one lock for the whole chain
        run_prepare(config, layout, stages.prepare)
        run_finetune(config, layout, stages.finetune)
        run_generate(config, layout, stages.generate)
        run_audit(config, layout, stages.audit)
        if stages.study is not None:
            run_study(config, layout, stages.study)
    console.rule(f"[bold green]done[/]: {layout.root}")
    return layout


# Each stage's config for a run: the stage's own YAML, with the run's photos, subject, model
# and outputs winning over it.


def prepare_config(config: RunConfig):
    from headshot.training.intake import PrepareConfig

    options = dict(
        photos=config.photos, subject=config.subject, base_model=config.base_model, outputs=config.outputs
    )
    return load_config(PrepareConfig, config.prepare_config, options)


def finetune_config(config: RunConfig):
    from headshot.training.finetune_config import FinetuneConfig

    return load_config(FinetuneConfig, config.finetune_config, {"base_model": config.base_model})


def generate_config(config: RunConfig):
    from headshot.pipelines.generate_config import GenerateConfig

    # The run's own base model: training.json records a local one by name only.
    options = {"allow_pickle": config.allow_pickle or None, "base_model": config.base_model}
    return load_config(GenerateConfig, config.generate_config, options)


def audit_config(config: RunConfig):
    from headshot.analysis.audit import AuditConfig

    # the run's source photos stand in for dataset crops too small to measure (tiny models)
    return load_config(AuditConfig, config.audit_config, {"photos": config.photos})


def study_config(config: RunConfig):
    from headshot.study.config import load_study_config

    return load_study_config(
        config.study_config,
        lora=config.layout.lora,
        outputs=config.outputs,
        base_model=config.base_model,
        allow_pickle=config.allow_pickle or None,
    )


def run_prepare(config: RunConfig, layout: SubjectLayout, settings=None) -> None:
    """photos -> dataset/."""
    from headshot.training.intake import prepare_dataset

    console.rule("[bold]prepare[/]")
    prepare_dataset(settings or prepare_config(config))


def run_finetune(config: RunConfig, layout: SubjectLayout, settings=None) -> None:
    """Train the LoRA on layout.dataset into layout.lora; a re-run with the same dataset, model
    and settings continues from its checkpoint (or only re-exports a finished run)."""
    from headshot.training.finetune import finetune_dataset

    console.rule("[bold]finetune[/]")
    settings = settings or finetune_config(config)
    finetune_dataset(layout.dataset, settings, resume="auto", allow_pickle=config.allow_pickle)


def run_generate(config: RunConfig, layout: SubjectLayout, settings=None) -> None:
    """Render the templates with the subject's LoRA, rank, and deliver signed headshots."""
    from headshot.pipelines.generate import generate

    console.rule("[bold]generate[/]")
    generate(layout.lora, settings or generate_config(config))


def run_audit(config: RunConfig, layout: SubjectLayout, settings=None) -> None:
    """Audit the delivered headshots against the subject's dataset into audit/."""
    from headshot.analysis.audit import audit_folder

    settings = settings or audit_config(config)
    if not layout.headshots.is_dir():
        raise HeadshotError(
            f"{layout.headshots}: no delivered headshots to audit (run `headshot generate` first)"
        )
    result = audit_folder(layout.headshots, layout.dataset, settings.out or layout.audit, settings)
    no_face = sum(row.status == "no_face" for row in result.rows)
    flagged = sum(bool(row.flags) for row in result.rows)
    console.print(
        f"audit: {len(result.rows)} headshots, {flagged} flagged, {no_face} without a face"
        f" -> {result.report_path}"
    )


def run_study(config: RunConfig, layout: SubjectLayout, settings=None) -> None:
    """x0 trajectory, cross-attention maps and sweeps on the trained LoRA, into audit/study/."""
    from headshot.study.run import run_study as study

    study(settings or study_config(config), source=str(config.study_config))  # it reports where it wrote


def run_demo(family: str = DEMO_FAMILY, outputs: Path = Path("outputs")) -> SubjectLayout:
    """Build the tiny model and the sample selfies if missing, then run every stage."""
    from headshot.families import family_names
    from headshot.samples import make_sample_selfies
    from headshot.training.tiny_model import save_tiny_model

    if family not in family_names():
        raise HeadshotError(f"demo family '{family}': expected one of {', '.join(family_names())}")
    earlier = earlier_demo_family(outputs)
    if earlier is not None and earlier != family:
        console.print(
            f"replacing the earlier {earlier} demo in {outputs / 'demo'} with a {family} one "
            "(its dataset, LoRA, renders and headshots are made anew)",
            soft_wrap=True,  # a path stays whole, to copy
        )
    model_dir = outputs / "models" / f"tiny-{family}"
    if not (model_dir / "model_index.json").is_file():
        console.print(f"building tiny {family} model in {model_dir}")
        save_tiny_model(family, model_dir)  # type: ignore[arg-type]
    selfies = outputs / "demo" / "selfies"
    written = make_sample_selfies(selfies)
    # One real photo of the subject is kept out of training: the showcase judges copies of it.
    held_out = outputs / "demo" / "held-out" / f"{SHOWCASE_PHOTO}.jpg"
    held_out.parent.mkdir(parents=True, exist_ok=True)
    (selfies / held_out.name).replace(held_out)
    console.print(f"{len(written) - 1} sample photos in {selfies}, one held out in {held_out.parent}")
    # configs/demo/<stage>.yaml: small settings that keep the demo to a few minutes on a CPU.
    stage_configs = {
        f"{stage}_config": configs_root() / "demo" / f"{stage}.yaml"
        for stage in STAGES
        if (configs_root() / "demo" / f"{stage}.yaml").is_file()
    }
    layout = run_all(
        RunConfig(photos=selfies, subject="demo", base_model=str(model_dir), outputs=outputs, **stage_configs)
    )
    run_demo_showcase(layout, held_out, selfies)
    return layout


def earlier_demo_family(outputs: Path) -> str | None:
    """The family of the demo already in OUTPUTS/demo (its LoRA's, else its dataset's), if any."""
    from headshot.bounded_io import read_json_object
    from headshot.families import get_family

    layout = SubjectLayout.for_subject(outputs, "demo")
    for record in (layout.lora / "training.json", layout.dataset / "dataset.json"):
        try:
            return get_family(str(read_json_object(record)["family"])).name
        except (HeadshotError, KeyError, OSError):
            continue
    return None


def run_demo_showcase(layout: SubjectLayout, held_out: Path, selfies: Path) -> None:
    """The tiny model's renders show no face: show the checks on manipulated copies of a
    held-out real photo instead, judged as a real run's generate would judge them."""
    from headshot.analysis.audit import AuditConfig
    from headshot.pipelines.generate_config import GenerateConfig
    from headshot.pipelines.showcase import run_showcase
    from headshot.samples import astronaut

    options = load_config(GenerateConfig, configs_root() / "generate.yaml").ranking
    with subject_busy(layout.root, "demo"):
        report = run_showcase(
            held_out,
            astronaut(),
            layout.dataset,
            layout.audit / "showcase",
            options,
            AuditConfig(photos=selfies),
        )
    console.print(
        f"the checks on a real face (manipulated copies of {held_out.name}, not headshots): {report}"
    )
