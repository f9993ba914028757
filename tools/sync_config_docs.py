"""Rewrite the shipped YAML configs' option comments, and the docs pages' option tables, from
the config models' descriptions."""

from __future__ import annotations

from pathlib import Path

from headshot.batch.config import BatchConfig
from headshot.config import configs_root
from headshot.config_docs import sync_markdown_options, sync_yaml_comments
from headshot.training.finetune_config import FinetuneConfig

PAIRS = [(FinetuneConfig, configs_root() / "finetune.yaml")]
PAGES = [(BatchConfig, Path(__file__).resolve().parent.parent / "docs" / "batch.md")]

if __name__ == "__main__":
    for model, path in PAIRS:
        text = path.read_text(encoding="utf-8")
        path.write_text(sync_yaml_comments(model, text), encoding="utf-8")
        print(f"synced {path}")
    for model, path in PAGES:
        path.write_text(sync_markdown_options(model, path.read_text(encoding="utf-8")), encoding="utf-8")
        print(f"synced {path}")
