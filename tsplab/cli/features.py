"""``tsplab extract`` and ``tsplab gvf``: clip features and global video features."""
from __future__ import annotations

import sys

from tsplab.cli.common import add_overwrite, print_table
from tsplab.errors import InputError

def add_extract(sub) -> None:
    from tsplab.config import add_config_flags
    from tsplab.features.config import ExtractionConfig

    p = sub.add_parser("extract", help="extract clip features of videos with a (pre)trained backbone "
                                       "(exit 1 when some videos failed: listed in failures.csv)")
    add_config_flags(p, ExtractionConfig)  # a flag per field declared with one, and --set NAME=VALUE
    p.set_defaults(func=run_extract)


def run_extract(args) -> int:
    """Exit status 1 when any video failed: the good ones are finished first, and the failures are
    counted and listed (failures.csv, missing_files.txt)."""
    from tsplab.config import config_from_args
    from tsplab.features.config import ExtractionConfig
    from tsplab.features.extraction import extract_features, summarize_extraction

    config = config_from_args(ExtractionConfig, args)
    if not (config.checkpoint or config.backbone):
        raise InputError("give --checkpoint (a checkpoint file, run folder or 'kinetics400') or "
                         "--backbone (random weights)")
    summary = extract_features(config)
    print_table(summarize_extraction(summary), f"Feature extraction into {config.out_dir}:")
    files = summary.attrs
    print(f"ActionFormer / OpenTAD config values for this folder: {files['toolboxes_file']}")
    failed = summary[summary.status == "failed"]
    if not len(failed):
        return 0
    print_table(failed[["video", "error"]], f"Failed videos (also in {files['failures_file']}):")
    print(f"tsplab extract: {len(failed)} of {len(summary)} videos failed; listed in "
          f"{files['failures_file']} (and, as OpenTAD's block_list, in {files['missing_file']})",
          file=sys.stderr)
    return 1


def add_gvf(sub) -> None:
    p = sub.add_parser("gvf", help="pool a feature folder into a global-video-feature (GVF) h5 file")
    p.add_argument("feature_dir", help="feature folder ({video}.npy files)")
    p.add_argument("--out", required=True, help="GVF h5 file to write (one [C] dataset per video)")
    p.add_argument("--pooling", choices=["max", "avg"], default="max", help="TSP uses max (default)")
    add_overwrite(p, "--out")
    p.set_defaults(func=run_gvf)


def run_gvf(args) -> int:
    from tsplab.features import compute_gvf_file, read_gvf_h5

    path = compute_gvf_file(args.feature_dir, args.out, args.pooling, overwrite=args.overwrite)  # checks first
    gvfs = read_gvf_h5(path)
    dim = next(iter(gvfs.values())).shape[0]
    print(f"{args.pooling}-pooled GVFs of {len(gvfs)} videos ({dim}-d) written to {path}")
    return 0
