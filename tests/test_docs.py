"""The manual a newcomer reads: a short README, every link inside the repository, every setting
and command documented."""

from __future__ import annotations

import os
import re
from pathlib import Path

from typer.main import get_command

from covage_pipeline import settings
from covage_pipeline.cli import app

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_the_readme_stays_short_and_points_into_docs():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) < 12_000
    linked = {Path(target).name for target in LINK.findall(readme)}
    assert {p.name for p in PAGES[1:]} <= linked, "a page of docs/ nobody links to from the README"


# the development folder beside the repository, which a user's clone does not have
OUTSIDE = (os.path.join(os.pardir, "shared"), "shared/reference")


def test_every_link_and_path_stays_inside_the_repository():
    for page in PAGES:
        text = page.read_text()
        assert not any(path in text for path in OUTSIDE), page.name
        for target in LINK.findall(text):
            if target.startswith(("http://", "https://")):
                continue
            resolved = (page.parent / target).resolve()
            assert resolved.is_relative_to(ROOT) and resolved.exists(), f"{page.name}: {target}"
    assert not any(path in (ROOT / "pyproject.toml").read_text() for path in OUTSIDE)


def test_every_setting_and_command_is_documented():
    manual = (ROOT / "docs" / "configuration.md").read_text()
    missing = [name for name in settings.VARIABLES.values() if f"`{name}`" not in manual]
    assert not missing, f"settings missing from docs/configuration.md: {missing}"
    commands = sorted(get_command(app).commands)  # type: ignore[attr-defined]
    assert len(commands) > 8
    undocumented = [c for c in commands if f"`covage {c}" not in manual]
    assert not undocumented, f"commands missing from docs/configuration.md: {undocumented}"
