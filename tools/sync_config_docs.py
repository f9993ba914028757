"""Rewrite the shipped YAML configs' option comments from the config models' descriptions."""

from __future__ import annotations

from headshot.config import configs_root
from headshot.config_docs import sync_yaml_comments
from headshot.training.finetune_config import FinetuneConfig

PAIRS = [(FinetuneConfig, configs_root() / "finetune.yaml")]

if __name__ == "__main__":
    for model, path in PAIRS:
        text = path.read_text(encoding="utf-8")
        path.write_text(sync_yaml_comments(model, text), encoding="utf-8")
        print(f"synced {path}")
