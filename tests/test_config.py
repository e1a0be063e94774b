from __future__ import annotations

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
    text = (ROOT / "lab.toml").read_text().replace("[check]\n", "[check]\nsurprise = 1\n")
    with pytest.raises(LabreportError, match=r"lab\.toml: check\.surprise: Extra inputs"):
        config.load(_write(tmp_path, text))


def test_other_schema_version_is_refused(tmp_path: Path) -> None:
    text = (ROOT / "lab.toml").read_text().replace("schema_version = 1", "schema_version = 99")
    with pytest.raises(LabreportError, match="schema_version is 99"):
        config.load(_write(tmp_path, text))


def test_broken_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LabreportError, match="not valid TOML"):
        config.load(_write(tmp_path, "name = [unclosed"))
    with pytest.raises(LabreportError, match="not found"):
        config.load(tmp_path / "nope.toml")
