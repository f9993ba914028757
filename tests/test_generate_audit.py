"""Artifact-aware delivery on real faces: the held-out subject photo and manipulated copies of
it stand in for candidates; a candidate with a flagged artifact is not delivered while a clean
one is, index.json says why, and the combined score orders candidates as documented."""

from __future__ import annotations

import copy
import json

import pytest
from audit_support import manipulated, prepared

from headshot.analysis.audit import AuditConfig
from headshot.analysis.likeness import SubjectIdentity
from headshot.dataset_record import read_dataset
from headshot.pipelines import delivery, ranking
from headshot.pipelines.generate_config import RankingOptions
from headshot.records import atomic_save_image
from headshot.samples import make_sample_selfies
from headshot.signing import commitments
from headshot.signing.api import verify_file

pytestmark = pytest.mark.slow  # minutes on 2 cores: left out of `make test-fast`

HELD_OUT = "hopper_05_rotate_right"  # not in the reference: the audit judges a photo it never saw
FLAW = {"smooth_skin": "plastic_skin", "earring": "earring_asymmetry", "warp_background": "warped_background"}


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("subject")
    selfies = root / "selfies"
    make_sample_selfies(selfies)
    held_out = Image.open(selfies / f"{HELD_OUT}.jpg").convert("RGB")
    (selfies / f"{HELD_OUT}.jpg").unlink()
    dataset_folder = prepared(selfies, root / "outputs")
    identity = SubjectIdentity.from_dataset(read_dataset(dataset_folder))
    auditor = ranking.Auditor(dataset_folder, AuditConfig())
    images = {"clean": held_out} | {name: manipulated(held_out, name, 1.0) for name in FLAW}
    candidates = {}
    for template in ("studio", "flawed-only"):
        for seed, (name, image) in enumerate(images.items()):
            if template == "flawed-only" and name == "clean":
                continue
            render = f"renders/{template}/{name}.png"
            atomic_save_image(root / render, image)
            candidate = ranking.Candidate(
                key=f"{template}/{name}", template=template, variant={}, seed=seed, render=render, sidecar={}
            )
            ranking.score_candidate(candidate, image, identity, RankingOptions(), auditor)
            candidates[candidate.key] = candidate
    assert auditor.note == "on"
    return root, candidates


def _choose(scored, **options) -> dict[str, ranking.Candidate]:
    candidates = copy.deepcopy(scored[1])
    ranking.choose(list(candidates.values()), RankingOptions(**options))
    return candidates


def test_every_candidate_is_audited_and_each_flaw_raises_its_flag(scored):
    candidates = scored[1]
    assert candidates["studio/clean"].audit["flags"] == []
    for name, flag in FLAW.items():
        audit = candidates[f"studio/{name}"].audit
        assert audit["status"] == "ok" and audit["flags"] == [flag], (name, audit)
        assert audit["artifact_score"] > candidates["studio/clean"].audit["artifact_score"] + 3


def test_flagged_candidates_are_not_delivered_while_a_clean_one_passes(scored):
    chosen = _choose(scored, top_k=2)
    assert chosen["studio/clean"].selected and chosen["studio/clean"].rank == 1
    for name, flag in FLAW.items():
        candidate = chosen[f"studio/{name}"]
        assert not candidate.selected and candidate.dropped == "artifact_flagged"
        assert flag in candidate.as_record()["reason"]
    # A template whose every candidate is flagged still delivers its best (the fallback policy)...
    flawed = [c for c in chosen.values() if c.template == "flawed-only"]
    assert sum(c.selected for c in flawed) == 2
    # ...unless flagged candidates are never delivered.
    never = _choose(scored, top_k=2, flagged="never")
    assert [c.key for c in never.values() if c.selected] == ["studio/clean"]
    assert never["flawed-only/earring"].dropped == "artifact_never_delivered"


def test_index_json_gives_the_reason_and_the_audit_of_each_candidate(scored):
    root, _ = scored
    chosen = _choose(scored, top_k=2)
    index = delivery.write_index(root / "headshots", list(chosen.values()), {"format": 1})
    records = {c["key"]: c for c in json.loads(index.read_text())["candidates"]}
    smooth = records["studio/smooth_skin"]
    assert smooth["dropped"] == "artifact_flagged" and smooth["reason"].startswith("the audit flagged")
    assert "plastic_skin (skin_texture z -" in smooth["reason"]
    assert smooth["audit"]["flags"] == ["plastic_skin"] and smooth["audit"]["z"]["skin_texture"] < -3
    assert records["studio/clean"]["score"] < smooth["score"]


def test_the_combined_score_orders_candidates_as_documented(scored):
    weight = 0.5
    chosen = _choose(scored, top_k=9, flagged="demote", artifact_weight=weight)
    studio = [c for c in chosen.values() if c.template == "studio"]
    for candidate in studio:
        expected = candidate.likeness["relative"] + weight * candidate.audit["artifact_score"]
        assert candidate.score == pytest.approx(expected)
        assert candidate.selected  # demote: flags only lower the score
    by_rank = sorted(studio, key=lambda c: c.rank)
    assert [c.score for c in by_rank] == sorted(c.score for c in studio)
    assert by_rank[0].key == "studio/clean"
    # With no weight on artifacts, likeness alone decides (the flawed copies may then win).
    likeness_only = _choose(scored, top_k=9, flagged="demote", artifact_weight=0.0)
    ranks = sorted((c for c in likeness_only.values() if c.template == "studio"), key=lambda c: c.rank)
    assert [c.likeness["relative"] for c in ranks] == sorted(c.likeness["relative"] for c in ranks)


def test_delivered_headshots_carry_their_check_results_and_photo_commitments(scored, run_cli):
    """The flagged candidate the fallback policy delivers says so in its signed manifest."""
    root, _ = scored
    chosen = _choose(scored, top_k=1)
    for candidate in chosen.values():
        candidate.sidecar = {"base_model": "sd15", "base_model_sha256": "b" * 64, "lora_sha256": "c" * 64}
    signer = delivery.load_signer(None, root / "outputs")
    dataset = read_dataset(root / "outputs" / "hopper" / "dataset")
    secret = commitments.load_or_create_secret(commitments.secret_path(root / "outputs" / "hopper"))
    provenance = delivery.Provenance(
        sorted(p.sha256 for p in dataset.accepted), secret, RankingOptions(top_k=1)
    )
    headshots = root / "delivered"
    delivered = {
        c.key: c for c in delivery.deliver(list(chosen.values()), root, headshots, signer, None, provenance)
    }
    assert set(delivered) == {"studio/clean", next(k for k in delivered if k.startswith("flawed-only/"))}
    clean = verify_file(root / delivered["studio/clean"].delivered)
    assert clean.state == "Valid" and clean.ai_generated
    assert clean.checks["audit"]["flags"] == [] and clean.checks["audit"]["policy"] == "fallback"
    likeness = clean.checks["likeness"]
    assert likeness["relative_distance"] == chosen["studio/clean"].likeness["relative"]
    assert likeness["threshold"] == 1.5
    flawed = next(c for k, c in delivered.items() if k.startswith("flawed-only/"))
    flawed_checks = verify_file(root / flawed.delivered).checks["audit"]
    assert flawed_checks["flags"] == flawed.audit["flags"] and flawed_checks["flags"]
    # The studio proves which photos trained it; the held-out photo was not one of them.
    training_photo = (
        root / "selfies" / next(p.source for p in dataset.accepted if not p.source.startswith(HELD_OUT))
    )
    subject = root / "outputs" / "hopper"
    assert run_cli("check-photo", root / flawed.delivered, training_photo, "--subject", subject).code == 0
    held_out = root / "renders" / "studio" / "clean.png"  # the held-out photo, never trained on
    assert run_cli("check-photo", root / flawed.delivered, held_out, "--subject", subject).code == 1
