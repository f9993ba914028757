"""What `prepare` tells the user: a table of verdicts, and the too-few-photos error."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from headshot.dataset_record import DatasetRecord
from headshot.terminal import markup, shown

MAX_ROWS = 50  # of the summary table; dataset.json has every verdict
MAX_LISTED = 10  # rejections named one by one in the too-few-photos error


def print_summary(record: DatasetRecord, folder: Path, console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=f"prepare: {record.subject} ({record.family}, {record.resolution}px)")
    table.add_column("photo", no_wrap=True, overflow="ellipsis", max_width=40)
    table.add_column("verdict", no_wrap=True)
    table.add_column("reason", overflow="fold")
    for photo in record.photos[:MAX_ROWS]:
        if photo.verdict == "accepted":  # file names as found on disk: escaped
            table.add_row(markup(photo.source), "[green]accepted[/]", "")
        else:
            table.add_row(
                markup(photo.source), f"[red]{markup(photo.reason_code)}[/]", markup(photo.reason or "")
            )
    if len(record.photos) > MAX_ROWS:
        table.add_row(f"... {len(record.photos) - MAX_ROWS:,} more", "", "every verdict is in dataset.json")
    console.print(table)
    rejected = len(record.photos) - len(record.accepted)
    console.print(f"{len(record.accepted)} accepted, {rejected} rejected -> {markup(folder)}")


def too_few_message(
    record: DatasetRecord, min_photos: int, photos_folder: Path, kept: Path | None = None
) -> str:
    """The error: counts, the first MAX_LISTED rejections, and counts by reason for the rest."""
    lines = [
        f"{photos_folder}: only {len(record.accepted)} of {len(record.photos)} photos are usable; "
        f"at least {min_photos} are needed (option 'min_photos'). Rejected:"
    ]
    rejected = [photo for photo in record.photos if photo.verdict == "rejected"]
    for photo in rejected[:MAX_LISTED]:
        lines.append(f"  {shown(photo.source)}: {photo.reason_code}: {shown(photo.reason)}")
    if len(rejected) > MAX_LISTED:
        rest = Counter(photo.reason_code for photo in rejected[MAX_LISTED:])
        by_reason = ", ".join(f"{code} {count:,}" for code, count in rest.most_common())
        lines.append(f"  ... and {len(rejected) - MAX_LISTED:,} more ({by_reason})")
    if kept is not None:
        lines.append(f"The earlier dataset in {kept} is kept as it was.")
    lines.append("Add more photos (one face, sharp, well lit, facing the camera) and run prepare again.")
    return "\n".join(lines)
