"""The documentation site says what the code does: every command `headshot --help` lists has a
page in the site's navigation, the architecture page names only modules that exist, the site
builds with `mkdocs build --strict` (no broken link, no page outside the nav, no missing
image), and the README stays a short front page."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def nav_pages(nav) -> list[str]:
    """Every page file in mkdocs.yml's nav, in order."""
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [page for item in nav for page in nav_pages(item)]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in nav_pages(value)]
    return []


def site_pages() -> list[str]:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    return nav_pages(config["nav"])


def cli_commands() -> list[str]:
    """Every command the CLI registers, as typed after `headshot` (`keys init`, `store import`)."""
    import typer

    from headshot.cli import app

    def walk(group, prefix: str) -> list[str]:
        found = []
        for name, command in group.commands.items():
            if hasattr(command, "commands"):  # a group (typer ships its own click)
                found += walk(command, f"{prefix}{name} ")
            else:
                found.append(f"{prefix}{name}")
        return found

    return walk(typer.main.get_command(app), "")


def documenting_pages(command: str, pages: dict[str, str]) -> list[str]:
    """The pages that document `command`: a heading names it and the text shows `headshot COMMAND`
    (the commands overview alone does not count: its heading names no command)."""
    named = re.compile(rf"(?<![\w-]){re.escape(command)}(?![\w-])")
    return [
        name
        for name, text in pages.items()
        if f"headshot {command}" in text
        and any(named.search(line) for line in text.splitlines() if line.startswith("#"))
    ]


def test_every_command_of_the_cli_has_a_page_in_the_site():
    commands = cli_commands()
    assert {"prepare", "finetune", "generate", "verify", "keys init", "serve", "batch"} <= set(commands)
    pages = {name: (DOCS / name).read_text(encoding="utf-8") for name in site_pages()}
    for command in commands:
        assert documenting_pages(command, pages), f"no page in the site's nav documents `headshot {command}`"
    # The check itself: with the check-photo page gone from the nav, nothing documents it.
    del pages["check-photo.md"]
    assert documenting_pages("check-photo", pages) == []


def test_every_docs_page_is_in_the_nav_and_every_nav_page_exists():
    pages = site_pages()
    assert len(pages) == len(set(pages)), "a page is in the nav twice"
    on_disk = {path.relative_to(DOCS).as_posix() for path in DOCS.rglob("*.md")}
    assert on_disk == set(pages)


# `headshot/x/y.py` (or a file of tests/, tools/, bench/) or `headshot.x.y[.name]`, as pages write them.
_PATH = re.compile(r"(?<![\w/.])(?:headshot|tests|tools|bench)/[\w/]+\.py\b")
_DOTTED = re.compile(r"(?<![\w.])headshot(?:\.\w+)+")  # not org.headshot.checks (a C2PA label)


def module_names(text: str) -> tuple[set[str], set[str]]:
    return set(_PATH.findall(text)), set(_DOTTED.findall(text))


def missing_modules(text: str) -> list[str]:
    """The module paths and dotted names in `text` that the code does not have: a dotted name
    is a module, or a module and a name defined at its top level."""
    paths, dotted = module_names(text)
    missing = [path for path in sorted(paths) if not (ROOT / path).is_file()]
    for name in sorted(dotted):
        parts = name.split(".")
        for cut in range(len(parts), 0, -1):
            base = ROOT.joinpath(*parts[:cut])
            module = base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
            if module.is_file():
                rest = parts[cut:]
                if rest and (len(rest) > 1 or rest[0] not in top_level_names(module)):
                    missing.append(name)
                break
        else:
            missing.append(name)
    return missing


def top_level_names(module: Path) -> set[str]:
    names = set()
    for node in ast.parse(module.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {target.id for target in targets if isinstance(target, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {alias.asname or alias.name.split(".")[0] for alias in node.names}
    return names


def test_the_architecture_page_and_every_other_page_name_only_modules_that_exist():
    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    paths, dotted = module_names(text)
    paths = {path for path in paths if path.startswith("headshot/")}
    assert len(paths) >= 40 and len(dotted) >= 5, "the page names the modules by their paths"
    assert missing_modules(text) == []
    for page in DOCS.glob("*.md"):  # and so does every other page
        assert missing_modules(page.read_text(encoding="utf-8")) == [], page.name
    # The check itself: a module or a function that does not exist is found.
    assert missing_modules("`headshot/training/no_such_stage.py` and headshot.workflow.no_such_function") == [
        "headshot/training/no_such_stage.py",
        "headshot.workflow.no_such_function",
    ]


def test_the_architecture_page_names_every_module_and_folder_of_the_package():
    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    package = ROOT / "headshot"
    modules = [path.name for path in package.glob("*.py") if not path.name.startswith("__")]
    folders = [f"{path.name}/" for path in package.iterdir() if (path / "__init__.py").is_file()]
    assert len(modules) > 10 and len(folders) > 5
    assert [name for name in modules + folders if name not in text] == []


def test_the_readme_is_a_short_front_page_with_the_two_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    assert "make demo" in readme and "make test" in readme
    for target in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / target).is_file(), target


def test_the_site_builds_strictly(tmp_path):
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=120,
    )
    assert built.returncode == 0, built.stderr[-3000:]


def folder_imports(package: Path) -> dict[str, set[str]]:
    """Which other folders of the package each folder's modules import (at the top or inside a
    function: an import anywhere in a module counts)."""
    folders = {path.name for path in package.iterdir() if (path / "__init__.py").is_file()}
    found: dict[str, set[str]] = {folder: set() for folder in folders}
    for folder in folders:
        for module in (package / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
                elif isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                else:
                    continue
                for name in names:
                    parts = name.split(".")
                    if parts[0] == "headshot" and len(parts) > 1 and parts[1] in folders - {folder}:
                        found[folder].add(parts[1])
    return found


def documented_folder_order(text: str) -> list[tuple[str, set[str]]]:
    """The architecture page's table of which folder imports which, in its row order (the words
    in parentheses after a cell's list are an aside, not a claim)."""
    section = text.split("## Which folder imports which", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)/` \| ([^|]+) \|$", section, flags=re.MULTILINE)
    return [(folder, set(re.findall(r"`(\w+)/`", cell.split("(", 1)[0]))) for folder, cell in rows]


def test_the_architecture_page_says_which_folder_imports_which_and_each_only_imports_below_it():
    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    order = documented_folder_order(text)
    actual = folder_imports(ROOT / "headshot")
    assert {folder for folder, _ in order} == set(actual), "every folder of headshot/ has its row"
    assert {folder: imports for folder, imports in order} == actual
    for index, (folder, imports) in enumerate(order):  # no circle: each imports only rows above it
        assert imports <= {above for above, _ in order[:index]}, folder
    # The check itself: a row that leaves out one of the folder's imports no longer matches.
    stale = documented_folder_order(text.replace("| `models/` | `families/` |", "| `models/` | none |"))
    assert dict(stale)["models"] == set() and dict(stale) != actual
