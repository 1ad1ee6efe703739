# %% [markdown]
# # 02 · Models and a community of priors
#
# The reconstructed CLOCC data are fitted with three survival models (PyMC):
#
# * **Weibull PH**: a Weibull baseline and one hazard ratio;
# * **piecewise PH**: a piecewise-constant baseline hazard (cut points in
#   `configs/clocc.toml`) and one hazard ratio;
# * **piecewise time-varying**: one log HR per interval, shrunk towards a
#   common mean (notebook 03).
#
# The prior on the (mean) log HR comes from a *community of priors*
# (Spiegelhalter et al. 2004): reference, sceptical, enthusiastic and
# pessimistic, defined by a minimal clinically important HR of 0.7. A reader
# who doubts the trial can ask what a sceptic should now believe.
#
# The fits were made by `kmbayes run` (stored in `models/`); this notebook
# loads them. Set `KMBAYES_FAST=1` for the quick profile the tests use.

# %%
import pandas as pd

from kmbayes.data import load_for_trial
from kmbayes.figures import plot_forest, plot_hr_triplot, plot_prob_benefit
from kmbayes.fitting import fit_one
from kmbayes.grid import stored_or_fast_grid
from kmbayes.provenance import derive_seed
from kmbayes.runspec import load_spec
from kmbayes.pipeline import DEFAULT_CONFIG, REPO_ROOT, fast_profile
from kmbayes.priors import conjugate_posterior, normal_likelihood_from_ci
from kmbayes.report import results_table
from kmbayes.trial import load_trial

FAST = fast_profile()
spec = load_spec(DEFAULT_CONFIG)
trial = load_trial(spec.trial)
grid = stored_or_fast_grid(spec, REPO_ROOT, REPO_ROOT / "data" / "processed" / "clocc_os_ipd.csv",
                           fast=FAST)

# %% [markdown]
# ## The priors
#
# Each prior is a normal distribution on the log HR, defined by data in the
# config (`[priors]`: MCID 0.7, tail probability 5%), not by code.

# %%
pd.DataFrame(
    [
        dict(prior=p.name, mu=p.mu, sigma=p.sigma, hr_median=p.hr_median,
             hr_95_lower=p.hr_interval()[0], hr_95_upper=p.hr_interval()[1],
             p_hr_lt_mcid=p.prob_hr_lt(spec.mcid_hr), p_hr_lt_1=p.prob_hr_lt(1.0))
        for p in spec.priors.values()
    ]
).round(3)

# %% [markdown]
# ## A first answer without any model: the conjugate normal approximation
#
# The published HR 0.58 (0.38–0.88) is a normal likelihood on the log scale
# (log HR −0.545, SE 0.214). Combined with each normal prior it gives a normal
# posterior in closed form. The models fitted to the reconstructed data below
# should land close to these numbers.

# %%
h = trial.reported_hr
log_hr, se = normal_likelihood_from_ci(h.estimate, h.lower, h.upper)
rows = []
for p in spec.priors.values():
    post = conjugate_posterior(p, log_hr, se)
    lo, hi = post.hr_interval()
    rows.append(dict(prior=p.name, hr=post.hr_median, lower=lo, upper=hi, p_hr_lt_1=post.prob_hr_lt(1.0)))
pd.DataFrame(rows).round(3)

# %% [markdown]
# ## The fitted models
#
# HR (posterior median, 95% credible interval), the probability of any benefit
# and of a clinically important one, and survival/RMST differences.

# %%
print(results_table(grid.results, trial, list(spec.milestones), list(spec.rmst_horizons)))

# %% [markdown]
# ## Prior, likelihood and posterior (figure 2)

# %%
main = "piecewise_ph"
post = {p: grid.fits[(main, p)] for p in spec.priors}
plot_hr_triplot(post, {p: f.prior for p, f in post.items()}, trial, model=main)

# %% [markdown]
# ## All models and priors (figure 3) and the probability of benefit (figure 6)

# %%
plot_forest(grid.fits, trial)

# %%
plot_prob_benefit(grid.fits, trial)

# %% [markdown]
# ## Fitting a model yourself
#
# One call fits one model under one prior, gated by the diagnostics (R-hat,
# ESS, divergences). Swapping the prior re-uses the compiled model.

# %%
data = load_for_trial(REPO_ROOT / "data" / "processed" / "clocc_os_ipd.csv", trial)[0]
settings = spec.fast_sampler if FAST else spec.sampler
fit = fit_one("weibull_ph", data, spec.priors["sceptical"], baseline=spec.baseline,
              settings=settings, gate=spec.fast_gate if FAST else spec.gate,
              seed=derive_seed(spec.seed, "notebook", "weibull_ph", "sceptical"))
print(fit.label, "gate passed:", fit.gate_passed)
pd.DataFrame({k: [v] for k, v in fit.diagnostics.items() if isinstance(v, (int, float))}).T
