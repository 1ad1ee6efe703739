"""Community of priors, the conjugate normal approximation and the tipping point.

Expected values are derived here by hand from the normal-normal formulas
(Spiegelhalter, Abrams & Myles 2004, sec. 3.6) and then compared with the
rounded numbers quoted for CLOCC. Tolerances: an HR printed to 2 decimals is
within 0.005 of the exact value, a probability printed to 3 decimals within
0.0005; we add 0.001 for the rounding of the published CI (0.38-0.88), which
moves the SE in its third decimal.
"""

from __future__ import annotations

import math

import pytest
from scipy import stats

from kmbayes import priors
from kmbayes.errors import InputError

Z95 = stats.norm.ppf(0.975)
HR_TOL = 0.005 + 0.001
P_TOL = 0.0005 + 0.001


def test_standard_prior_sigmas():
    sigma = -math.log(0.7) / stats.norm.ppf(0.95)
    assert sigma == pytest.approx(0.2168, abs=5e-5)
    s = priors.sceptical()
    assert (s.mu, s.sigma) == (0.0, pytest.approx(sigma))
    assert s.prob_hr_lt(0.7) == pytest.approx(0.05)
    e = priors.enthusiastic()
    assert e.mu == pytest.approx(math.log(0.7)) and e.sigma == pytest.approx(sigma)
    assert 1 - e.prob_hr_lt(1.0) == pytest.approx(0.05)
    p = priors.pessimistic()
    assert p.mu == pytest.approx(-math.log(0.7)) and p.prob_hr_lt(1.0) == pytest.approx(0.05)
    r = priors.reference()
    assert (r.mu, r.sigma) == (0.0, 10.0)


def test_likelihood_from_published_ci():
    y, se = priors.normal_likelihood_from_ci(0.58, 0.38, 0.88)
    assert y == pytest.approx(math.log(0.58))
    assert y == pytest.approx(-0.545, abs=5e-4)
    assert se == pytest.approx((math.log(0.88) - math.log(0.38)) / (2 * Z95))
    assert se == pytest.approx(0.214, abs=5e-4)


@pytest.mark.parametrize(
    "name, hr, lo, hi, p",
    [
        ("reference", 0.58, 0.38, 0.88, 0.994),
        ("sceptical", 0.76, 0.56, 1.02, 0.965),
        ("enthusiastic", 0.64, 0.47, 0.86, 0.998),
        ("pessimistic", 0.91, 0.67, 1.22, 0.743),
    ],
)
def test_conjugate_clocc(name, hr, lo, hi, p):
    y, se = priors.normal_likelihood_from_ci(0.58, 0.38, 0.88)
    prior = priors.standard(name)
    # by hand: precision-weighted mean and precision
    w0, w1 = 1 / prior.sigma**2, 1 / se**2
    m = (w0 * prior.mu + w1 * y) / (w0 + w1)
    s = (w0 + w1) ** -0.5
    post = priors.conjugate_posterior(prior, y, se)
    assert post.mu == pytest.approx(m) and post.sigma == pytest.approx(s)
    assert post.hr_median == pytest.approx(math.exp(m))
    lo_, hi_ = post.hr_interval()
    assert (lo_, hi_) == (pytest.approx(math.exp(m - Z95 * s)), pytest.approx(math.exp(m + Z95 * s)))
    assert post.prob_hr_lt(1.0) == pytest.approx(stats.norm.cdf(-m / s))
    # against the quoted, rounded numbers
    assert post.hr_median == pytest.approx(hr, abs=HR_TOL)
    assert lo_ == pytest.approx(lo, abs=HR_TOL) and hi_ == pytest.approx(hi, abs=HR_TOL)
    assert post.prob_hr_lt(1.0) == pytest.approx(p, abs=P_TOL)


def test_tipping_point_conjugate():
    y, se = priors.normal_likelihood_from_ci(0.58, 0.38, 0.88)
    s = priors.tipping_point_conjugate(y, se, 0.95)
    post = priors.conjugate_posterior(priors.PriorSpec("tp", 0.0, s), y, se)
    assert post.prob_hr_lt(1.0) == pytest.approx(0.95, abs=1e-9)
    # the standard sceptic (sigma 0.2168) is less sceptical than the tipping point
    assert s < priors.sceptical().sigma
    assert s == pytest.approx(0.1817, abs=1e-3)
    # closed form agrees with the root find
    assert priors.tipping_point_conjugate(y, se, 0.95, hr=1 - 1e-12) == pytest.approx(s, rel=1e-5)
    # a likelihood that never reaches 0.95 has no tipping point
    assert math.isinf(priors.tipping_point_conjugate(-0.1, 0.2, 0.95))


def test_custom_priors_and_errors():
    p = priors.custom("mine", {"center_hr": 0.8, "tail_prob": 0.1})
    assert p.mu == pytest.approx(math.log(0.8))
    assert 1 - p.prob_hr_lt(1.0) == pytest.approx(0.1)
    q = priors.custom("direct", {"mu": -0.1, "sigma": 0.3})
    assert (q.mu, q.sigma) == (-0.1, 0.3)
    s = priors.custom("strong", {"center_hr": 1.0, "threshold_hr": 0.8, "tail_prob": 0.05})
    assert s.prob_hr_lt(0.8) == pytest.approx(0.05)
    sets = priors.prior_set(["reference", "mine"], customs={"mine": {"center_hr": 0.8, "tail_prob": 0.1}})
    assert list(sets) == ["reference", "mine"]
    for tbl, fld in [
        ({"center_hr": 0.8}, "priors.custom.bad.tail_prob"),
        ({"center_hr": -1, "tail_prob": 0.1}, "priors.custom.bad.center_hr"),
        ({"mu": 0.0, "sigma": 0.0}, "priors.custom.bad.sigma"),
        ({"mu": 0.0}, "priors.custom.bad.sigma"),
        ({"center_hr": 0.8, "tail_prob": 0.7}, "priors.custom.bad.tail_prob"),
    ]:
        with pytest.raises(InputError) as ex:
            priors.custom("bad", tbl)
        assert ex.value.field == fld
    with pytest.raises(InputError) as ex:
        priors.standard("optimistic")
    assert ex.value.field == "priors.ids"
