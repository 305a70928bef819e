"""The benchmark dials (tsplab.benchmark_dials) and their manipulation checks
(tsplab.manipulation_checks): with every dial off the benchmark is main's, byte for byte; each dial
moves its own check in the direction it exists for."""
from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path

import numpy as np
import pytest

from tsplab import synthetic as S

REFERENCE = json.loads((Path(__file__).with_name("synthetic_tiny_seed0_hashes.json")).read_text())


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _manifest(path: Path) -> str:
    """A manifest's hash without its MP4 byte count (see below)."""
    meta = json.loads(path.read_text())
    meta["summary"].pop("video_bytes")
    return _sha(json.dumps(meta, sort_keys=True).encode())


def test_all_dials_off_is_byte_identical_to_main(tiny_benchmark):
    """The tiny benchmark (seed 0, source set included) generated with every dial off is main's
    before the dials existed (hashes recorded then, ``synthetic_tiny_seed0_hashes.json``): the label
    files byte for byte, the manifests, the list of videos, and every video's rendered frames and
    frame labels -- everything the H.264 encoder is given. The MP4 bytes themselves are not compared:
    x264 with its default threads was seen to encode one video three ways in one process on a
    loaded 2-core machine, with unchanged code."""
    for name, digest in REFERENCE["labels"].items():
        assert _sha((tiny_benchmark / name).read_bytes()) == digest, name
    for name, digest in REFERENCE["manifests"].items():
        assert _manifest(tiny_benchmark / name) == digest, name
    assert sorted(str(p.relative_to(tiny_benchmark)) for p in tiny_benchmark.rglob("*.mp4")) == REFERENCE["videos"]
    env = REFERENCE["environment"]
    if (np.__version__, platform.machine()) != (env["numpy"], env["machine"]):
        pytest.skip(f"frames recorded with {env}: numpy's vectorised sin/exp may differ in the last bit elsewhere")
    frames = {}
    for plan in S.plan_benchmark("tiny", 0) + S.plan_source("tiny", 0):
        video = S.render_video("tiny", plan, 0)
        frames[plan.video] = _sha(video.frames.tobytes() + video.frame_labels.astype(np.int64).tobytes())
    assert frames == REFERENCE["frames"]
