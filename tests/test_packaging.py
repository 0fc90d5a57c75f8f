"""Packaging: every folder that ships with harness is a listed package, so setuptools builds
the wheel without an "absent from the packages configuration" warning."""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def test_every_folder_with_files_under_harness_is_a_listed_package():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    folders = {
        ".".join(path.relative_to(ROOT).parts)
        for path in (ROOT / "harness").rglob("*")
        if path.is_dir()
        and path.name != "__pycache__"
        and any(f.is_file() and f.suffix != ".pyc" for f in path.iterdir())
    }
    assert folders <= listed, folders - listed
    for package, patterns in setuptools["package-data"].items():
        folder = ROOT / Path(*package.split("."))
        assert package in listed and any(any(folder.glob(p)) for p in patterns), package
