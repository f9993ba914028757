"""Rewrite the shipped YAML configs' option comments, and the docs pages' option tables, from
the config models (`headshot/config_docs.py` says where each description comes from)."""

from __future__ import annotations

from pathlib import Path

from headshot.config import configs_root
from headshot.config_docs import docs_pages, sync_yaml_comments
from headshot.training.finetune_config import FinetuneConfig

PAIRS = [(FinetuneConfig, configs_root() / "finetune.yaml")]
DOCS = Path(__file__).resolve().parent.parent / "docs"

if __name__ == "__main__":
    for model, path in PAIRS:
        text = path.read_text(encoding="utf-8")
        path.write_text(sync_yaml_comments(model, text), encoding="utf-8")
        print(f"synced {path}")
    for _, page, synced, _ in docs_pages(DOCS, configs_root()):
        page.write_text(synced, encoding="utf-8")
        print(f"synced {page}")
