"""Base model + LoRA + templates -> rendered candidates."""
