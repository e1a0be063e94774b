"""`labreport new-lab`: a new lab folder started from an existing one (its lab.toml, program
and templates; never its measurements or report), named anew, ready to edit and measure."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from labreport import config
from labreport.errors import LabreportError
from labreport.host import fsutil


def _renamed(text: str, name: str) -> str:
    """lab.toml with the lab's name and its image names (lower case, as images must be)
    changed to the new lab's."""
    image = name.lower()
    replacements = (
        (r'^name = "[^"\n]*"', f'name = "{name}"'),
        (r'^repository = "[^"\n]*"', f'repository = "labreport/{image}"'),
        (r'^reference = "[^"\n]*"', f'reference = "labreport/{image}-wasm"'),
    )
    for pattern, line in replacements:
        text = re.sub(pattern, line, text, count=1, flags=re.MULTILINE)
    return text


def run(name: str, source: Path, labs_dir: Path) -> Path:
    """labs_dir/name made from the lab in the folder source; returns the new folder."""
    if not re.match(config.LAB_NAME, name):
        raise LabreportError(
            f"{name!r} is not a lab name",
            "use letters, digits, '.', '_' and '-' (it names files and images)",
        )
    template = config.load(source / config.CONFIG_NAME)  # a lab that loads, or one error
    if template.app_path == template.base_dir:
        raise LabreportError(
            f"{source / config.CONFIG_NAME}: app_dir is the lab's folder itself",
            "new-lab copies app_dir; copy such a lab by hand (leave out measurements/ and report)",
        )
    target = labs_dir / name
    if target.exists():
        raise LabreportError(f"{target} already exists", "choose another name; nothing was changed")
    labs_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=labs_dir))  # renamed when complete
    try:
        staging.chmod(0o755)
        shutil.copytree(template.app_path, staging / template.app_dir, symlinks=True)
        templates = source / "templates"
        if templates.is_dir():
            shutil.copytree(templates, staging / "templates", symlinks=True)
        text = (source / config.CONFIG_NAME).read_text(encoding="utf-8")
        fsutil.atomic_write_text(staging / config.CONFIG_NAME, _renamed(text, name))
        config.load(staging / config.CONFIG_NAME)  # the copy is a lab too
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
