"""Statistical checks of the random muxes and of ``cache``, each with its false-failure rate.

Only the tests that state a false-failure rate are here; the behaviour of
each kind is tested in its own file (test_mux_stochastic.py, test_maps.py, ...).

Every test uses a fixed seed, so every test is deterministic: it passes or
fails the same way on every run. The statistical tests reject at a stated
significance level ALPHA; the "false-failure rate" quoted with each test is
the probability that the test would fail on a correct implementation if its
seed were drawn at random instead of fixed. With the fixed seeds below a
correct implementation passes.
"""

import itertools
import math
from collections import Counter
from itertools import islice

import numpy as np
import pytest
from scipy import stats
from tracking import DISTS, CallCounter, Tracker, activation_counts, tagged_streamers

import shoal

# Significance level of every statistical test in this file: for a random
# seed, each such test would fail a correct implementation with probability
# (at most, asymptotically) 1e-3.
ALPHA = 1e-3


# -- helpers -----------------------------------------------------------------


def count_variance(dist, rate, n_active):
    """The variance of the number of items per activation (see StochasticMux)."""
    whole = math.floor(rate)
    frac = rate - whole
    rounding = frac * (1 - frac)  # variance of a randomly rounded value
    if dist == "constant":
        return rounding
    if dist == "poisson" or n_active == 1:
        return rate - 1
    success = 1 - 1 / n_active
    trials = (rate - 1) / success
    t_frac = trials - math.floor(trials)
    # Var(1 + Bin(T, s)) with T randomly rounded around ``trials``.
    return trials * success * (1 - success) + success**2 * t_frac * (1 - t_frac)


def assert_weighted_shares(counts, weights, dispersion=1.0):
    """Chi-square goodness of fit of ``counts`` to ``weights``.

    Streamers of weight 0 must have a count of 0 and are left out of the
    test. ``dispersion`` divides the counts and the expected counts: it is
    the design effect of items that come in clusters (see
    test_stochastic_mux_shares_follow_weights).
    """
    counts = np.asarray(counts, dtype=float)
    weights = np.asarray(weights, dtype=float)
    zero = weights == 0
    assert np.all(counts[zero] == 0), f"a zero-weight streamer appeared: {counts}"
    counts = counts[~zero]
    probs = weights[~zero] / weights[~zero].sum()
    expected = counts.sum() * probs
    result = stats.chisquare(counts / dispersion, expected / dispersion)
    assert result.pvalue > ALPHA, (
        f"shares {counts / counts.sum()} do not match {probs} "
        f"(chi2={result.statistic:.2f}, p={result.pvalue:.2e})"
    )


# -- 1. shares of the items follow the weights -------------------------------


@pytest.mark.parametrize(
    "weights",
    [[1, 2, 3, 4], [0, 1, 0, 2, 3, 4, 0], None],
    ids=["1234", "zeros", "uniform"],
)
@pytest.mark.parametrize("length", [None, 1, 5], ids=["infinite", "len1", "len5"])
def test_shuffled_mux_shares_follow_weights(weights, length):
    # Each item of a ShuffledMux comes from streamer i independently with
    # probability w_i / sum(w) (finite streamers are restarted at once), so
    # the counts are exactly multinomial and Pearson's chi-square applies.
    # False-failure rate (random seed): 1e-3 per case.
    n = 4 if weights is None else len(weights)
    mux = shoal.ShuffledMux(tagged_streamers(n, length), weights=weights, random_state=11)
    n_items = 60_000
    items = list(mux(max_iter=n_items))
    assert len(items) == n_items
    counts = np.bincount(items, minlength=n)
    assert_weighted_shares(counts, [1] * n if weights is None else weights)


def dispersion_bound(dist, rate):
    """An upper bound of E[C^2] / E[C] for the count C of an activation.

    A binomial count's variance depends on its slot's share p of the active
    weight: (rate - 1) * p, plus at most 1/4 for rounding its number of
    trials; p <= 1 bounds it by the Poisson's, rate - 1, plus 1/4.
    """
    variance = count_variance(dist, rate, 2)
    if dist == "binomial":
        variance = count_variance("poisson", rate, 2) + 0.25
    return (variance + rate**2) / rate


N_ACTIVE = {"one": lambda n: 1, "half": lambda n: n // 2, "all": lambda n: n}


@pytest.mark.parametrize("n_active", ["one", "half", "all"])
@pytest.mark.parametrize("dist", DISTS)
@pytest.mark.parametrize("rate", [5, 4.5])
@pytest.mark.parametrize("weights", [[1, 2, 3, 4], [0, 1, 0, 2, 3, 4, 0]], ids=["1234", "zeros"])
def test_stochastic_mux_shares_follow_weights(weights, rate, dist, n_active):
    # With infinite streamers every activation gives exactly C items, C drawn
    # from `dist` with mean `rate` whichever streamer was chosen, and the
    # streamer of each activation is drawn independently with probability
    # p_i = w_i / sum(w): so the share of streamer i is its share of the
    # activations, p_i, however the items of the active slots interleave
    # (each item comes from an active slot picked in proportion to its
    # weight, so a heavy streamer's activations end sooner). The item
    # counts X_i are clustered: the residuals X_i - p_i * sum(X) have
    # covariance M * E[C^2] * (diag(p) - p p^T) over M activations, i.e.
    # d = E[C^2] / E[C] times the multinomial covariance of the sum(X) items.
    # Dividing the counts by the design effect d makes Pearson's statistic
    # chi-square with k - 1 degrees of freedom again (Rao-Scott; exact in
    # the limit, as the covariance is exactly proportional). A binomial
    # count's variance depends on its slot's share: the bound on d used here
    # only makes the test conservative. The activations still open when the
    # sample is cut off shift a count by at most n_active * max(C), which is
    # negligible next to the noise.
    # False-failure rate (random seed): at most 1e-3 per case (asymptotically).
    n = len(weights)
    mux = shoal.StochasticMux(
        tagged_streamers(n),
        n_active=N_ACTIVE[n_active](n),
        rate=rate,
        weights=weights,
        dist=dist,
        mode="with_replacement",
        random_state=2024,
    )
    n_items = 60_000
    counts = np.bincount(list(mux(max_iter=n_items)), minlength=n)
    assert counts.sum() == n_items
    assert_weighted_shares(counts, weights, dispersion=dispersion_bound(dist, rate))


@pytest.mark.parametrize("n_active", ["one", "half", "all"])
@pytest.mark.parametrize("dist", DISTS)
def test_single_active_shares_follow_weights(dist, n_active):
    # single_active: a streamer holds at most one slot; a slot that ends is
    # refilled with a streamer not active now, drawn by weight (the one that
    # ended included). Each item comes from an active slot picked in
    # proportion to its weight. The shares are then the weights, for any
    # n_active: in the continuous-time picture where an active streamer
    # gives items at rate w_i, the chance of going from the active set S to
    # S - i + j equals the chance of going back, so every active set is
    # equally likely in the long run and streamer i gives a share
    # proportional to w_i (checked by simulation for the counts used here).
    # With n_active = all, every streamer is always active and the items are
    # independent picks by weight: exactly multinomial (d = 1). Otherwise
    # they come in activations of C items; the design effect of the
    # with_replacement test bounds their clustering (the exclusion of active
    # streamers only makes the counts less dispersed).
    # False-failure rate (random seed): at most 1e-3 per case (asymptotically).
    weights = [1, 2, 3, 4, 6]
    n = len(weights)
    mux = shoal.StochasticMux(
        tagged_streamers(n),
        n_active=N_ACTIVE[n_active](n),
        rate=5,
        weights=weights,
        dist=dist,
        mode="single_active",
        random_state=77,
    )
    counts = np.bincount(list(mux(max_iter=60_000)), minlength=n)
    dispersion = 1.0 if n_active == "all" else dispersion_bound(dist, 5)
    assert_weighted_shares(counts, weights, dispersion=dispersion)


def test_single_active_with_every_streamer_active_gives_the_weights():
    # The example: every streamer active, weights .6/.3/.1. Items
    # were picked uniformly among the active slots, giving 1/3 each; now
    # each is an independent pick by weight: exactly multinomial.
    # False-failure rate (random seed): 1e-3.
    mux = shoal.StochasticMux(tagged_streamers(3), n_active=3, rate=8, weights=[0.6, 0.3, 0.1],
                              mode="single_active", random_state=1)
    counts = np.bincount(list(mux(max_iter=30_000)), minlength=3)
    assert_weighted_shares(counts, [0.6, 0.3, 0.1])
    assert counts[0] > 0.57 * 30_000  # far from 1/3 (18 standard deviations)


def test_exhaustive_gives_a_far_heavier_streamer_first():
    # The example: both active, weights [1e10, 1e-10]: every item of
    # the heavy one comes first (the chance of any light item before is
    # below 1e-17); they used to interleave.
    mux = shoal.StochasticMux([["h"] * 500, ["l"] * 500], n_active=2, rate=None,
                              weights=[1e10, 1e-10], mode="exhaustive", random_state=0)
    assert "".join(mux) == "h" * 500 + "l" * 500


def first_item_probs(weights, n_active):
    """P(the first item of an exhaustive pass comes from streamer i).

    The first ``n_active`` activations are drawn one at a time by weight
    among those not drawn yet; the first item then comes from one of them
    picked by weight.
    """
    weights = np.asarray(weights, dtype=float)
    probs = np.zeros(len(weights))
    for order in itertools.permutations(range(len(weights)), n_active):
        chance, left = 1.0, weights.sum()
        for i in order:
            chance *= weights[i] / left
            left -= weights[i]
        active = weights[list(order)]
        for i in order:
            probs[i] += chance * weights[i] / active.sum()
    return probs


@pytest.mark.parametrize("n_active", ["one", "half", "all"])
def test_exhaustive_first_items_follow_weights(n_active):
    # In exhaustive mode each streamer is activated once a pass (in a weighted
    # random order) and runs to exhaustion here (rate=None), so its share of
    # a pass is its length; the weights decide what comes first. Each pass
    # of a cycle with reseed_each_epoch draws anew, independently: the first
    # item of the passes is a multinomial sample of first_item_probs.
    # False-failure rate (random seed): 1e-3 per case.
    weights = [1, 2, 3, 4]
    mux = shoal.StochasticMux(tagged_streamers(4, length=2), n_active=N_ACTIVE[n_active](4),
                              rate=None, weights=weights, mode="exhaustive", random_state=8,
                              reseed_each_epoch=True)
    items = list(mux.cycle(max_iter=8 * 3000))
    passes = [items[k:k + 8] for k in range(0, len(items), 8)]
    assert all(sorted(p) == [0, 0, 1, 1, 2, 2, 3, 3] for p in passes)
    firsts = np.bincount([p[0] for p in passes], minlength=4)
    assert_weighted_shares(firsts, first_item_probs(weights, N_ACTIVE[n_active](4)))


@pytest.mark.parametrize("dist", DISTS)
def test_stochastic_mux_activations_follow_weights(dist):
    # In with_replacement mode each activation picks streamer i
    # independently with probability w_i / sum(w): the number of activations
    # per streamer is multinomial. Tracked with one activation id per start.
    # False-failure rate (random seed): 1e-3 per case.
    weights = [4, 0, 1, 3, 2]
    tracker = Tracker(len(weights))
    mux = shoal.StochasticMux(
        tracker.streamers(), n_active=3, rate=2, weights=weights, dist=dist, random_state=7
    )
    for _ in mux(max_iter=40_000):
        pass
    assert tracker.starts[1] == 0
    assert_weighted_shares(tracker.starts, weights)


def test_exhaustive_order_follows_weights(global_numpy_state):
    # In exhaustive mode the activation order is drawn one streamer at a
    # time, each with probability proportional to its weight among those not
    # yet drawn. Unseeded muxes draw a fresh order on every pass from numpy's
    # global state; we check the distribution of the first and of the second
    # streamer over many passes (two chi-square tests, each 1e-3).
    # False-failure rate (random seed): at most 2e-3 in all.
    weights = np.array([1.0, 2.0, 3.0, 4.0])
    mux = shoal.StochasticMux(
        tagged_streamers(4, length=1), n_active=1, rate=None, weights=weights, mode="exhaustive"
    )
    np.random.seed(3)
    firsts, seconds = [], []
    for _ in range(4000):
        order = list(mux)
        assert sorted(order) == [0, 1, 2, 3]
        firsts.append(order[0])
        seconds.append(order[1])
    assert_weighted_shares(np.bincount(firsts, minlength=4), weights)
    p = weights / weights.sum()
    # P(second = j) = sum_{i != j} p_i * w_j / (W - w_i)
    second_probs = [
        sum(p[i] * weights[j] / (weights.sum() - weights[i]) for i in range(4) if i != j)
        for j in range(4)
    ]
    assert_weighted_shares(np.bincount(seconds, minlength=4), second_probs)


# -- 2. the number of items per activation -----------------------------------


@pytest.mark.parametrize("n_active", [1, 3])
@pytest.mark.parametrize("rate", [5, 4.5])
@pytest.mark.parametrize("dist", DISTS)
def test_activation_counts_have_mean_rate(dist, rate, n_active):
    # Every completed activation of an infinite streamer gives exactly its
    # drawn count C, so the counts are (up to the few activations cut off by
    # the end of the sample, which are left out) independent draws of C.
    # The mean is checked with a one-sample t-test (~10^4 draws, so the
    # t-distribution is exact enough by the central limit theorem).
    # False-failure rate (random seed): 1e-3 per case; the loose variance
    # bounds below are > 6 standard errors wide, < 1e-8 each.
    counts = activation_counts(n_active, rate, dist, seed=100 + n_active)
    assert counts.min() >= 1
    if dist == "constant":
        assert set(counts.tolist()) <= {math.floor(rate), math.ceil(rate)}
        if rate == int(rate):
            assert np.all(counts == rate)
            return
    result = stats.ttest_1samp(counts, rate)
    assert result.pvalue > ALPHA, (
        f"mean count {counts.mean():.4f} != rate {rate} (p={result.pvalue:.2e}, "
        f"{len(counts)} activations)"
    )
    theory = count_variance(dist, rate, n_active)
    variance = counts.var(ddof=1)
    # Relative standard error of the sample variance here is ~1.5-3%.
    assert abs(variance - theory) < 0.2 * theory, (variance, theory)
    if dist == "binomial" and n_active > 1:
        success = 1 - 1 / n_active
        assert counts.max() <= 1 + math.ceil((rate - 1) / success)


def test_binomial_p_is_the_slots_share_of_the_active_weight():
    # Two streamers, both always active (single_active, n_active=2), weights
    # 3:1: a slot of streamer 0 has p = 3/4 of the active weight and one of
    # streamer 1 p = 1/4. Its count is 1 + Binomial(T, 1 - p) with
    # T = (rate - 1) / (1 - p), randomly rounded: at most 1 + 11 = 12 for
    # streamer 1 (T = 10.67) and up to 33 for streamer 0 (T = 32); with p
    # = 1 / n_active = 1/2 both were up to 17. Means are rate and variances
    # (rate - 1) * p + a rounding term below 1/4.
    # Mean: t-test, 1e-3 each; variance within 20%: more than 5 standard
    # errors (~700 to 2000 activations), below 1e-6 each.
    # False-failure rate (random seed): about 2e-3 in all.
    rate = 9
    tracker = Tracker(2)
    mux = shoal.StochasticMux(tracker.streamers(), n_active=2, rate=rate, weights=[3, 1],
                              mode="single_active", random_state=21)
    it = iter(mux)
    items = list(islice(it, 40_000))
    still_open = set(tracker.open_ids)
    it.close()
    per_activation = Counter((i, aid) for i, aid, _ in items)
    counts = {i: np.array([c for (j, aid), c in per_activation.items()
                           if j == i and aid not in still_open]) for i in (0, 1)}
    assert counts[1].max() <= 12
    assert counts[0].max() > 17
    for i, p in ((0, 0.75), (1, 0.25)):
        assert stats.ttest_1samp(counts[i], rate).pvalue > ALPHA, (i, counts[i].mean())
        variance = (rate - 1) * p
        assert abs(counts[i].var(ddof=1) - variance) < 0.2 * variance + 0.25, (i, p)


@pytest.mark.parametrize("trials, p", [(17.6, 0.85), (10.67, 0.25), (4.0, 0.5), (2000.5, 0.4),
                                       (150_000.0, 0.9999)])
def test_binomial_count_is_the_binomial_inverse_cdf(trials, p):
    # binomial_count turns one uniform into 1 draw of Binomial(T, p), T the
    # randomly rounded trials: summing the pmf in Python for small means,
    # numpy (seeded by the uniform) for large ones (the last two cases).
    # Mean: z-test over 20000 draws at 1e-3 (normal: many draws of a
    # bounded variable); variance within 10% (> 6 standard errors: < 1e-8).
    # False-failure rate (random seed): about 1e-3 per case.
    from shoal._random import binomial_count

    u = np.random.default_rng(5).random(20_000)
    draws = np.array([binomial_count(x, trials, p) for x in u])
    whole, frac = math.floor(trials), trials - math.floor(trials)
    assert draws.min() >= 0 and draws.max() <= whole + (frac > 0)
    mean = trials * p
    variance = trials * p * (1 - p) + p**2 * frac * (1 - frac)
    z = (draws.mean() - mean) / math.sqrt(variance / len(draws))
    assert abs(z) < stats.norm.ppf(1 - ALPHA / 2), (draws.mean(), mean)
    assert abs(draws.var() - variance) < 0.1 * variance


@pytest.mark.parametrize("lam", [0.5, 15.0, 4000.0])
def test_poisson_count_is_the_poisson_inverse_cdf(lam):
    # As above, for Poisson(lam) (numpy for the large mean).
    # False-failure rate (random seed): about 1e-3 per case.
    from shoal._random import poisson_count

    u = np.random.default_rng(6).random(20_000)
    draws = np.array([poisson_count(x, lam) for x in u])
    z = (draws.mean() - lam) / math.sqrt(lam / len(draws))
    assert abs(z) < stats.norm.ppf(1 - ALPHA / 2), (draws.mean(), lam)
    assert abs(draws.var() - lam) < 0.1 * lam


def test_poisson_counts_variance():
    # 1 + Poisson(rate - 1) has variance rate - 1: checked loosely (within
    # 10%, about 6 standard errors of the sample variance here; a failure
    # rate below 1e-8 for a random seed).
    for rate in (5, 4.5, 1.5):
        counts = activation_counts(3, rate, "poisson", seed=17)
        assert abs(counts.var(ddof=1) - (rate - 1)) < 0.1 * (rate - 1), rate


# -- 3. empty streamers --------------------------------------------------------


def test_shuffled_drops_empty_streamers():
    calls = CallCounter()
    streamers = [
        shoal.Streamer(calls.empty, "e0"),
        shoal.Streamer(calls.full, "a"),
        shoal.Streamer(calls.empty, "e1"),
        shoal.Streamer(["b", "b"]),  # finite: restarted whenever it runs out
    ]
    mux = shoal.ShuffledMux(streamers, weights=[5, 1, 5, 1], random_state=3)
    items = list(mux(max_iter=4000))
    assert len(items) == 4000
    assert set(items) == {"a", "b"}
    assert calls.calls["e0"] == calls.calls["e1"] == 1
    assert not calls.late_calls
    assert calls.calls["a"] == 1  # infinite: never restarted
    # Once the empty ones are dropped, a and b share the items equally.
    # False-failure rate (random seed): 1e-3.
    assert_weighted_shares([items.count("a"), items.count("b")], [1, 1])


# -- 4. cache ------------------------------------------------------------------


@pytest.mark.parametrize("prob", [0.1, 0.5, 0.9])
def test_cache_takes_new_items_with_probability_prob(prob):
    # After the first n_cache items, each step takes a new item from the
    # stream with probability prob, independently. With an increasing
    # infinite stream, a new item is one greater than every item before it;
    # over a fixed number of steps their number is Binomial(steps, prob).
    # False-failure rate (random seed): 1e-3 per case.
    n_cache, steps = 16, 40_000
    cached = shoal.cache(itertools.count(), n_cache, prob, random_state=21)
    out = list(islice(cached, n_cache + steps))
    assert out[:n_cache] == list(range(n_cache))
    new = 0
    highest = n_cache - 1
    for item in out[n_cache:]:
        if item > highest:
            assert item == highest + 1  # new items come in stream order
            highest = item
            new += 1
    result = stats.binomtest(new, steps, prob)
    assert result.pvalue > ALPHA, (new / steps, prob, result.pvalue)


# -- 5. RoundRobinMux permuted_cycle ----------------------------------------------


def test_permuted_cycle_passes_are_permutations():
    n, n_passes = 6, 3000
    mux = shoal.RoundRobinMux(
        [shoal.Streamer([j]) for j in range(n)], mode="permuted_cycle", random_state=12
    )
    items = list(mux(max_iter=n * n_passes))
    passes = [tuple(items[p * n:(p + 1) * n]) for p in range(n_passes)]
    for order in passes:
        assert sorted(order) == list(range(n))
    assert passes[0] == tuple(range(n))  # the first pass keeps the given order
    assert len(set(passes[1:])) > 100  # later passes vary
    # Later passes are uniform random permutations: the streamer that comes
    # first is uniform (chi-square), and so is the position of streamer 0.
    # False-failure rate (random seed): at most 2e-3 for the two tests.
    assert_weighted_shares(np.bincount([order[0] for order in passes[1:]], minlength=n), [1] * n)
    assert_weighted_shares(
        np.bincount([order.index(0) for order in passes[1:]], minlength=n), [1] * n
    )
    # Seeded: another pass, and another mux with the same seed, repeat it.
    assert list(mux(max_iter=n * n_passes)) == items
    again = shoal.RoundRobinMux(
        [shoal.Streamer([j]) for j in range(n)], mode="permuted_cycle", random_state=12
    )
    assert list(again(max_iter=n * n_passes)) == items
    other = shoal.RoundRobinMux(
        [shoal.Streamer([j]) for j in range(n)], mode="permuted_cycle", random_state=13
    )
    assert list(other(max_iter=n * n_passes)) != items
