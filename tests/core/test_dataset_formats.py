"""core.datasets.FORMATS: a dataset format is one registry entry that the parser, the upload
endpoint, its OpenAPI body and the CLI all read."""

from __future__ import annotations

import numpy as np
import pytest

from core.datasets import (
    FORMATS,
    Dataset,
    DatasetFormat,
    DatasetLimits,
    format_for,
    parse_dataset,
    suffixes,
)
from core.datasets.dataset import finish, finish_features
from core.errors import DatasetError


def test_the_file_suffix_decides_before_the_content_type() -> None:
    assert format_for(filename="train.CSV", media_type="application/octet-stream") is \
        FORMATS["csv"]
    assert format_for(media_type="application/zip") is FORMATS["npz"]
    assert format_for(filename="notes.txt", media_type="text/plain") is None
    assert format_for() is None
    assert suffixes() == (".csv", ".npz", ".json")


def test_a_new_entry_is_parsed_recognised_and_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    def parse_lines(data: bytes, target: str | None, limits: DatasetLimits,
                    features_only: bool) -> Dataset:
        rows = [[float(v) for v in line.split()] for line in data.decode().splitlines()]
        array = np.array(rows)
        if features_only:
            return finish_features(array, limits=limits)
        return finish(array[:, :-1], array[:, -1].astype(np.int64), limits=limits)

    lines = DatasetFormat("lines", parse_lines, ("text/x-lines",), (".lines",),
                          "numbers separated by spaces, the label last")
    monkeypatch.setitem(FORMATS, "lines", lines)
    assert format_for(filename="a.lines") is lines and ".lines" in suffixes()
    data = parse_dataset(b"0 1 0\n1 0 1\n", "lines")
    assert data.X.tolist() == [[0.0, 1.0], [1.0, 0.0]] and data.y.tolist() == [0, 1]
    assert parse_dataset(b"0 1 0\n", "lines", features_only=True).X.shape == (1, 3)
    with pytest.raises(DatasetError, match="target only applies to CSV; lines files"):
        parse_dataset(b"0 1 0\n", "lines", target="label")


def test_an_unknown_format_names_the_registry() -> None:
    with pytest.raises(DatasetError, match=r"unknown format 'xml'; expected one of \['csv', "
                                           r"'json', 'npz'\]"):
        parse_dataset(b"<x/>", "xml")
