"""Likeness: how far a face's identity embedding is from the subject's own photos.

A raw embedding distance means little on its own: some people's photos vary more
than others'. So every distance is judged against the spread among the subject's
own accepted photos (their distances to the set's centroid).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from headshot.analysis.faces import SAME_PERSON_DISTANCE


@dataclass(frozen=True)
class SubjectIdentity:
    centroid: np.ndarray  # (128,)
    embeddings: np.ndarray  # (n, 128), the subject's real photos
    spread_mean: float  # mean distance of the real photos to the centroid
    spread_max: float

    @classmethod
    def from_embeddings(cls, embeddings) -> SubjectIdentity:
        stack = np.asarray(list(embeddings), dtype=np.float32)
        if stack.ndim != 2 or len(stack) == 0:
            raise ValueError("need at least one identity embedding")
        centroid = stack.mean(axis=0)
        distances = np.linalg.norm(stack - centroid, axis=1)
        return cls(centroid, stack, float(distances.mean()), float(distances.max()))

    @classmethod
    def from_dataset(cls, record) -> SubjectIdentity:
        """From a `DatasetRecord`: the embeddings of its accepted photos."""
        return cls.from_embeddings(p.embedding for p in record.accepted if p.embedding is not None)

    def score(self, embedding) -> Likeness:
        vector = np.asarray(embedding, dtype=np.float32)
        distance = float(np.linalg.norm(vector - self.centroid))
        nearest = float(np.linalg.norm(self.embeddings - vector, axis=1).min())
        # Relative distance: 1.0 means "as far from the centroid as the subject's
        # own most unusual photo". A tiny floor keeps a one-photo set meaningful.
        relative = distance / max(self.spread_max, 0.05)
        return Likeness(distance=distance, relative=relative, nearest_photo=nearest)


@dataclass(frozen=True)
class Likeness:
    distance: float  # to the centroid of the subject's photos (dlib units)
    relative: float  # distance / the spread of the subject's own photos
    nearest_photo: float  # to the closest single real photo (copy detection)

    @property
    def same_person(self) -> bool:
        return self.distance < SAME_PERSON_DISTANCE
