import shutil
from pathlib import Path

import pytest

from vidray.sources import expand_inputs


def test_folders_files_and_duplicates(tmp_path: Path, sample_video: Path) -> None:
    shutil.copy(sample_video, tmp_path / "a.mp4")
    shutil.copy(sample_video, tmp_path / "same_content.mkv")
    (tmp_path / "notes.txt").write_text("not a video")
    rows = expand_inputs([str(tmp_path), str(tmp_path / "a.mp4")])
    assert len(rows) == 1  # one content, three mentions
    assert rows[0]["video_id"].startswith("file:")


def test_missing_input_fails_at_once(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="input not found"):
        expand_inputs([str(tmp_path / "missing.mp4")])


def test_folder_without_videos(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no video files"):
        expand_inputs([str(tmp_path)])
