"""Every figure the notebooks show, so tests can build them too.

Functions take the library's DataFrames / arrays, draw a new pyplot figure and return it: in a
notebook (inline backend) it shows at the end of the cell (end the call with ``;`` so it is not shown
twice); scripts save it (``fig.savefig``) and tests close it (``plt.close``). One module per topic
(``style``: what every figure shares; ``datasets``, ``pretraining``, ``features``, ``localization``,
``study``: the notebooks' analyses); add a new plot to its topic's module and export it here, where
the notebooks (``from tsplab import plots``) and the test over every ``plot_*`` find it.
"""
from tsplab.plots.benchmark import plot_check_curves, plot_dial_frames
from tsplab.plots.datasets import (plot_bucket_shares, plot_clips, plot_frames_with_annotation,
                                   plot_length_histogram)
from tsplab.plots.features import (SimilarityBrowser, plot_boundary_histogram, plot_feature_timeline,
                                   plot_similarity_matrices)
from tsplab.plots.localization import (LOCALIZER_LOSS_TERMS, plot_bucket_map, plot_detection_timeline,
                                       plot_localizer_losses, plot_map_vs_tiou)
from tsplab.plots.pretraining import (OVERVIEW_COLUMNS, plot_pretrain_curves, pretrain_heads,
                                      pretrain_metrics_overview)
from tsplab.plots.study import VERDICT_COLOURS, plot_claims_forest, plot_dose_response, plot_study_metrics
from tsplab.plots.style import ACTION_COLOR, MAX_WIDTH_IN, OUTPUT_WIDTH_PX, figure_to_png, inline_png_size

__all__ = [
    "ACTION_COLOR", "LOCALIZER_LOSS_TERMS", "MAX_WIDTH_IN", "OUTPUT_WIDTH_PX", "OVERVIEW_COLUMNS",
    "SimilarityBrowser", "VERDICT_COLOURS", "figure_to_png", "inline_png_size", "plot_boundary_histogram",
    "plot_bucket_map", "plot_bucket_shares", "plot_check_curves", "plot_claims_forest", "plot_clips",
    "plot_detection_timeline", "plot_dial_frames", "plot_dose_response",
    "plot_feature_timeline", "plot_frames_with_annotation", "plot_length_histogram", "plot_localizer_losses",
    "plot_map_vs_tiou", "plot_pretrain_curves", "plot_similarity_matrices", "plot_study_metrics",
    "pretrain_heads", "pretrain_metrics_overview",
]
