"""The annotation reader registry: a new format is one function plus one registration."""
from __future__ import annotations

import pandas as pd
import pytest

from tsplab import datasets
from tsplab.datasets import AnnotationSource, Annotations, make_annotations, register_reader
from tsplab.datasets.registry import READERS, SUFFIXES
from tsplab.errors import InputError


@pytest.fixture
def tsv_format():
    """A tiny tab-separated format ``video<TAB>duration<TAB>start<TAB>end<TAB>label``, registered for
    the test only."""
    @register_reader("tsv", suffixes=(".tsv",))
    def read_tsv(source: AnnotationSource) -> Annotations:
        rows = [line.split("\t") for line in source.text.splitlines() if line.strip()]
        table = pd.DataFrame(rows, columns=["video", "duration_s", "t_start_s", "t_end_s", "label"])
        videos = table[["video", "duration_s"]].drop_duplicates("video").assign(subset=source.subset or "training")
        return make_annotations(videos, table[["video", "t_start_s", "t_end_s", "label"]])

    yield read_tsv
    READERS.pop("tsv")
    SUFFIXES.pop(".tsv")


def test_a_reader_added_in_a_test_module_reads_through_the_public_entry_point(tmp_path, tsv_format):
    path = tmp_path / "clips.tsv"
    path.write_text("v_JDg--pjY5gg\t30\t1\t4\tjump\nJDg--pjY5gg\t30\t10\t12\trun\nb\t20\t2\t3\tjump\n")
    by_name = datasets.read_annotations(path, format="tsv", subset="validation")
    by_suffix = datasets.read_annotations(path)
    for ann in (by_name, by_suffix):
        assert ann.labels == ["jump", "run"]
        assert ann.videos["video"].tolist() == ["JDg--pjY5gg", "b"]
        assert ann.instances["t_end_s"].tolist() == [4.0, 12.0, 3.0]
    assert by_name.subsets == ["validation"] and by_suffix.subsets == ["training"]
    table, report = datasets.build_segment_table(by_suffix, "synthetic")
    assert report.empty and (table["temporal-region-label"] == datasets.FOREGROUND).sum() == 3


def test_an_unknown_format_is_one_line_naming_it_and_the_valid_ones(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("video,t_start,t_end,label\na,1,2,x\n")
    with pytest.raises(InputError) as error:
        datasets.read_annotations(path, format="tsvx")
    message = str(error.value)
    assert "\n" not in message
    assert message == ("format: unknown annotation format 'tsvx'; valid formats: "
                       f"{', '.join(READERS)}")
    assert all(name in message for name in ("activitynet", "detad", "tsp", "custom"))


def test_the_built_in_formats_are_detected_from_the_content(real_data, tmp_path):
    (tmp_path / "a.json").write_text('{"database": {"a": {"subset": "training", "duration": 5, "annotations": []}}}')
    (tmp_path / "c.csv").write_text("video,t_start,t_end,label\na,1,2,x\n")
    files = {
        "activitynet": tmp_path / "a.json", "custom": tmp_path / "c.csv",
        "detad": real_data / "thumos14/thumos14_val_extra_characteristics.json",
        "tsp": real_data / "thumos14/thumos14_valid_tsp_groundtruth.csv",
    }
    for name, path in files.items():
        assert datasets.detect_format(AnnotationSource(path, path.read_text())) == name
