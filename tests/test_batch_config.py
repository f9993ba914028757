"""`headshot batch` without a cluster: the batch file's checks, the keys that decide what a re-run
redoes, the refusals (resources no node offers, a local store across machines, outputs not
shared) and the generated option docs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from headshot.batch.config import BatchConfig, load_batch
from headshot.batch.runner import check_feasible, plan_subject, probe_verdict
from headshot.batch.store import check_store_for_cluster
from headshot.batch.tasks import SubjectSurvey
from headshot.config_docs import sync_markdown_options
from headshot.errors import HeadshotError
from tests.fault_support import assert_one_line_error


def _write(tmp_path: Path, **batch) -> Path:
    (tmp_path / "in" / "ada").mkdir(parents=True, exist_ok=True)
    data = {"base_model": "sd15", "subjects": [{"name": "ada", "photos": "in/ada"}], **batch}
    path = tmp_path / "batch.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_bad_field_in_one_subject_is_one_line_naming_file_and_field(tmp_path, run_cli):
    subjects = [
        {"name": "ada", "photos": "in/ada"},
        {"name": "bob", "photos": "in/bob", "finetune": {"stepz": 3}},
    ]
    path = _write(tmp_path, subjects=subjects)
    result = run_cli("batch", path)
    line = assert_one_line_error(result.err, str(path), "subjects[1].finetune.stepz")
    assert result.code == 1 and "unknown field" in line

    path = _write(tmp_path, finetune={"steps": "many"})
    line = assert_one_line_error(run_cli("batch", path).err, "field 'finetune.steps'")
    assert "expected an integer" in line
    path = _write(tmp_path, prepare={"photos": "/elsewhere"})
    assert "set by the batch (subjects[].photos)" in assert_one_line_error(run_cli("batch", path).err)
    path = _write(tmp_path, resources={"finetune": {"gpus": 1.5}})
    assert "resources.finetune.gpus" in assert_one_line_error(run_cli("batch", path).err)
    path = _write(tmp_path, subjects=[{"name": "ada", "photos": "a"}, {"name": "ADA", "photos": "b"}])
    assert "subject 'ADA' is listed twice" in assert_one_line_error(run_cli("batch", path).err)
    assert "batch file not found" in assert_one_line_error(run_cli("batch", tmp_path / "none.yaml").err)


def test_an_address_nothing_answers_on_is_one_line_at_once(tmp_path, run_cli):
    path = _write(tmp_path)
    line = assert_one_line_error(
        run_cli("batch", path, "--address", "127.0.0.1:1").err, "--address 127.0.0.1:1"
    )
    assert "no Ray cluster answers there" in line
    assert "expected auto, HOST:PORT" in assert_one_line_error(
        run_cli("batch", path, "--address", "nowhere").err
    )


def test_relative_paths_are_the_batch_files_and_overrides_merge_over_the_shared_block(tmp_path):
    path = _write(
        tmp_path,
        finetune={"steps": 100, "rank": 8},
        subjects=[{"name": "ada", "photos": "in/ada", "finetune": {"steps": 200}}],
    )
    batch = load_batch(path)
    entry = batch.subjects[0]
    assert entry.photos == tmp_path / "in" / "ada" and batch.outputs == tmp_path / "outputs"
    assert batch.stage_options(entry, "finetune") == {"steps": 200, "rank": 8}
    assert load_batch(path, outputs=Path("elsewhere")).outputs == Path("elsewhere").absolute()


def test_a_changed_setting_changes_its_stage_and_later_keys_only():
    def keys(finetune: dict, photos_sha256: str = "p1") -> list[str]:
        batch = BatchConfig(subjects=[{"name": "ada", "photos": "/in/ada"}], finetune=finetune)
        return [p.key for p in plan_subject(batch, batch.subjects[0], SubjectSurvey(photos_sha256), {})]

    base = keys({"steps": 10})
    assert keys({"steps": 10}) == base
    changed = keys({"steps": 12})
    assert changed[0] == base[0] and all(a != b for a, b in zip(changed[1:], base[1:]))
    assert all(a != b for a, b in zip(keys({"steps": 10}, "p2"), base))  # new photos: everything


def test_finished_stages_are_skipped_only_as_a_prefix_with_their_outputs_in_place():
    batch = BatchConfig(subjects=[{"name": "ada", "photos": "/in/ada"}])
    entry = batch.subjects[0]
    keys = {p.stage: p.key for p in plan_subject(batch, entry, SubjectSurvey("p"), {})}
    present = dict.fromkeys(keys, True)
    plan = plan_subject(batch, entry, SubjectSurvey("p", dict(keys), present), {})
    assert [p.finished for p in plan] == [True] * 4
    plan = plan_subject(batch, entry, SubjectSurvey("p", dict(keys), {**present, "finetune": False}), {})
    assert [p.finished for p in plan] == [True, False, False, False]


def test_a_stage_no_node_can_run_is_refused_at_the_start():
    batch = BatchConfig(subjects=[{"name": "ada", "photos": "/in"}], resources={"finetune": {"gpus": 1}})
    nodes = [{"Resources": {"CPU": 16.0, "memory": 1e11}}]
    with pytest.raises(HeadshotError) as refused:
        check_feasible(batch, nodes, "batch.yaml")
    assert "batch.yaml: field 'resources.finetune': asks for CPU 1, GPU 1" in str(refused.value)
    assert "nodes: CPU 16, GPU 0" in str(refused.value)
    check_feasible(batch, [{"Resources": {"CPU": 4.0, "GPU": 1.0}}], "batch.yaml")


def test_a_custom_resource_no_node_has_is_named_with_what_each_node_offers():
    resources = {"finetune": {"gpus": 1, "custom": {"a100": 1}, "memory_gb": 64}}
    batch = BatchConfig(subjects=[{"name": "ada", "photos": "/in"}], resources=resources)
    nodes = [{"Resources": {"CPU": 8.0, "GPU": 1.0, "memory": 2.0**36}}, {"Resources": {"CPU": 4.0}}]
    with pytest.raises(HeadshotError) as refused:
        check_feasible(batch, nodes, "batch.yaml")
    message = str(refused.value)
    assert "asks for CPU 1, GPU 1, a100 1, memory 64 GiB" in message
    assert "nodes: CPU 8, GPU 1, a100 0, memory 64 GiB; CPU 4, GPU 0, a100 0, memory 0 GiB" in message


def test_a_local_store_is_refused_on_several_machines_with_the_reason():
    check_store_for_cluster("/shared/outputs/manifest-store", hosts=1, source="b.yaml")
    check_store_for_cluster("postgresql://studio@db/headshot", hosts=3, source="b.yaml")
    try:
        check_store_for_cluster("/shared/outputs/manifest-store", hosts=3, source="b.yaml")
        raise AssertionError("not refused")
    except HeadshotError as exc:
        assert "b.yaml: field 'manifest_store': the cluster spans 3 machines" in str(exc)
        assert "PostgreSQL URL" in str(exc)


def test_outputs_not_shared_between_nodes_are_refused_naming_the_node():
    written = [{"node": "aaaa" * 8, "ip": "10.0.0.1"}, {"node": "bbbb" * 8, "ip": "10.0.0.2"}]
    seen = [{**written[0], "missing": []}, {**written[1], "missing": ["aaaa" * 8]}]
    verdict = probe_verdict("/data/out", written, seen)
    assert verdict.startswith("/data/out: not shared between the nodes: node bbbbbbbb (10.0.0.2)")
    assert "aaaaaaaa" in verdict
    assert probe_verdict("/data/out", written, [{**w, "missing": []} for w in written]) is None
    unwritable = [{**written[0], "error": "cannot write /data/out/.batch-probe-x (Read-only file system)"}]
    assert "Read-only file system" in probe_verdict("/data/out", unwritable, [])


def test_docs_option_table_is_generated_from_the_config_model():
    page = Path(__file__).resolve().parent.parent / "docs" / "batch.md"
    text = page.read_text()
    assert sync_markdown_options(BatchConfig, text) == text, "run: python tools/sync_config_docs.py"
    for name, field in BatchConfig.model_fields.items():
        assert f"`{name}" in text and field.description in text


def test_registering_the_command_imports_no_ray_torch_or_diffusers():
    code = (
        "import sys, headshot.batch.command; print(sorted({'ray', 'torch', 'diffusers'} & set(sys.modules)))"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert found.stdout.strip() == "[]", found.stdout + found.stderr


def test_a_database_store_reaches_generate_and_its_headshots_are_signed_into_it(tmp_path):
    """A batch's PostgreSQL (or any database) URL is generate's `store`; the signer then writes the
    manifest entry into that repository, not the default file under the outputs root."""
    from PIL import Image

    from headshot.batch.store import generate_options
    from headshot.pipelines.delivery import load_signer
    from headshot.signing.store import ManifestStore

    url = "postgresql+psycopg://studio@db.example/headshot"
    assert generate_options(url, None, tmp_path) == {"store": url}
    shared = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    signer = load_signer(None, tmp_path / "outputs", shared)
    signer.sign(Image.new("RGB", (256, 256), (120, 110, 100)), tmp_path / "a.jpg", None)
    assert ManifestStore(shared).count() == 1
    assert not (tmp_path / "outputs" / "manifest-store" / "manifests.sqlite").exists()
