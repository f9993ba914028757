"""`headshot demo`: every stage, chained folder to folder in one process, as a user runs it."""

from __future__ import annotations

import csv
import json

from headshot.signing.api import verify_file


def test_demo_runs_every_stage_and_delivers_disclosed_headshots(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("HEADSHOT_CACHE", str(tmp_path / "cache"))  # class images, weight hashes
    outputs = tmp_path / "outputs"
    result = run_cli("demo", "--outputs", outputs)
    assert result.code == 0, result.err
    subject = outputs / "demo"

    dataset = json.loads((subject / "dataset" / "dataset.json").read_text())
    verdicts = {photo["source"]: photo["reason_code"] for photo in dataset["photos"]}
    assert sum(code is None for code in verdicts.values()) == 7  # one photo is held out
    assert "hopper_05_rotate_right.jpg" not in verdicts
    assert verdicts["hopper_blurred.jpg"] == "blurred"
    assert verdicts["other_person_astronaut.jpg"] == "many_faces"

    assert list((tmp_path / "cache" / "class_images").glob("*/*.png")), "prior images cached there"
    training = json.loads((subject / "lora" / "training.json").read_text())
    assert (subject / "lora" / training["lora_file"]).is_file() and training["steps"] > 0

    index = json.loads((subject / "headshots" / "index.json").read_text())
    delivered = sorted(subject / c["delivered"] for c in index["candidates"] if c["delivered"])
    assert delivered and delivered == sorted((subject / "headshots").glob("*.jpg"))
    anchors = [outputs / "keys" / "dev-ca.pem"]
    for headshot in delivered:
        verification = verify_file(headshot, trust_anchors=anchors)
        assert verification.state == "Trusted" and verification.ai_generated, headshot

    with open(subject / "audit" / "metrics.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == len(delivered)
    assert "<img" in (subject / "audit" / "report.html").read_text()
    study = json.loads((subject / "audit" / "study" / "study.json").read_text())
    assert "<img" in (subject / "audit" / "study" / "report.html").read_text()
    # Every checkpoint finetune wrote is studied; the one at the last step is the final LoRA.
    written = sorted(p.name for p in (subject / "lora" / "checkpoints").iterdir())
    assert written == ["step-000040", "step-000060"] and study["lora"]["skipped_checkpoints"] == []
    studied = [(c["label"], c["step"]) for c in study["lora"]["checkpoints"]]
    assert studied == [("step-000040", 40), ("final", training["steps"])] and training["steps"] == 60
    assert study["sweep"]["knobs"]["checkpoint"] == ["step-000040", "final"]
    _assert_showcase_refuses_the_flawed_copies(subject)
    _assert_no_local_paths_or_names(outputs)


def _assert_showcase_refuses_the_flawed_copies(subject):
    """Issue 15: the checks fire on a real face: manipulated copies of the held-out photo."""
    showcase = json.loads((subject / "audit" / "showcase" / "index.json").read_text())
    exhibits = {e["exhibit"]: e for e in showcase["exhibits"]}
    assert showcase["audit"] == "on" and showcase["held_out_photo"] == "hopper_05_rotate_right.jpg"
    assert exhibits["unchanged"]["would_deliver"] and exhibits["unchanged"]["audit"]["flags"] == []
    for name, flag in {
        "smooth_skin": "plastic_skin",
        "earring": "earring_asymmetry",
        "warp_background": "warped_background",
    }.items():
        assert not exhibits[name]["would_deliver"] and exhibits[name]["dropped"] == "artifact_flagged"
        assert flag in exhibits[name]["audit"]["flags"] and flag in exhibits[name]["reason"]
    assert (
        not exhibits["shift_iris"]["would_deliver"]
        and "gaze_off_camera" in exhibits["shift_iris"]["audit"]["flags"]
    )
    assert exhibits["other_person"]["dropped"] == "likeness_too_far"
    page = (subject / "audit" / "showcase" / "report.html").read_text()
    assert "These are not generated headshots" in page and page.count("refused: ") == 5


def _readable_text(path) -> str:
    """What a reader of the file sees: a manifest-store entry (binary JUMBF) as c2pa-python
    reads it (matching a short host name against signature bytes would be noise), other
    records as text."""
    if path.suffix == ".c2pa":
        import io

        import c2pa

        return c2pa.Reader("application/c2pa", io.BytesIO(path.read_bytes())).json()
    if path.suffix == ".sqlite":  # the manifest repository: every row, manifests read as above
        import contextlib
        import io
        import sqlite3

        import c2pa

        with contextlib.closing(sqlite3.connect(path)) as database:
            rows = database.execute(
                "SELECT summary, manifest, pending_host, pending_file FROM headshot_manifests"
            ).fetchall()
        return "\n".join(
            f"{summary} {host} {file} "
            + (c2pa.Reader("application/c2pa", io.BytesIO(manifest)).json() if manifest else "")
            for summary, manifest, host, file in rows
        )
    return path.read_bytes().decode("utf-8", errors="replace")


def _assert_no_local_paths_or_names(outputs):
    """Issue 11: no record the demo writes holds an absolute path, the user name or the host
    name (index.json, training.json, state.json, renders/*.json, study.json and report.html
    did); no file name carries the host name (TensorBoard's event file did)."""
    import getpass
    import re
    import socket

    user, host = getpass.getuser(), socket.gethostname()
    absolute = re.compile(r"(?<![\w.:/])/(tmp|home|root|Users|var|private|mnt|opt|srv)/")
    written = [p for p in outputs.rglob("*") if p.is_file() and "models" not in p.relative_to(outputs).parts]
    kinds = (".json", ".html", ".csv", ".txt", ".yaml", ".c2pa", ".sqlite")
    records = [p for p in written if p.suffix in kinds]
    assert len(records) > 20
    for path in records:
        text = _readable_text(path)
        text = re.sub(r"data:[\w/+;=.,-]+", "", text)  # embedded images are pixels, not names
        where = path.relative_to(outputs)
        assert str(outputs) not in text and str(outputs.resolve()) not in text, f"{where}: absolute path"
        assert not absolute.search(text), f"{where}: absolute path {absolute.search(text).group()!r}"
        assert not re.search(rf"\b{re.escape(user)}\b", text), f"{where}: user name {user!r}"
        assert not re.search(rf"\b{re.escape(host)}\b", text), f"{where}: host name {host!r}"
    for path in written:
        assert host not in path.name and user not in path.name.split("."), path
