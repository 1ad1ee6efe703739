"""kmbayes: Bayesian reanalysis of survival trials from their published numbers.

The package is import-light on purpose: ``kmbayes reconstruct`` must start in
well under a second, so nothing here imports PyMC, ArviZ, lifelines or pandas.
Heavy modules (``families``, ``fitting``, ``figures``) are imported on demand.
"""

__version__ = "0.1.0"
