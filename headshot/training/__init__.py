"""Photos -> dataset -> LoRA: intake, dataset caching, trainer, export."""
