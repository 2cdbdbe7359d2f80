"""The yt-dlp adapter's reading of what yt-dlp returns, with yt-dlp itself stubbed out."""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import ExtractionFailed
from core.youtube import SearchEntry, YouTube


class Answers:
    """Stands in for a YoutubeDL: extract_info returns a fixed answer."""

    def __init__(self, info: dict[str, Any] | None) -> None:
        self.info = info

    def extract_info(self, url: str, download: bool = True) -> dict[str, Any] | None:
        return self.info


def youtube_answering(info: dict[str, Any] | None, monkeypatch: pytest.MonkeyPatch) -> YouTube:
    youtube = YouTube()
    monkeypatch.setattr(youtube, "_ydl", lambda **extra: Answers(info))
    return youtube


def test_search_skips_empty_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = {"url": "https://www.youtube.com/watch?v=abc", "title": "Song", "duration": 200}
    youtube = youtube_answering({"entries": [None, {}, {"title": "no url"}, entry]}, monkeypatch)
    assert youtube.search("song") == [
        SearchEntry("https://www.youtube.com/watch?v=abc", "Song", 200.0, "")
    ]


@pytest.mark.parametrize("info", [None, {}, {"_type": "playlist", "entries": [None]}])
def test_extract_without_a_stream_fails(
    info: dict[str, Any] | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ExtractionFailed):
        youtube_answering(info, monkeypatch).extract("https://www.youtube.com/watch?v=abc")


def test_extract_takes_the_first_entry_of_a_playlist(monkeypatch: pytest.MonkeyPatch) -> None:
    info = {"_type": "playlist", "entries": [None, {"url": "https://x/a", "title": "A"}]}
    found = youtube_answering(info, monkeypatch).extract("https://www.youtube.com/watch?v=abc")
    assert (found.stream_url, found.title, found.duration_s) == ("https://x/a", "A", 0.0)
