"""Ranking on real faces, delivery bookkeeping, index.json, and the 2-process split."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from headshot.analysis.likeness import SubjectIdentity
from headshot.errors import HeadshotError
from headshot.pipelines import delivery, ranking
from headshot.pipelines.generate_config import RankingOptions
from headshot.records import atomic_save_image
from headshot.samples import astronaut, grace_hopper
from headshot.signing.api import verify_file
from tests.generate_support import (
    generate_args,
    hopper_photos,
    subject_copy,
    subprocess_env,
    write_template,
)

pytestmark = pytest.mark.slow  # minutes on 2 cores: left out of `make test-fast`


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """Real photos as candidates: the subject (an exact training photo and changed views),
    another person, and noise; scored against the subject's three training photos."""
    root = tmp_path_factory.mktemp("ranked")
    hopper = grace_hopper()
    images = {
        "copy": hopper,
        "rotated": hopper.rotate(8),
        "brighter": ImageEnhance.Brightness(hopper).enhance(1.3),
        "other-person": astronaut(),
        "noise": Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)),
    }
    identity = SubjectIdentity.from_embeddings(e for _, e in hopper_photos())
    options = RankingOptions(copy_distance=0.05)
    candidates = []
    for seed, (name, image) in enumerate(images.items()):
        atomic_save_image(root / "renders" / "scene" / f"{name}.png", image)
        candidate = ranking.Candidate(
            key=f"scene/{name}",
            template="scene",
            variant={},
            seed=seed,
            render=f"renders/scene/{name}.png",
            sidecar={"base_model": "/models/tiny", "base_model_sha256": "b" * 64, "lora_sha256": "c" * 64},
        )
        ranking.score_candidate(candidate, image, identity, options)
        candidates.append(candidate)
    return root, {c.key.split("/")[1]: c for c in candidates}


def _choose(scored, **options) -> dict[str, ranking.Candidate]:
    import copy

    candidates = copy.deepcopy(scored[1])
    ranking.choose(list(candidates.values()), RankingOptions(copy_distance=0.05, **options))
    return candidates


def test_likeness_is_judged_against_the_subjects_own_spread(scored):
    candidates = scored[1]
    assert candidates["noise"].faces == 0 and candidates["noise"].likeness is None
    assert candidates["copy"].likeness["nearest_photo"] < 0.01 and candidates["copy"].copy_suspect
    assert not candidates["rotated"].copy_suspect and candidates["rotated"].likeness["same_person"]
    assert (
        candidates["other-person"].likeness["relative"] > 3
        and not candidates["other-person"].likeness["same_person"]
    )


def test_top_k_per_template_with_a_reason_for_every_dropped_candidate(scored):
    chosen = _choose(scored, top_k=2, drop_copies=True)
    assert [c.key for c in chosen.values() if c.selected] == ["scene/rotated", "scene/brighter"]
    assert (chosen["rotated"].rank, chosen["brighter"].rank) == (1, 2)
    assert chosen["copy"].dropped == "copy_of_training_photo"
    assert chosen["other-person"].dropped == "likeness_too_far"
    assert chosen["noise"].dropped == "no_face"
    record = chosen["other-person"].as_record()
    assert record["reason"].startswith("the face is too far") and "1.5" in record["reason"]

    flagged_only = _choose(scored, top_k=1)  # copies flagged but kept by default; best first
    assert flagged_only["copy"].selected and flagged_only["copy"].as_record()["copy_suspect"]
    assert flagged_only["rotated"].dropped == "rank_beyond_top_k" and flagged_only["rotated"].rank == 2

    faceless_allowed = _choose(scored, top_k=5, require_face=False, max_relative_distance=None)
    assert faceless_allowed["noise"].selected and faceless_allowed["noise"].rank == 5  # faces rank first


def test_a_failed_signing_leaves_the_candidate_in_renders_and_says_why(scored):
    root, _ = scored
    chosen = _choose(scored, top_k=2)

    def refuse(image, destination, info):
        assert info.base_model == "tiny" and info.template == "scene"  # a path becomes its folder name
        raise HeadshotError("signing key unreadable")

    headshots = root / "headshots"
    failing = delivery.Signer(sign=refuse, verify=verify_file)
    delivered = delivery.deliver(
        list(chosen.values()),
        root,
        headshots,
        failing,
        None,
        delivery.Provenance(["a" * 64], None, RankingOptions()),
    )
    index = delivery.write_index(headshots, list(chosen.values()), {"format": 1})
    assert delivered == [] and [p.name for p in headshots.iterdir()] == ["index.json"]
    records = {c["key"]: c for c in json.loads(index.read_text())["candidates"]}
    assert records["scene/copy"]["dropped"] == "signing_failed"
    assert records["scene/copy"]["reason"].endswith("signing key unreadable")
    assert (root / records["scene/copy"]["render"]).is_file()
    assert json.loads(index.read_text())["counts"] == {
        "candidates": 5,
        "delivered": 0,
        "signing_failed": 2,
        "likeness_too_far": 1,
        "no_face": 1,
        "rank_beyond_top_k": 1,
    }


def test_a_signer_that_writes_an_unsigned_file_is_caught(scored):
    """Belt and braces: every signed file is read back, and one that does not verify
    as AI-generated is removed from headshots/ before index.json is written."""
    root, _ = scored
    chosen = _choose(scored, top_k=1)

    def write_unsigned(image, destination, info):
        atomic_save_image(destination, image)  # a JPEG with no manifest, XMP or watermark

    headshots = root / "unsigned-headshots"
    broken = delivery.Signer(sign=write_unsigned, verify=verify_file)
    assert (
        delivery.deliver(
            list(chosen.values()),
            root,
            headshots,
            broken,
            None,
            delivery.Provenance([], None, RankingOptions()),
        )
        == []
    )
    assert list(headshots.iterdir()) == []
    assert chosen["copy"].dropped == "signing_failed" and "did not verify" in chosen["copy"].detail


def _check_nothing_unsigned(layout) -> dict:
    index = json.loads((layout.headshots / "index.json").read_text())
    files = {p.name for p in layout.headshots.iterdir()} - {"index.json"}
    delivered = {Path(c["delivered"]).name for c in index["candidates"] if c["delivered"]}
    assert files == delivered  # headshots/ holds exactly what index.json says was signed
    for name in files:
        verification = verify_file(layout.headshots / name)
        assert str(verification.state) in ("Valid", "Trusted") and verification.ai_generated
    return index


def test_tiny_sdxl_run_says_honestly_that_no_face_was_found(tmp_path, tmp_path_factory, tiny_sdxl, run_cli):
    layout = subject_copy(tmp_path, tmp_path_factory.getbasetemp() / "pristine", tiny_sdxl, "sdxl")
    template = write_template(tmp_path, "scene")
    # Nothing delivered is a failure a script can see (issue 25), the reason counted.
    result = run_cli(*generate_args(layout, template, seeds=2, allow_empty=False))
    assert result.code == 1, result.err
    assert "nothing delivered: 4 of 4: no face was found in the image" in result.err
    assert not layout.headshots.exists()  # nothing swapped in; the renders stay
    assert len(list((layout.renders / "scene").glob("*.png"))) == 4
    # Allowed explicitly: exit 0 and an index that says why each candidate was dropped.
    result = run_cli(*generate_args(layout, template, seeds=2, allow_empty=True))
    assert result.code == 0, result.err
    index = _check_nothing_unsigned(layout)
    assert [c["dropped"] for c in index["candidates"]] == ["no_face"] * 4
    assert index["counts"] == {"candidates": 4, "delivered": 0, "no_face": 4}
    assert "0 with a face" in result.err


def test_demo_relaxation_delivers_only_signed_files(tmp_path, tmp_path_factory, tiny_sd15, run_cli):
    layout = subject_copy(tmp_path, tmp_path_factory.getbasetemp() / "pristine", tiny_sd15, "sd15")
    template = write_template(tmp_path, "scene")
    relaxed = tmp_path / "relaxed.yaml"
    relaxed.write_text("ranking: {top_k: 1, require_face: false, max_relative_distance: null}\n")
    result = run_cli(*generate_args(layout, template, seeds=2, top_k=2, config=relaxed))
    assert result.code == 0, result.err
    assert _check_nothing_unsigned(layout)["counts"]["delivered"] == 2
    assert (tmp_path / "outputs" / "keys").is_dir()  # development credentials under the outputs root

    # A re-run that delivers fewer removes the headshot no longer chosen (and nothing else).
    (layout.headshots / "notes.txt").write_text("mine")
    result = run_cli(*generate_args(layout, template, seeds=2, config=relaxed))
    assert result.code == 0, result.err
    (layout.headshots / "notes.txt").unlink()
    index = _check_nothing_unsigned(layout)
    assert index["counts"]["candidates"] == 4 and all(not c["face_found"] for c in index["candidates"])
    assert {c["rank"] for c in index["candidates"]} == {1, 2, 3, 4}
    best = next(c for c in index["candidates"] if c["rank"] == 1)
    assert best["delivered"] == "headshots/scene-navy-0.jpg" and index["counts"]["delivered"] == 1
    assert best["signature"]["verification"] in ("Valid", "Trusted") and best["signature"]["watermark_id"]


def test_two_processes_split_the_grid_without_overlap(tmp_path, tmp_path_factory, tiny_sd15):
    layout = subject_copy(tmp_path, tmp_path_factory.getbasetemp() / "pristine", tiny_sd15, "sd15")
    template = write_template(tmp_path, "scene", variations={"colour": ["navy", "white", "black"]})
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    launch += [
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        "0",
    ]
    args = generate_args(layout, template, seeds=3, batch_size=2)
    result = subprocess.run(
        [*launch, "-m", "headshot", *args], env=subprocess_env(), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "split over 2 processes" in result.stderr
    sidecars = sorted((layout.renders / "scene").glob("*.json"))
    assert len(sidecars) == 9 and len(list((layout.renders / "scene").glob("*.png"))) == 9
    grid = [f"{colour}-{seed}" for colour in ("navy", "white", "black") for seed in range(3)]
    by_process = {path.stem: json.loads(path.read_text())["process"] for path in sidecars}
    assert by_process == {stem: number % 2 for number, stem in enumerate(grid)}
    assert result.stderr.count("ranked 9 candidates") == 1  # ranking and delivery once, on the main process
    assert json.loads((layout.headshots / "index.json").read_text())["counts"]["candidates"] == 9


def test_headshot_run_stage_uses_the_demo_generate_config(tmp_path, tmp_path_factory, tiny_sd15):
    from headshot.config import configs_root
    from headshot.workflow import RunConfig, run_generate

    layout = subject_copy(tmp_path, tmp_path_factory.getbasetemp() / "pristine", tiny_sd15, "sd15")
    config = RunConfig(
        photos=tmp_path,
        subject="ada",
        base_model=str(tiny_sd15),
        outputs=layout.root.parent,
        generate_config=configs_root() / "demo" / "generate.yaml",
    )
    run_generate(config, layout)
    index = _check_nothing_unsigned(layout)
    assert index["counts"]["candidates"] == 4 * 3  # four demo templates x three variations x one seed
    assert {c["template"] for c in index["candidates"]} == {
        "studio-grey",
        "office-window",
        "outdoor-bokeh",
        "actor-tight",
    }
    winners = [c for c in index["candidates"] if c["rank"] == 1]
    assert len(winners) == 4 and all(c["delivered"] for c in winners) and index["counts"]["delivered"] == 4


def test_a_failed_re_sign_keeps_every_earlier_headshot_and_exits_1(
    tmp_path, tmp_path_factory, tiny_sd15, run_cli
):
    """Issue 11, case 1: signing that cannot happen (a missing certificate) used to leave only
    index.json in headshots/ and exit 0."""
    layout = subject_copy(tmp_path, tmp_path_factory.getbasetemp() / "pristine", tiny_sd15, "sd15")
    template = write_template(tmp_path, "scene")
    relaxed = tmp_path / "relaxed.yaml"
    ranking = "ranking: {top_k: 1, require_face: false, max_relative_distance: null}\n"
    relaxed.write_text(ranking)
    assert run_cli(*generate_args(layout, template, seeds=1, config=relaxed)).code == 0
    before = {p.name: p.read_bytes() for p in layout.headshots.iterdir()}
    assert len(before) == 2  # a signed headshot and index.json

    signing = tmp_path / "signing.yaml"
    signing.write_text(
        f"cert_chain: {tmp_path / 'missing-chain.pem'}\nprivate_key: {tmp_path / 'missing.key'}\n"
    )
    relaxed.write_text(f"signing_config: {signing}\n{ranking}")
    result = run_cli(*generate_args(layout, template, seeds=1, config=relaxed))
    assert result.code == 1 and "Traceback" not in result.err
    error = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "missing-chain.pem" in error[0] and "unchanged" in error[0]
    assert {p.name: p.read_bytes() for p in layout.headshots.iterdir()} == before
    assert not list(layout.root.glob(".headshots.*"))  # no staging left behind
    store = tmp_path / "outputs" / "manifest-store"
    assert not list(store.glob(".pending-*")) and not list(store.glob(".*.tmp"))
