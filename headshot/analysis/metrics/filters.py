"""Small image operations shared by the metric families (float32 arrays)."""

from __future__ import annotations

import cv2
import numpy as np


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT)


def gradients(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gx = cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
    gy = cv2.Sobel(image, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
    return gx, gy


def gradient_magnitude(image: np.ndarray, sigma: float) -> np.ndarray:
    gx, gy = gradients(blur(image, sigma))
    return np.sqrt(gx * gx + gy * gy)


def hessian(image: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    smooth = blur(image, sigma)
    gx, gy = gradients(smooth)
    gxx, gxy = gradients(gx)
    _, gyy = gradients(gy)
    return gxx, gxy, gyy


def masked_mean(values: np.ndarray, mask: np.ndarray) -> float:
    return float(values[mask].mean()) if mask.any() else float("nan")


def skin_like(log_luma: np.ndarray, region: np.ndarray, tolerance: float = 0.35) -> np.ndarray:
    """Pixels of a region whose brightness is close to the region's median: drops
    glasses frames, hair strands and deep shadows that fall inside a skin patch."""
    if not region.any():
        return region
    median = float(np.median(log_luma[region]))
    return region & (np.abs(log_luma - median) < tolerance)
