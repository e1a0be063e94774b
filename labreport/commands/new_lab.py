"""`labreport new-lab`: a new lab folder started from an existing one (its lab.toml, program
and templates; never its measurements or report), named anew, ready to edit and measure."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import tempfile
from pathlib import Path

from labreport import config
from labreport.errors import LabreportError
from labreport.host import fsutil


def _key(*names: str) -> str:
    """A key as TOML may spell it: bare, "quoted" or 'quoted', dotted from its table or not."""
    spelled = [rf"(?:{n}|\"{n}\"|'{n}')" for n in names]
    return "|".join(r"\s*\.\s*".join(spelled[i:]) for i in range(len(spelled)))


def _renamed(text: str, name: str) -> str:
    """lab.toml with the lab's name and its image names (lower case, as images must be)
    changed to the new lab's: the first line that sets each key, however TOML spells it."""
    image = name.lower()
    replacements = (
        (("name",), name),
        (("image", "repository"), f"labreport/{image}"),
        (("wasm_image", "reference"), f"labreport/{image}-wasm"),
    )
    for keys, value in replacements:
        pattern = rf"""^(\s*(?:{_key(*keys)})\s*=\s*)(?:"(?:[^"\\\n]|\\.)*"|'[^'\n]*')"""
        quoted = json.dumps(value).replace("\\", "\\\\")  # a replacement string: \ is literal
        text = re.sub(pattern, rf"\g<1>{quoted}", text, count=1, flags=re.M)
    return text


def _renamed_checked(path: Path, name: str) -> config.LabConfig:
    """The copy's config, which must now carry the new names: a spelling the rewrite missed
    (a multi-line string, say) is one error, never a lab that keeps the old lab's images."""
    copy = config.load(path)
    image = name.lower()
    found = (copy.name, copy.image.repository, copy.wasm_image.reference)
    wanted = (name, f"labreport/{image}", f"labreport/{image}-wasm")
    if found != wanted:
        raise LabreportError(
            f"{path.name}: could not rename name, image.repository and wasm_image.reference "
            f"(they read {', '.join(found)})",
            'write each as key = "value" on a line of its own in the lab you copy from',
        )
    return copy


def _no_link_out(folder: Path, lab: Path) -> None:
    """Every link under folder stays inside the lab copied from (a copy follows them)."""
    fsutil.confined(lab, folder, "new-lab")
    for path in folder.rglob("*"):
        if path.is_symlink():
            fsutil.confined(lab, path, "new-lab")


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
    _no_link_out(template.app_path, template.base_dir)
    if (source / "templates").is_dir():
        _no_link_out(source / "templates", template.base_dir)
    target = labs_dir / name
    if target.exists():
        raise LabreportError(f"{target} already exists", "choose another name; nothing was changed")
    made = not labs_dir.exists()
    labs_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=labs_dir))  # renamed when complete
    try:
        staging.chmod(0o755)
        shutil.copytree(template.app_path, staging / template.app_dir)
        templates = source / "templates"
        if templates.is_dir():
            shutil.copytree(templates, staging / "templates")
        text = (source / config.CONFIG_NAME).read_text(encoding="utf-8")
        fsutil.atomic_write_text(staging / config.CONFIG_NAME, _renamed(text, name))
        _renamed_checked(staging / config.CONFIG_NAME, name)  # the copy is a lab too
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if made:
            with contextlib.suppress(OSError):
                labs_dir.rmdir()  # the folder this run made for it, empty again
        raise
    return target
