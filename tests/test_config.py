from __future__ import annotations

import re
from pathlib import Path

import pytest

from labreport import config
from labreport.errors import LabreportError

from .conftest import ROOT


def test_project_config_loads(lab: config.LabConfig) -> None:
    assert lab.name == "lab12"
    assert lab.app_path == ROOT / "app"
    assert set(lab.builds) == {"native", "wasm", "wasm-tinygo"}
    assert lab.builds["wasm-tinygo"].toolchain == "tinygo"
    assert lab.builds["wasm-tinygo"].optional
    assert lab.builds["wasm"].env["GOOS"] == "wasip1"


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "app").mkdir(exist_ok=True)
    path = tmp_path / "lab.toml"
    path.write_text(text)
    return path


def test_unknown_field_names_the_path(tmp_path: Path) -> None:
    text = (ROOT / "lab.toml").read_text().replace("[server]\n", "[server]\nsurprise = 1\n")
    with pytest.raises(LabreportError, match=r"lab\.toml: server\.surprise: Extra inputs"):
        config.load(_write(tmp_path, text))


def test_the_cli_modes_arguments_are_strings_given_as_they_are(tmp_path: Path) -> None:
    once = 'env = { MODE = "once" }\n'
    text = (ROOT / "lab.toml").read_text()
    assert once in text
    lab = config.load(_write(tmp_path, text.replace(once, once + 'args = ["-n", "a b", ""]\n')))
    assert lab.once.args == ["-n", "a b", ""]
    with pytest.raises(LabreportError, match=r"lab\.toml: once\.args\.0: Input should be"):
        config.load(_write(tmp_path, text.replace(once, once + "args = [1]\n")))


def test_other_schema_version_is_refused(tmp_path: Path) -> None:
    text = (ROOT / "lab.toml").read_text().replace("schema_version = 2", "schema_version = 99")
    with pytest.raises(LabreportError, match="schema_version is 99"):
        config.load(_write(tmp_path, text))


def test_broken_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LabreportError, match="not valid TOML"):
        config.load(_write(tmp_path, "name = [unclosed"))
    with pytest.raises(LabreportError, match="not found"):
        config.load(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('rule = "json"', 'rule = "jsonish"', r"check\.rules\.0: Input tag 'jsonish'"),
        ('build = "native"', 'build = "nope"', "image.build names 'nope', which is not a build"),
        ('builder = "go"', 'builder = "maven"', r"image\.builder: Input should be 'go' or 'none'"),
        (
            'build = "native"',
            'build = "native"\ncontext_builds = ["wasm-tinygo"]',
            "image.context_builds names the optional build 'wasm-tinygo'",
        ),
        ('build = "wasm"', 'build = "wasm2"', "wasm_image.build names 'wasm2'"),
        ("ctr-wasmtime = 8", "ctr-wasmtime = 16", "runs_by_runtime.ctr-wasmtime = 16 is not"),
        ("ctr-wasmtime = 8", "ctr-wasmtime = 0", "runs_by_runtime.ctr-wasmtime = 0 is not"),
    ],
)
def test_unknown_rule_toolchain_or_artifact_names_the_key(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    text = (ROOT / "lab.toml").read_text()
    assert old in text
    with pytest.raises(LabreportError, match=message):
        config.load(_write(tmp_path, text.replace(old, new, 1)))


def test_nothing_about_a_lab_lives_in_the_package() -> None:
    """A lab is config, program and templates: the package names no lab, program or zone."""
    words = re.compile(r"moscow|msk|lab ?12", re.IGNORECASE)
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "labreport").rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if words.search(line)
    ]
    assert found == []


def test_every_shipped_lab_loads(lab: config.LabConfig) -> None:
    labs = sorted((ROOT / "labs").glob(f"*/{config.CONFIG_NAME}"))
    assert labs, "labs/ holds the labs beside the default one"
    loaded = {config.load(path).name for path in labs}
    assert loaded.isdisjoint({lab.name}) and len(loaded) == len(labs)
