"""What other stages (generate, the demo) and the CLI call to sign and verify images."""

from __future__ import annotations

from headshot.signing.config import SigningConfig, load_signing_config
from headshot.signing.credentials import CredentialPaths, create_dev_credentials, ensure_dev_credentials
from headshot.signing.generation_info import GenerationInfo
from headshot.signing.sign import SignedImage, sign_file, sign_image
from headshot.signing.verify import Verification, VerifyOptions, verify_bytes, verify_file

__all__ = [
    "CredentialPaths",
    "GenerationInfo",
    "SignedImage",
    "SigningConfig",
    "Verification",
    "VerifyOptions",
    "create_dev_credentials",
    "ensure_dev_credentials",
    "load_signing_config",
    "sign_file",
    "sign_image",
    "verify_bytes",
    "verify_file",
]
