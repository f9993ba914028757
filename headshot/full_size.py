"""Real base models at their real size, without their weights.

Why: everything else is tested on tiny random models at 64 px, and nothing else on this
project's machines has run at the size a person with a GPU box runs. The shipped
`configs/full-size/*.yaml` hold each real model's component configs (written from its hub
repository's configuration files: docs/full-size-models.md names them). From them this module
writes a diffusers folder with every config and no weights, and builds any component on
PyTorch's `meta` device: shapes and dtypes only, no memory. `headshot plan` plans from such a
folder when the model's own files are not on disk, and the full-size tests and benchmarks
build the real architectures from it.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path
from typing import Any

from pydantic import Field

from headshot.config import StrictModel, configs_root, read_yaml, validate
from headshot.errors import HeadshotError

# A component whose config file is not `config.json`.
CONFIG_FILES = {"scheduler": "scheduler_config.json"}


class FullSizeModel(StrictModel):
    """One real model's configs: `configs/full-size/<name>.yaml`."""

    source: str  # the hub repository the configs were written from
    like: str | None = None  # another file's configs, which this one's replace key by key
    model_index: dict[str, Any] = Field(default_factory=dict)
    components: dict[str, dict[str, Any]] = Field(default_factory=dict)
    tokenizers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    name: str = ""


def _folder() -> Path:
    return configs_root() / "full-size"


def shipped_names() -> list[str]:
    return sorted(path.stem for path in _folder().glob("*.yaml"))


def shipped(name: str) -> FullSizeModel:
    """The full-size configs `configs/full-size/<name>.yaml`, with `like:` resolved."""
    path = _folder() / f"{name}.yaml"
    if not path.is_file():
        raise HeadshotError(f"no full-size configs named '{name}' (shipped: {', '.join(shipped_names())})")
    model = validate(FullSizeModel, {**read_yaml(path), "name": name}, str(path))
    if model.like is None:
        return model
    base = shipped(model.like)
    components = {key: {**base.components.get(key, {}), **value} for key, value in model.components.items()}
    return base.model_copy(
        update={
            "source": model.source,
            "name": name,
            "model_index": {**base.model_index, **model.model_index},
            "components": {**base.components, **components},
            "tokenizers": {**base.tokenizers, **model.tokenizers},
        }
    )


def find_shipped(model: str) -> FullSizeModel | None:
    """The shipped configs for a preset name (`sdxl`) or the hub id they were written from."""
    if model in shipped_names():
        return shipped(model)
    for name in shipped_names():
        candidate = shipped(name)
        if candidate.source.lower() == model.lower():
            return candidate
    return None


def write_config_folder(model: FullSizeModel, out: Path | None = None) -> Path:
    """A diffusers folder of `model`'s configs (model_index.json, each component's config, the
    tokenizers' tokenizer_config.json) and no weights; a fresh temporary folder by default."""
    import transformers

    out = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix=f"headshot-{model.name}-"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "model_index.json").write_text(json.dumps(model.model_index, indent=2))
    for name, values in model.components.items():
        library, class_name = model.model_index[name]
        config = dict(values)
        if library == "diffusers":
            config.setdefault("_class_name", class_name)
        else:  # transformers reads the architecture's name from model_type
            config.setdefault("model_type", getattr(transformers, class_name).config_class.model_type)
        folder = out / name
        folder.mkdir(exist_ok=True)
        (folder / CONFIG_FILES.get(name, "config.json")).write_text(json.dumps(config, indent=2))
    for name, values in model.tokenizers.items():
        (out / name).mkdir(exist_ok=True)
        (out / name / "tokenizer_config.json").write_text(json.dumps(values, indent=2))
    return out


def component_config(folder: Path, name: str) -> dict[str, Any]:
    """A component's config as a plain dict (from `config.json` or `scheduler_config.json`)."""
    from headshot.bounded_io import read_json_object

    return read_json_object(Path(folder) / name / CONFIG_FILES.get(name, "config.json"), "a model config")


@contextlib.contextmanager
def no_initialisation():
    """torch.nn.init's functions as no-ops: a meta tensor has no values to initialise, and running
    the initialisers' decompositions on billions of meta elements costs seconds per model."""
    import torch

    names = [n for n in dir(torch.nn.init) if n.endswith("_") and not n.startswith("_")]
    saved = {name: getattr(torch.nn.init, name) for name in names}
    for name in names:
        setattr(torch.nn.init, name, lambda tensor, *args, **kwargs: tensor)
    try:
        yield
    finally:
        for name, function in saved.items():
            setattr(torch.nn.init, name, function)


def meta_component(folder: Path, name: str, library: str, class_name: str, dtype=None):
    """Component `name` of the diffusers folder built from its config on the meta device."""
    import diffusers
    import torch
    import transformers

    cls = getattr(diffusers if library == "diffusers" else transformers, class_name, None)
    if cls is None:
        raise HeadshotError(f"{folder}/{name}: unknown class {library}.{class_name}")
    if library == "diffusers":
        config = cls.load_config(Path(folder) / name)
        with torch.device("meta"), no_initialisation():
            model = cls.from_config(config)
    else:
        model_config = cls.config_class.from_pretrained(Path(folder) / name)
        with torch.device("meta"), no_initialisation():
            model = cls(model_config)
    # torch's own `to`: diffusers' override warns about float32-kept modules, which no meta model has
    return model if dtype is None else torch.nn.Module.to(model, dtype)
