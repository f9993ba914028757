"""Candidates -> signed headshots; verify (C2PA manifest, credentials, watermark)."""
