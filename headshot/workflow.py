"""`headshot run` and `headshot demo`: the stages end to end, folder to folder.

Each stage is called through its own entry function with its own config; this
module only chains them, so any stage can also be run (and resumed) alone.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from headshot.config import StrictModel, load_config
from headshot.errors import HeadshotError
from headshot.layout import SubjectLayout

console = Console(stderr=True)


class RunConfig(StrictModel):
    """Options of `headshot run` (and of the demo, which fills them in itself)."""

    photos: Path
    subject: str
    base_model: str = "sdxl"
    outputs: Path = Path("outputs")
    allow_pickle: bool = False

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
    raise HeadshotError("`headshot prepare` is not built yet (tracked in issue 3).")


def run_demo(family: str = "sd15", outputs: Path = Path("outputs")) -> SubjectLayout:
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
    console.print(f"{len(written)} sample photos in {selfies}")
    return run_all(RunConfig(photos=selfies, subject="demo", base_model=str(model_dir), outputs=outputs))
