"""What `prepare` tells the user: a table of verdicts, and the too-few-photos error."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from headshot.training.dataset_record import DatasetRecord


def print_summary(record: DatasetRecord, folder: Path, console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=f"prepare: {record.subject} ({record.family}, {record.resolution}px)")
    table.add_column("photo", no_wrap=True, overflow="ellipsis", max_width=40)
    table.add_column("verdict", no_wrap=True)
    table.add_column("reason", overflow="fold")
    for photo in record.photos:
        if photo.verdict == "accepted":
            table.add_row(photo.source, "[green]accepted[/]", "")
        else:
            table.add_row(photo.source, f"[red]{photo.reason_code}[/]", photo.reason or "")
    console.print(table)
    rejected = len(record.photos) - len(record.accepted)
    console.print(f"{len(record.accepted)} accepted, {rejected} rejected -> {folder}")


def too_few_message(record: DatasetRecord, min_photos: int, photos_folder: Path) -> str:
    lines = [
        f"{photos_folder}: only {len(record.accepted)} of {len(record.photos)} photos are usable; "
        f"at least {min_photos} are needed (option 'min_photos'). Rejected:"
    ]
    for photo in record.photos:
        if photo.verdict == "rejected":
            lines.append(f"  {photo.source}: {photo.reason_code}: {photo.reason}")
    lines.append("Add more photos (one face, sharp, well lit, facing the camera) and run prepare again.")
    return "\n".join(lines)
