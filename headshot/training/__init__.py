"""Photos -> dataset -> LoRA: intake, dataset caching, trainer, checkpoints, the tiny models' pre-training."""
