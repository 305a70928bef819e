"""A warning in a notebook reads as one line, shown once."""
from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import warnings
from tsplab.notebook import one_line_warnings
one_line_warnings()
for _ in range(3):
    warnings.warn("3 videos could not be decoded\\nand are left out")
warnings.warn("another one")
"""


def test_warnings_read_as_one_line_each_shown_once():
    # A process of its own: warnings print as in a kernel (pytest records them instead).
    err = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True).stderr
    assert err == "UserWarning: 3 videos could not be decoded; and are left out\nUserWarning: another one\n"


def test_sentences_quote_the_numbers_of_their_table():
    import numpy as np
    import pandas as pd

    from tsplab.notebook import bucket_sentence, detection_sentence, sensitivity_sentence

    detection = pd.DataFrame({"mAP@0.50": [0.5, 0.9], "mAP@0.95": [0.01, 0.2], "average": [0.283, 0.636]},
                             index=pd.Index(["tac", "tsp"], name="method"))
    assert detection_sentence(detection) == ("On this run, average mAP (%): **tsp 63.6**, tac 28.3; at the "
                                             "strictest threshold (mAP@0.95): **tsp 20.0**, tac 1.0.")
    buckets = pd.DataFrame({"XS": [40.0, 30.0, 50.0], "S": [20.0, np.nan, 60.0], "all": [100.0, 40.0, 60.0]},
                           index=["% of instances", "worse_on_short", "better_on_short"])
    assert bucket_sentence(buckets) == (
        "Bucket XS (40.0 % of the instances): worse_on_short 30.0, better_on_short 50.0; `all`: "
        "worse_on_short 40.0, better_on_short 60.0. worse_on_short minus better_on_short: -20.0 "
        "points on XS, -20.0 on `all`.")
    sensitivity = pd.DataFrame({"feature_set": ["tac", "tsp"], "fg_fg": [0.9, 0.8], "fg_bg": [0.87, 0.55],
                                "sensitivity": [0.03, 0.25], "num_videos": [6, 6]})
    assert sensitivity_sentence(sensitivity) == ("Temporal sensitivity on this run (over 6 videos): "
                                                 "**tsp 0.250**, tac 0.030.")
