"""`headshot run` and `headshot demo`: the stages end to end, folder to folder.

Each stage is called through its own entry function with its own config; this
module only chains them, so any stage can also be run (and resumed) alone.
"""

from __future__ import annotations

from pathlib import Path

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
        return load_config(cls, config_file, options)

    @property
    def layout(self) -> SubjectLayout:
        return SubjectLayout.for_subject(self.outputs, self.subject)


def run_all(config: RunConfig) -> SubjectLayout:
    """prepare -> finetune -> generate (+ sign) -> audit, each writing its own folder."""
    from headshot.pipelines.loading import check_base_model, resolve_base_model

    layout = config.layout
    if not config.photos.is_dir():
        raise HeadshotError(f"{config.photos}: photo folder not found")
    # Fail before hours of work, not after: the model must be there and loadable.
    check_base_model(resolve_base_model(config.base_model), allow_pickle=config.allow_pickle)
    console.rule(f"[bold]headshot run[/]: subject '{config.subject}' -> {layout.root}")
    with subject_busy(layout.root, "run", create=True):  # one lock for the whole chain
        run_prepare(config, layout)
        run_finetune(config, layout)
        run_generate(config, layout)
        run_audit(config, layout)
        if config.study_config is not None:
            run_study(config, layout)
    console.rule(f"[bold green]done[/]: {layout.root}")
    return layout


def run_prepare(config: RunConfig, layout: SubjectLayout) -> None:
    """photos -> dataset/: the run's photos, subject, model and outputs win over the stage's YAML."""
    from headshot.training.intake import PrepareConfig, prepare_dataset

    console.rule("[bold]prepare[/]")
    options = dict(
        photos=config.photos, subject=layout.subject, base_model=config.base_model, outputs=layout.root.parent
    )
    prepare_dataset(load_config(PrepareConfig, config.prepare_config, options))


def run_finetune(config: RunConfig, layout: SubjectLayout) -> None:
    """Train the LoRA on layout.dataset into layout.lora; a re-run with the same dataset, model
    and settings continues from its checkpoint (or only re-exports a finished run)."""
    from headshot.training.finetune import finetune_dataset
    from headshot.training.finetune_config import FinetuneConfig

    settings = load_config(FinetuneConfig, config.finetune_config, {"base_model": config.base_model})
    console.rule("[bold]finetune[/]")
    finetune_dataset(layout.dataset, settings, resume="auto", allow_pickle=config.allow_pickle)


def run_generate(config: RunConfig, layout: SubjectLayout) -> None:
    """Render the templates with the subject's LoRA, rank, and deliver signed headshots."""
    from headshot.pipelines.generate import generate
    from headshot.pipelines.generate_config import GenerateConfig

    console.rule("[bold]generate[/]")
    # The run's own base model: training.json records a local one by name only.
    options = {"allow_pickle": config.allow_pickle or None, "base_model": config.base_model}
    generate(layout.lora, load_config(GenerateConfig, config.generate_config, options))


def run_audit(config: RunConfig, layout: SubjectLayout) -> None:
    """Audit the delivered headshots against the subject's dataset into audit/."""
    from headshot.analysis.audit import AuditConfig, audit_folder

    # the run's source photos stand in for dataset crops too small to measure (tiny models)
    audit_config = load_config(AuditConfig, config.audit_config, {"photos": config.photos})
    if not layout.headshots.is_dir():
        raise HeadshotError(
            f"{layout.headshots}: no delivered headshots to audit (run `headshot generate` first)"
        )
    result = audit_folder(layout.headshots, layout.dataset, audit_config.out or layout.audit, audit_config)
    no_face = sum(row.status == "no_face" for row in result.rows)
    flagged = sum(bool(row.flags) for row in result.rows)
    console.print(
        f"audit: {len(result.rows)} headshots, {flagged} flagged, {no_face} without a face"
        f" -> {result.report_path}"
    )


def run_study(config: RunConfig, layout: SubjectLayout) -> None:
    """x0 trajectory, cross-attention maps and sweeps on the trained LoRA, into audit/study/."""
    from headshot.analysis.study.config import load_study_config
    from headshot.analysis.study.run import run_study as study

    study_config = load_study_config(
        config.study_config,
        lora=layout.lora,
        outputs=config.outputs,
        base_model=config.base_model,
        allow_pickle=config.allow_pickle or None,
    )
    study(study_config, source=str(config.study_config))  # it reports where it wrote


def run_demo(family: str = DEMO_FAMILY, outputs: Path = Path("outputs")) -> SubjectLayout:
    """Build the tiny model and the sample selfies if missing, then run every stage."""
    from headshot.pipelines.families import FAMILIES
    from headshot.pipelines.tiny import save_tiny_model
    from headshot.samples import make_sample_selfies

    if family not in FAMILIES:
        raise HeadshotError(f"demo family '{family}': expected one of {', '.join(FAMILIES)}")
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
