"""The checks at work on a real face: what generate would deliver or refuse, and why.

The tiny models' renders show no face, so a demo audit alone never shows a flag fire.
This takes a real photo of the subject that training never saw (held out), makes
controlled copies of it that imitate AI-headshot artifacts (headshot.analysis.manipulations)
plus a photo of a different person, and runs them through generate's own ranking: the same
likeness gate, the same audit against the subject's photos, the same flag policy. The
result, `audit/showcase/report.html` and `index.json`, says for each which would have been
delivered and which refused, and why. They are labelled everywhere as manipulated photos,
not generated headshots.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from headshot.analysis.html import escape, html_page, png_data_uri
from headshot.analysis.manipulations import manipulated
from headshot.errors import HeadshotError
from headshot.pipelines import ranking
from headshot.pipelines.generate_config import RankingOptions
from headshot.records import atomic_save_image, atomic_write_json, atomic_write_text

TEMPLATE = "held-out-photo"


@dataclass(frozen=True)
class Exhibit:
    name: str
    what: str  # what was done to the photo, in words
    manipulation: str | None  # a headshot.analysis.manipulations name, or None


EXHIBITS = (
    Exhibit("unchanged", "the held-out photo itself, unchanged", None),
    Exhibit("smooth_skin", "skin smoothed (imitates plastic skin)", "smooth_skin"),
    Exhibit("earring", "one earring added on one ear only (imitates mismatched earrings)", "earring"),
    Exhibit(
        "warp_background",
        "background lines bent next to the head (imitates a warped background)",
        "warp_background",
    ),
    Exhibit("shift_iris", "both irises shifted sideways (imitates eyes off camera)", "shift_iris"),
    Exhibit("other_person", "a photo of a different person", None),
)


def run_showcase(
    held_out: Path,
    other_person: Image.Image,
    dataset_folder: Path,
    out: Path,
    options: RankingOptions,
    audit_config,
) -> Path:
    """Score the exhibits as generate scores candidates; write out/index.json and report.html."""
    from headshot.analysis.image_io import read_photo
    from headshot.analysis.likeness import SubjectIdentity
    from headshot.dataset_record import read_dataset

    held_out = Path(held_out)
    photo = read_photo(held_out)
    identity = SubjectIdentity.from_dataset(read_dataset(dataset_folder))
    auditor = ranking.Auditor(dataset_folder, audit_config)
    # Every exhibit may be delivered by rank: only the checks decide here.
    options = options.model_copy(update={"top_k": len(EXHIBITS)})
    candidates, images = [], {}
    for seed, exhibit in enumerate(EXHIBITS):
        if exhibit.name == "other_person":
            image = ImageOps.fit(other_person.convert("RGB"), photo.size)
        elif exhibit.manipulation is None:
            image = photo
        else:
            try:
                image = manipulated(photo, exhibit.manipulation, 1.0)
            except HeadshotError as exc:
                raise HeadshotError(f"{held_out}: {exc}") from None
        render = f"{exhibit.name}.png"
        atomic_save_image(out / render, image)
        candidate = ranking.Candidate(
            key=f"{TEMPLATE}/{exhibit.name}",
            template=TEMPLATE,
            variant={},
            seed=seed,
            render=render,
            sidecar={},
        )
        ranking.score_candidate(candidate, image, identity, options, auditor)
        candidates.append(candidate)
        images[exhibit.name] = image
    ranking.choose(candidates, options)
    records = []
    for exhibit, candidate in zip(EXHIBITS, candidates):
        record = candidate.as_record()
        record.update(exhibit=exhibit.name, what=exhibit.what, would_deliver=candidate.selected)
        records.append(record)
    atomic_write_json(
        out / "index.json",
        {
            "format": 1,
            "kind": "showcase: manipulated copies of a held-out real photo, not generated headshots",
            "held_out_photo": held_out.name,
            "audit": auditor.note,
            "ranking": options.model_dump(mode="json"),
            "exhibits": records,
        },
    )
    report = out / "report.html"
    atomic_write_text(
        report, html_page("headshot: the checks on a real face", _body(held_out, records, images))
    )
    return report


# Large enough to see an earring or a catchlight; each links to the full-size exhibit beside it.
THUMBNAIL = 320


def _verdict(record: dict) -> str:
    if record["would_deliver"]:
        return "would be delivered"
    return f"refused: {record['reason']}"


def _body(held_out: Path, records: list[dict], images: dict) -> str:
    rows = []
    for record in records:
        image = images[record["exhibit"]].copy()
        image.thumbnail((THUMBNAIL, THUMBNAIL))
        audit = record.get("audit") or {}
        flags = ", ".join(audit.get("flags") or []) or ("none" if audit else "not audited")
        likeness = record.get("likeness")
        relative = f"{likeness['relative']:.2f}" if likeness else "no face"
        css = "" if record["would_deliver"] else " class='flag'"
        rows.append(
            f"<tr><td><a href='{escape(record['exhibit'])}.png' title='full size'>"
            f"<img src='{png_data_uri(image)}' alt='{escape(record['exhibit'])}'></a></td>"
            f"<td>{escape(record['what'])}</td><td>{escape(relative)}</td><td>{escape(flags)}</td>"
            f"<td{css}>{escape(_verdict(record))}</td></tr>"
        )
    return (
        "<p><b>These are not generated headshots.</b> They are a real photo of the subject that "
        f"training never saw ({escape(held_out.name)}), copies of it changed on purpose to imitate "
        "the artifacts that make AI headshots look fake, and a photo of a different person. Each went "
        "through the same checks as generate's candidates: likeness to the subject's own photos (in "
        "units of their own spread; above the bar is refused), the artifact audit against those "
        "photos, and the flag policy (a flagged image is not delivered while a clean one of the same "
        "scene passes). See docs/metrics.md for each metric.</p>"
        "<table><tr><th>image</th><th>what was done</th><th>likeness (x own spread)</th>"
        f"<th>audit flags</th><th>delivery</th></tr>{''.join(rows)}</table>"
    )
