"""Documented input limits: past these, kmbayes refuses with a one-line error.

The limits keep inputs away from the numbers that crashed native code
(integer overflow in sampler buffers, float overflow in priors) or ran for
minutes without a word, and keep input-side work bounded: ``reconstruct`` at
any allowed size finishes in well under a minute on 2 cores (CLOCC: 0.4 s;
20,000 patients per arm: ~4 s), and every bundled trial file and run spec is
inside them. Sampling time is the run spec's choice: the documented CLOCC
run takes ~3 min, and sampler settings at their maxima take minutes (8
chains x 5,000 draws after 20,000 tuning steps, two models: 273 s, 1.6 GB),
but never crash. Each entry below says why it is where it is.

``arm_n_max`` (20,000)
    The reconstruction and the grid's per-patient log-likelihood scale
    linearly with n: n = 100,000 took 63 s for ``reconstruct`` alone. The
    largest oncology phase-3 arms are a few thousand patients; 20,000 leaves
    headroom and reconstructs in a few seconds.
``arm_n_min`` (5) and ``arm_events_min`` (1)
    With fewer than 5 patients or no event in an arm the log hazard ratio is
    not identified by the data: the forest plot overflowed (OverflowError)
    and the posterior is just the prior. Refused at input, not mid-run.
``curve_points_max`` (5,000)
    A digitized curve has tens to a few hundred clicks; 100,000 points ran
    past a minute in the curve engine.
``curve_bytes_max`` (1 MB)
    The curve file is read into memory; a larger file is not a digitized curve.
``trial_bytes_max`` / ``spec_bytes_max`` (1 MB)
    Same reasoning for the TOML files themselves.
``replicates_max`` (100) and ``patient_rows_max`` (500,000)
    ``--replicates 2000`` took 84 s. Reconstruction costs about 0.1 s per
    replicate of a CLOCC-sized trial and scales with patients x replicates
    (20,000 per arm x 200 replicates took 66 s and 1 GB), so both the
    replicate count and the rows written (patients in all arms x
    replicates) are capped: 100 CLOCC replicates take ~10 s, and
    500,000 rows ~15 s. Pooling uses 8. The same row cap applies to an IPD
    file given to ``fit``.
``draws_max`` / ``tune_max`` (20,000), ``chains_max`` (8), ``draws_total_max`` (40,000)
    ``draws = 1e9`` and ``chains = 1e6`` aborted inside the sampler while
    allocating. Memory grows with chains x draws (2 x 100,000 Weibull draws
    took 96 s and 3.2 GB), and a retry doubles draws and tune, so chains x
    draws is capped at 40,000 per fit (about 0.7 GB, 1.3 GB after a retry).
    CLOCC uses 2 x 2,500 (2 x 5,000 for the time-varying model).
``sigma_min`` / ``sigma_max`` (1e-3, 100) on the log-HR scale
    ``sigma = 1e300`` overflowed; a prior SD of 100 on the log HR is already
    flat over any hazard ratio a trial could show, and 1e-3 already fixes
    the HR to three digits.
``mu_abs_max`` (20)
    exp(20) ~ 5e8: a prior centred on a larger hazard ratio is a typo.
``baseline_sd_min`` / ``baseline_sd_max`` (1e-3, 10) for the baseline SDs
    Extreme values with ``retry = false`` segfaulted the sampler; an SD of
    10 on a log scale already spans a factor e^20 at 1 SD. ``time_ref`` must
    lie in [1e-3, ``time_max``].
``time_max`` (1e6)
    Times (medians, landmarks, follow-up, cut points) in any unit; 1e300
    overflowed downstream arithmetic.
``toml_depth_max`` (20)
    Nesting in a trial file or run spec; the real files use 3.
``extends_depth_max`` (10)
    Chained ``extends`` in run specs; the bundled ones use 1.
``path_chars_max`` (255)
    A ``curve``, ``trial`` or ``data`` path in a file: longer paths raised
    OSError (ENAMETOOLONG) tracebacks.
``label_chars_max`` (2,000)
    Names, labels and citations (a citation runs to a few hundred characters).
``models_max`` / ``priors_max`` (10 / 20)
    The grid is models x priors fits; 10 x 20 is already hours of sampling.
``cuts_max`` (50)
    A piecewise model with more intervals than this has no data per interval.
``seed_max`` (2**32 - 1)
    numpy's seed range; ``--seed -1`` raised a ValueError traceback.
"""

from __future__ import annotations

LIMITS: dict[str, float] = {
    "arm_n_max": 20_000,
    "arm_n_min": 5,
    "arm_events_min": 1,
    "curve_points_max": 5_000,
    "curve_bytes_max": 1_000_000,
    "trial_bytes_max": 1_000_000,
    "spec_bytes_max": 1_000_000,
    "replicates_max": 100,
    "patient_rows_max": 500_000,
    "draws_max": 20_000,
    "tune_max": 20_000,
    "chains_max": 8,
    "draws_total_max": 40_000,
    "sigma_min": 1e-3,
    "sigma_max": 100.0,
    "mu_abs_max": 20.0,
    "baseline_sd_min": 1e-3,
    "baseline_sd_max": 10.0,
    "time_max": 1e6,
    "toml_depth_max": 20,
    "extends_depth_max": 10,
    "path_chars_max": 255,
    "label_chars_max": 2000,
    "models_max": 10,
    "priors_max": 20,
    "cuts_max": 50,
    "seed_max": 2**32 - 1,
}


def toml_depth(obj, _depth: int = 0) -> int:
    """Nesting depth of a parsed TOML value (tables and arrays), iteratively.

    Iterative so that a document nested thousands deep cannot exhaust the
    Python stack while being measured.
    """
    best = 0
    stack = [(obj, 0)]
    while stack:
        v, d = stack.pop()
        best = max(best, d)
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, d + 1) for x in v)
    return best
