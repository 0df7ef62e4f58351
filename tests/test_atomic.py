"""atomic_path: a file is replaced whole or left as it was."""

import pytest

from alexp.atomic import atomic_path


def test_a_write_replaces_the_file_in_one_rename(tmp_path):
    target = tmp_path / "sub" / "state.txt"
    with atomic_path(target, ".tmp.txt") as tmp:
        assert tmp.parent == target.parent and tmp.name.endswith(".tmp.txt") and not target.exists()
        tmp.write_text("new")
    assert target.read_text() == "new" and list(target.parent.iterdir()) == [target]


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "state.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]


def test_the_temp_name_does_not_end_like_the_target(tmp_path):
    # a glob for finished checkpoints (state/*.npz) must not catch one still being written
    with atomic_path(tmp_path / "run.npz") as tmp:
        assert not tmp.name.endswith(".npz") and list(tmp_path.glob("*.npz")) == []
