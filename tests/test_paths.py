"""How paths are shown in messages."""

import os

from landscape.paths import shown


def test_paths_below_the_working_directory_are_relative_others_absolute(tmp_path, monkeypatch):
    (tmp_path / "work" / "plots").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    assert shown(str(tmp_path / "work" / "plots" / "r.png")) == os.path.join("plots", "r.png")
    assert shown("plots/r.png") == os.path.join("plots", "r.png")
    assert shown(str(tmp_path / "elsewhere" / "r.png")) == str(tmp_path / "elsewhere" / "r.png")
    assert shown("../elsewhere/r.png") == str(tmp_path / "elsewhere" / "r.png")
    assert shown("..") == str(tmp_path)
