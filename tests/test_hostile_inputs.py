"""Hostile and damaged input for every reader: one line naming the file and the limit, exit 1.

One table: which command reads the file, what is written into it, and what the one error
line must say. Each case also checks there is no traceback and nothing else is printed
after the error (a 50 MB file of unknown keys used to print 1.8 million lines).
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import pytest

from headshot.samples import grace_hopper
from tests.fault_support import assert_one_line_error

DEEP_YAML = "a: " + "[" * 5000 + "]" * 5000 + "\n"
DEEP_JSON = "[" * 100_000 + "]" * 100_000
LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
)
MANY_UNKNOWN = "".join(f"unknown_{n}: 1\n" for n in range(5000))


def _photo_folder(root: Path) -> Path:
    folder = root / "photos"
    folder.mkdir(exist_ok=True)
    grace_hopper().resize((96, 96)).save(folder / "one.png")
    return folder


def _generate(root: Path, config: Path) -> list:
    (root / "lora").mkdir(exist_ok=True)
    return ["generate", root / "lora", "--config", config]


def _finetune(root: Path, config: Path) -> list:
    return ["finetune", root / "dataset", "-m", "sd15", "--config", config]


def _template(root: Path, config: Path) -> list:
    (root / "lora").mkdir(exist_ok=True)
    return ["generate", root / "lora", "--template", config]


def _sign_info(root: Path, info: Path) -> list:
    (root / "a").mkdir(exist_ok=True)
    grace_hopper().resize((64, 64)).save(root / "a" / "x.png")
    return ["sign", root / "a" / "x.png", "--out", root / "D", "--info", info]


def _dataset_record(root: Path, record: Path) -> list:
    return ["finetune", record.parent, "-m", "sd15"]


def _training_record(root: Path, record: Path) -> list:
    return ["generate", record.parent, "--seeds", "1"]


def _model_index(root: Path, index: Path) -> list:
    return ["prepare", _photo_folder(root), "-s", "x", "-m", index.parent, "--outputs", root / "out"]


TEMPLATE = (
    "name: t\ndescription: d\nprompt: {framing: 'photo of {identifier} {class_noun} in {a}'}\nvariations:\n"
)

# (reader, file name, content, words the one error line must contain)
CASES = [
    ("config", _generate, "c.yaml", DEEP_YAML, ["nested deeper than 64 levels"]),
    ("config", _generate, "c.yaml", LAUGHS, ["YAML anchors", "not allowed"]),
    (
        "config",
        _generate,
        "c.yaml",
        "seeds: [1]\n" + "# padding\n" * 200_000,
        ["over the limit of 1,048,576"],
    ),
    ("config", _generate, "c.yaml", MANY_UNKNOWN, ["and 4,997 more errors, 4,997 of them unknown fields"]),
    ("config", _generate, "c.yaml", b"\xff\xfe\x00garbage", ["not UTF-8"]),
    (
        "config",
        _generate,
        "c.yaml",
        "seeds: [123456789012345678901234567890]\n",
        ["field 'seeds.0'", "4294967295"],
    ),
    ("config", _generate, "c.yaml", "seeds_per_template: 100000000\n", ["seeds_per_template", "1000"]),
    ("config", _generate, "c.yaml", "size: 1000000000\n", ["field 'size'", "4096"]),
    ("config", _generate, "c.yaml", "batch_size: 100000\n", ["field 'batch_size'"]),
    ("config", _finetune, "f.yaml", 'identifier: "sk\\x07s"\n', ["field 'identifier'", "control character"]),
    ("config", _finetune, "f.yaml", "steps: 10000000000\n", ["field 'steps'"]),
    ("template", _template, "t.yaml", TEMPLATE + "  a: ['" + "x" * 300 + "']\n", ["at most 64 characters"]),
    (
        "template",
        _template,
        "t.yaml",
        TEMPLATE.replace("{a}", "{a} {b} {c}")
        + "".join(f"  {v}: [{', '.join(f'{v}{n}' for n in range(30))}]\n" for v in "abc"),
        ["the grid reaches", "over the limit of 10,000"],
    ),
    ("--info", _sign_info, "info.json", DEEP_JSON, ["nested deeper than 64 levels"]),
    ("--info", _sign_info, "info.json", '{"seed": 1e999}', ["info.json"]),
    ("--info", _sign_info, "info.json", "[1, 2]", ["expected a JSON object"]),
    ("--info", _sign_info, "info.json", " " * (9 * 1024 * 1024), ["over the limit of 8,388,608"]),
    ("dataset.json", _dataset_record, "dataset/dataset.json", DEEP_JSON, ["nested deeper than"]),
    ("dataset.json", _dataset_record, "dataset/dataset.json", " " * (9 * 1024 * 1024), ["over the limit"]),
    ("training.json", _training_record, "lora/training.json", DEEP_JSON, ["nested deeper than"]),
    ("training.json", _training_record, "lora/training.json", '{"subject": "x"', ["not valid JSON"]),
    ("model_index.json", _model_index, "model/model_index.json", "garbage{", ["not valid JSON"]),
    ("model_index.json", _model_index, "model/model_index.json", '{"_class_name": [1]}', ["_class_name"]),
]


@pytest.mark.parametrize(
    ("reader", "command", "name", "content", "words"),
    CASES,
    ids=[f"{case[0]}-{number}" for number, case in enumerate(CASES)],
)
def test_hostile_file_is_one_line_naming_it(tmp_path, run_cli, reader, command, name, content, words):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    result = run_cli(*command(tmp_path, path))
    assert result.code == 1, result.err[-2000:]
    assert_one_line_error(result.err, str(path), *words)


def _gigapixel_png(path: Path, side: int = 60_000) -> None:
    """A PNG whose header claims side x side pixels (3.6 gigapixels) with no real pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")
    )


def test_verify_on_a_gigapixel_header_is_one_line(tmp_path, run_cli):
    image = tmp_path / "huge.png"
    _gigapixel_png(image)
    result = run_cli("verify", image)
    assert result.code == 1
    assert_one_line_error(result.err, str(image), "unreadable image")
    assert "huge.png: not a readable image" in result.out


def test_a_hostile_manifest_store_entry_is_not_trusted_and_not_a_crash(tmp_path, run_cli):
    """A hostile entry in an old folder store is skipped by the import, never trusted."""
    signing = f"dev_credentials: {tmp_path / 'keys'}\nmanifest_store: {tmp_path / 'store'}\n"
    (tmp_path / "signer.yaml").write_text(signing + f"store: {tmp_path / 'elsewhere.sqlite'}\n")
    (tmp_path / "reader.yaml").write_text(signing)
    grace_hopper().resize((128, 128)).save(tmp_path / "x.png")
    signed = run_cli(
        "sign", tmp_path / "x.png", "--out", tmp_path / "D", "--config", tmp_path / "signer.yaml"
    )
    assert signed.code == 0
    identifier = signed.out.split("watermark ")[1].split(")")[0]
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / f"{identifier}.json").write_text(DEEP_JSON)
    result = run_cli("verify", tmp_path / "D" / "x.png", "--config", tmp_path / "reader.yaml")
    assert result.code == 0 and "Traceback" not in result.err
    assert "not in the local manifest store" in result.out


def test_a_damaged_render_sidecar_is_rendered_again(tmp_path):
    from headshot.pipelines.render import read_finished
    from headshot.pipelines.templates import RenderJob, SceneTemplate

    template = SceneTemplate(name="t", description="d", prompt={"framing": "{identifier} {class_noun}"})
    job = RenderJob(template, (), 0)
    (tmp_path / "t").mkdir()
    grace_hopper().resize((8, 8)).save(tmp_path / "t" / "0.png")
    (tmp_path / "t" / "0.json").write_text(DEEP_JSON)
    assert read_finished(tmp_path, job, {}) is None


def test_a_damaged_fingerprint_cache_is_rebuilt(tmp_path, monkeypatch):
    from headshot.models.loading import fingerprint_path

    monkeypatch.setenv("HEADSHOT_CACHE", str(tmp_path / "cache"))
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"weights")
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "hashes.json").write_text(json.dumps({str(weights.resolve()): "not a dict"}))
    first = fingerprint_path(weights)
    (tmp_path / "cache" / "hashes.json").write_text(DEEP_JSON)
    assert fingerprint_path(weights) == first
