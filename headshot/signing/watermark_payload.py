"""What both watermark versions share: the 64-bit payload (32-bit identifier + CRC-32) and the result.

An identifier is reported only when its CRC-32 matches: that check, not a score threshold,
is what keeps unmarked photos from yielding identifiers (docs/watermark.md counts them).
"""

from __future__ import annotations

import binascii
import hashlib
from dataclasses import dataclass
from itertools import combinations

import numpy as np

ID_BITS = 32
CRC_BITS = 32
N_BITS = ID_BITS + CRC_BITS
CHASE_BITS = 6  # least certain bits the decoder may flip (at most two at a time): 22 candidates


@dataclass(frozen=True)
class WatermarkResult:
    found: bool
    identifier: str | None  # 8 hex digits when found
    score: float  # detector-specific strength of the evidence (reported, not decided on)
    algorithm: str | None = None  # which mark was read, when found
    bit_errors: int | None = None  # only filled in by measurements that know the truth


def key_id(key: str) -> str:
    """A short public name of a key (first 16 hex digits of its SHA-256), for manifests."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def key_seed(key: str, purpose: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{key}/{purpose}".encode()).digest()[:8], "big")


def _crc(identifier: int) -> int:
    return binascii.crc32(identifier.to_bytes(4, "big") + b"headshot")


def payload_bits(identifier: int) -> np.ndarray:
    value = (identifier << CRC_BITS) | _crc(identifier)
    return np.array([(value >> (N_BITS - 1 - i)) & 1 for i in range(N_BITS)], dtype=np.int8)


def decode_bits(bits: np.ndarray) -> int | None:
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    identifier, crc = value >> CRC_BITS, value & 0xFFFFFFFF
    return identifier if _crc(identifier) == crc else None


def chase_decode(soft: np.ndarray) -> int | None:
    """CRC-checked decoding of soft bits (sign = bit) that also tries flipping up to two of
    the least certain bits: 22 candidates against a 32-bit CRC, about 5e-9 per decode."""
    bits = (soft > 0).astype(np.int8)
    weakest = np.argsort(np.abs(soft))[:CHASE_BITS]
    candidates = [()] + [(i,) for i in weakest] + list(combinations(weakest, 2))
    for flips in candidates:
        trial = bits.copy()
        trial[list(flips)] ^= 1
        identifier = decode_bits(trial)
        if identifier is not None:
            return identifier
    return None
