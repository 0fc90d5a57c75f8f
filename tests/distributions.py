"""Make a real installed distribution on disk, as pip leaves it: a module plus a dist-info
folder with METADATA and entry_points.txt. A subprocess with the folder on PYTHONPATH sees
it through importlib.metadata exactly like a pip-installed plugin."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path


def make_distribution(
    root: Path, package: str, version: str, modules: dict[str, str], entry_points: dict[str, str]
) -> Path:
    """Write ``modules`` (name -> source) and ``<package>-<version>.dist-info`` under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for name, source in modules.items():
        (root / f"{name}.py").write_text(textwrap.dedent(source))
    info = root / f"{package.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n")
    lines = ["[harness]"] + [f"{name} = {target}" for name, target in entry_points.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    (info / "RECORD").write_text("")
    return root


def env_with(root: Path) -> dict[str, str]:
    """Environment for a subprocess that has ``root`` on its import path."""
    paths = [str(root), os.environ.get("PYTHONPATH", "")]
    return {"PYTHONPATH": os.pathsep.join(p for p in paths if p)}
