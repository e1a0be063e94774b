"""`labreport init`: a lab folder started from a built-in lab (carried in the package; the
top-level lab by default) or from another lab folder: its lab.toml, program and templates,
never its measurements or report, named anew, ready to edit and measure."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from labreport import bundle, config
from labreport.errors import LabreportError
from labreport.host import fsutil


@dataclass(frozen=True)
class Source:
    """A lab to start from: its config and, where it has them, its templates."""

    label: str
    config: Path
    templates: Path | None


def default_source() -> str:
    """The built-in lab init starts from when none is named: the top-level lab."""
    return next(iter(bundle.builtin_labs()))


def source(given: str | None) -> Source:
    """A built-in lab by its name (the default one when None), else a lab folder (./NAME for a
    folder named like a built-in lab)."""
    labs = bundle.builtin_labs()
    name = given or default_source()
    if name in labs:
        return Source(name, labs[name] / config.CONFIG_NAME, bundle.lab_templates(labs[name]))
    folder = Path(name)
    if not (folder / config.CONFIG_NAME).is_file():
        raise LabreportError(
            f"--from {name}: neither a built-in lab nor a folder holding {config.CONFIG_NAME}",
            f"give one of {', '.join(labs)}, or a lab folder",
        )
    own = folder / "templates"
    return Source(name, folder / config.CONFIG_NAME, own if own.is_dir() else None)


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
    fsutil.confined(lab, folder, "init")
    for path in folder.rglob("*"):
        if path.is_symlink():
            fsutil.confined(lab, path, "init")


def lab_name(folder: Path, name: str | None) -> str:
    """The new lab's name: --name, else its folder's name, which must be one."""
    chosen = name if name is not None else folder.resolve().name
    if not re.match(config.LAB_NAME, chosen):
        raise LabreportError(
            f"{chosen!r} is not a lab name",
            "give --name with letters, digits, '.', '_' and '-' (it names files and images)",
        )
    return chosen


def next_steps(made: Path, origin: str) -> str:
    """What to do with the lab init made."""
    go = "" if made.resolve() == Path.cwd().resolve() else f"cd {made} && "
    return (
        f"made a lab in {made} from {origin}: edit its lab.toml, program and templates; then\n"
        f"  {go}labreport doctor && labreport measure && labreport render"
    )


def run(folder: Path, origin: Source, name: str | None) -> Path:
    """origin's lab.toml, program and templates copied into folder (made if missing; one that
    exists may hold other files, but none of those), renamed; returns the folder."""
    name = lab_name(folder, name)
    template = config.load(origin.config)  # a lab that loads, or one error
    if template.app_path == template.base_dir:
        raise LabreportError(
            f"{origin.config}: app_dir is the lab's folder itself",
            "init copies app_dir; copy such a lab by hand (leave out measurements/ and report)",
        )
    _no_link_out(template.app_path, template.base_dir)
    if origin.templates is not None:
        _no_link_out(origin.templates, origin.templates.parent)
    parts = [config.CONFIG_NAME, template.app_dir, *(["templates"] if origin.templates else [])]
    taken = [part for part in parts if (folder / part).exists() or (folder / part).is_symlink()]
    if taken:
        raise LabreportError(
            f"{folder / taken[0]} already exists",
            "init into an empty or new folder; nothing was changed",
        )
    if not folder.parent.is_dir():
        raise LabreportError(f"{folder.parent}: no such folder", "make it first; nothing changed")
    made = not folder.exists()
    folder.mkdir(exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".labreport-init-", dir=folder))  # moved when complete
    moved: list[Path] = []
    try:
        shutil.copytree(template.app_path, staging / template.app_dir)
        if origin.templates is not None:
            shutil.copytree(origin.templates, staging / "templates")
        text = origin.config.read_text(encoding="utf-8")
        fsutil.atomic_write_text(staging / config.CONFIG_NAME, _renamed(text, name))
        for part in parts:
            (staging / part).chmod(0o755 if (staging / part).is_dir() else 0o644)
        _renamed_checked(staging / config.CONFIG_NAME, name)  # the copy is a lab too
        for part in parts:
            (staging / part).rename(folder / part)
            moved.append(folder / part)
        staging.rmdir()
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for path in moved:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        if made:
            with contextlib.suppress(OSError):
                folder.rmdir()  # the folder this run made, empty again
        raise
    return folder
