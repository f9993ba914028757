"""`headshot run` checks everything that can fail without training before any stage writes
(issue 25, defect 1): the base model can be had (a local file or folder, cached, or on the hub
for this user) and every stage config it names exists and validates. A hub failure says which
it is: no network / HF_HUB_OFFLINE, a gated repository, or no such repository.

The hub cannot be reached from the tests: its failures are huggingface_hub's own exception
classes, built here the way the hub client builds them from a response.
"""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest

from headshot.errors import HeadshotError
from tests.fault_support import assert_one_line_error, snapshot


def _old_subject(outputs: Path) -> Path:
    """A subject whose dataset, LoRA and headshots belong together (files stand in for them)."""
    subject = outputs / "ada"
    for name in ("dataset/dataset.json", "dataset/images/a.png", "lora/training.json", "headshots/a.jpg"):
        (subject / name).parent.mkdir(parents=True, exist_ok=True)
        (subject / name).write_text(f"old {name}")
    return subject


def test_a_model_that_cannot_be_had_stops_the_run_before_the_dataset_is_touched(
    run_cli, tmp_path, monkeypatch, sample_selfies
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    subject = _old_subject(tmp_path / "outputs")
    before = snapshot(subject)
    # Photos prepare would accept: only the model is missing.
    result = run_cli("run", sample_selfies, "-s", "ada", "-m", "sd15", "--outputs", tmp_path / "outputs")
    assert result.code == 1, result.err
    assert "Traceback" not in result.err
    assert "base model 'sd15' not found: 'stable-diffusion-v1-5/stable-diffusion-v1-5'" in result.err
    assert "HF_HUB_OFFLINE is set" in result.err
    assert snapshot(subject) == before
    assert sorted(p.name for p in subject.iterdir()) == ["dataset", "headshots", "lora"]  # no .busy


def test_stage_configs_are_checked_first_and_paths_read_from_the_run_config_folder(run_cli, tmp_path):
    subject = _old_subject(tmp_path / "outputs")
    before = snapshot(subject)
    (tmp_path / "photos").mkdir()
    folder = tmp_path / "configs"
    folder.mkdir()
    (folder / "weights.safetensors").write_bytes(b"")  # exists: all the run checks of a local file
    (folder / "model.yaml").write_text("source: configs/weights.safetensors\nfamily: sd15\n")
    (folder / "finetune.yaml").write_text("steps: 10\nstepz: 5\n")
    run_yaml = folder / "run.yaml"
    run_yaml.write_text(
        "photos: ../photos\nsubject: ada\noutputs: ../outputs\nfinetune_config: finetune.yaml\n"
        "base_model: weights.safetensors\n"
    )
    result = run_cli("run", "--config", run_yaml)  # from the repository: not the config's folder
    assert result.code == 1, result.err
    assert_one_line_error(result.err, str(folder / "finetune.yaml"), "stepz", "unknown field")
    assert snapshot(subject) == before

    (folder / "finetune.yaml").write_text("steps: 10\n")
    (folder / "generate.yaml").write_text("templates: [no-such-template]\n")
    with run_yaml.open("a") as handle:
        handle.write("generate_config: generate.yaml\n")
    result = run_cli("run", "--config", run_yaml)
    assert result.code == 1 and "no-such-template" in result.err, result.err
    assert snapshot(subject) == before


def _response(status: int, repo: str) -> httpx2.Response:
    request = httpx2.Request("GET", f"https://huggingface.co/api/models/{repo}/auth-check")
    return httpx2.Response(status, request=request)


def _describe(exc: BaseException | None, repo: str = "black-forest-labs/FLUX.1-dev") -> str:
    from headshot.models.hub_access import unavailable_error
    from headshot.models.model_spec import BaseModelSpec

    return str(unavailable_error(BaseModelSpec(source=repo), exc))


def test_hub_failures_are_told_apart():
    from huggingface_hub.errors import GatedRepoError, OfflineModeIsEnabled, RepositoryNotFoundError

    repo = "black-forest-labs/FLUX.1-dev"
    gated = _describe(GatedRepoError("Access to model is restricted.", response=_response(401, repo)))
    assert "is gated" in gated and "hf auth login" in gated and f"https://huggingface.co/{repo}" in gated
    assert "licence" in gated
    missing = _describe(RepositoryNotFoundError("Repository Not Found", response=_response(404, "no/such")))
    assert "no repository" in missing and "is gated" not in missing
    for offline in (None, OfflineModeIsEnabled("offline mode is enabled")):
        assert "HF_HUB_OFFLINE is set" in _describe(offline)
    no_network = _describe(httpx2.ConnectError("[Errno -3] Temporary failure in name resolution"))
    assert "cannot be reached (no network" in no_network and "cache" in no_network
    # diffusers wraps the hub's error in its own: the cause is found in the chain.
    try:
        try:
            raise GatedRepoError("restricted", response=_response(403, repo))
        except GatedRepoError as inner:
            raise OSError(f"Cannot load model {repo}") from inner
    except OSError as wrapped:
        assert "is gated" in _describe(wrapped)


def test_offline_and_not_cached_is_refused_before_any_download(monkeypatch):
    from headshot.models.hub_access import check_model_available
    from headshot.models.model_spec import resolve_base_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HeadshotError, match="flux.*HF_HUB_OFFLINE is set"):
        check_model_available(resolve_base_model("flux-dev"))
