"""The built-in annotation readers, one module per format; importing this package registers them
(``tsplab.datasets.registry``)."""
from tsplab.datasets.readers import activitynet, custom, detad, tsp  # noqa: F401  (registers the readers)
