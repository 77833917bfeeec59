"""Shares: a stream split once into canonical shares, taken in turn, the same items anywhere.

In one process the turn defines the items; a ProcessStreamer with any
number of workers up to ``n_shares`` gives exactly those items, maps over
a Shares stream map each share, and a state saved on one topology
(in one process, with any number of workers) loads on any other, the rest
equal to the rest of the run that saved it. (PyTorch's DataLoader over a
Shares stream is in test_torch.py.)
"""

import json
from collections import Counter
from itertools import islice

import numpy as np
import pytest
from hang_guard import no_hang
from hypothesis import given, settings
from hypothesis import strategies as st
from leaks import nothing_left_behind  # noqa: F401 (an autouse fixture)
from pipelines import PIPELINES, count, forever, lengths, plain
from resume_checker import assert_resumes_exactly, roundtrip

import shoal
import shoal.parallel._worker
from shoal import (
    ChainMux,
    ProcessStreamer,
    RoundRobinMux,
    Shares,
    ShoalError,
    ShoalTypeError,
    ShoalValueError,
    ShuffledMux,
    StochasticMux,
    Streamer,
    buffer_stream,
    cache,
    keras_tuples,
    tuples,
)


def letters(tag, n):
    """A streamer of ``n`` items ``tag0, tag1, ...``."""
    return Streamer([f"{tag}{k}" for k in range(n)])


def in_turn(lists):
    """The items of ``lists`` one from each in turn, a list leaving the turn when it ends."""
    iterators = [iter(items) for items in lists]
    out = []
    while iterators:
        going = []
        for it in iterators:
            item = next(it, None)
            if item is not None:
                out.append(item)
                going.append(it)
        iterators = going
    return out


def workers(stream, n_workers, start_method="fork", **kwargs):
    return ProcessStreamer(stream, n_workers=n_workers, start_method=start_method, **kwargs)


# -- in one process: the turn ------------------------------------------------------------


FILES = ChainMux([letters("a", 3), letters("b", 1), letters("c", 2), letters("d", 4)])


@pytest.mark.parametrize("n_shares, expected", [
    # Share 0: files a, c (a0 a1 a2 c0 c1); share 1: files b, d (b0 d0 d1 d2 d3).
    (2, ["a0", "b0", "a1", "d0", "a2", "d1", "c0", "d2", "c1", "d3"]),
    # One file each: b ends after one item, c after two, a after three.
    (4, ["a0", "b0", "c0", "d0", "a1", "c1", "d1", "a2", "d2", "d3"]),
    # Share 0: files a, d; share 1: b; share 2: c.
    (3, ["a0", "b0", "c0", "a1", "c1", "a2", "d0", "d1", "d2", "d3"]),
    (1, ["a0", "a1", "a2", "b0", "c0", "c1", "d0", "d1", "d2", "d3"]),
])
def test_the_items_are_the_shares_in_turn_an_ended_share_leaving_the_turn(n_shares, expected):
    shares = Shares(FILES, n_shares)
    assert list(shares) == expected
    assert list(shares) == in_turn([list(FILES.shard(i, n_shares)) for i in range(n_shares)])
    assert list(shares.iterator()) == expected


def test_a_share_that_gives_nothing_leaves_the_turn_at_once():
    mux = ChainMux([letters("a", 3), letters("b", 0), letters("c", 2)])
    assert list(Shares(mux, 3)) == ["a0", "c0", "a1", "c1", "a2"]


def test_shares_of_unequal_lengths_of_a_random_mux_are_its_shards_in_turn():
    mux = StochasticMux(lengths("abcde", (20, 5, 13, 30, 9)), 2, None, mode="exhaustive",
                        random_state=11)
    shards = [list(mux.shard(i, 3)) for i in range(3)]
    assert [len(share) for share in shards] == [50, 14, 13]  # a, d / b, e / c
    assert list(Shares(mux, 3)) == in_turn(shards)


@pytest.mark.parametrize("name", ["streamer", "streamer of a list", "chain", "shuffled",
                                  "stochastic exhaustive binomial", "cache", "buffer_stream"])
def test_one_share_is_the_stream_itself(name):
    make = PIPELINES[name]
    expected = plain(list(islice(make(), 150)))
    assert plain(list(islice(Shares(make(), 1), 150))) == expected


def test_max_iter_stops_after_that_many_items_in_one_process_and_in_workers():
    shares = Shares(FILES, 2)
    assert list(shares(max_iter=5)) == ["a0", "b0", "a1", "d0", "a2"]
    assert list(shares.iterate(max_iter=0)) == []
    with no_hang():
        for n_workers in (1, 2):
            assert list(workers(shares, n_workers)(max_iter=5)) == ["a0", "b0", "a1", "d0", "a2"]
            assert list(workers(shares, n_workers)(max_iter=50)) == list(shares)


def test_a_cycling_iteration_repeats_the_pass():
    shares = Shares(FILES, 2)
    one_pass = list(shares)
    assert list(islice(shares.iterator(cycle=True), 25)) == (one_pass * 3)[:25]
    assert list(islice(shares.cycle(), 25)) == (one_pass * 3)[:25]
    with no_hang():
        it = workers(shares, 2).iterator(cycle=True)
        assert list(islice(it, 25)) == (one_pass * 3)[:25]
        it.close()


def test_a_seeded_stream_gives_the_same_items_on_every_run():
    mux = ShuffledMux([Streamer(forever, tag) for tag in "abcde"], random_state=4)
    first = list(islice(Shares(mux, 3), 200))
    assert list(islice(Shares(mux, 3), 200)) == first
    made_again = ShuffledMux([Streamer(forever, tag) for tag in "abcde"], random_state=4)
    assert list(islice(Shares(made_again, 3), 200)) == first
    # Share 0 holds a and d, share 1 b and e, share 2 c.
    assert {tag for tag, _ in first[0::3]} == {"a", "d"}
    assert {tag for tag, _ in first[1::3]} == {"b", "e"}
    assert {tag for tag, _ in first[2::3]} == {"c"}
    other = list(islice(Shares(ShuffledMux([Streamer(forever, tag) for tag in "abcde"],
                                           random_state=5), 3), 200))
    # 133 draws among two streamers (shares 0 and 1) differ by chance with p = 1 - 2**-133.
    assert other != first


def test_an_unseeded_stream_draws_anew_at_every_run():
    mux = ShuffledMux([Streamer(forever, tag) for tag in "abcd"])
    first = list(islice(Shares(mux, 2), 200))
    # Two runs of 200 draws among two streamers are equal with p = 2**-200.
    assert list(islice(Shares(mux, 2), 200)) != first
    assert {tag for tag, _ in first[0::2]} == {"a", "c"}


# -- refused at the call -------------------------------------------------------------------


def one_generator():
    yield 1


@pytest.mark.parametrize("stream, n_shares, error, builtin, message", [
    (FILES, 0, ShoalValueError, ValueError, r"^n_shares must be >= 1, got 0$"),
    (FILES, -1, ShoalValueError, ValueError, r"^n_shares must be >= 1, got -1$"),
    (FILES, "2", ShoalTypeError, TypeError, r"^n_shares must be an integer, got '2' \(str\)$"),
    (FILES, True, ShoalTypeError, TypeError, r"^n_shares must be an integer, got True \(bool\)$"),
    (FILES, 2.0, ShoalTypeError, TypeError, r"^n_shares must be an integer, got 2.0 \(float\)$"),
    (FILES, 5, ShoalValueError, ValueError,
     r"^cannot split ChainMux\(<4 streamers>, mode='exhaustive'\) into n_shares=5: count must "
     r"be at most the number of streamers .* \(4\), got 5: every share needs at least one"),
    (Streamer(one_generator), 2, ShoalValueError, ValueError,
     r"^cannot split Streamer\(one_generator\) into n_shares=2: Streamer\(one_generator\) is "
     r"one stream: it cannot be split into 2 shares"),
    (Shares(FILES, 2), 2, ShoalTypeError, TypeError,
     r"^stream is a Shares stream already: Shares\(ChainMux"),
    (Shares(FILES, 2), 1, ShoalTypeError, TypeError, r"^stream is a Shares stream already"),
    (one_generator, 2, ShoalTypeError, TypeError,
     r"^stream must be a Streamer or a mux, got <function one_generator"),
])
def test_what_cannot_be_split_so_is_refused(stream, n_shares, error, builtin, message):
    for catch in (error, ShoalError, builtin):
        with pytest.raises(catch, match=message):
            Shares(stream, n_shares)


def test_a_batch_size_that_is_not_a_multiple_of_n_shares_is_refused():
    for catch in (ShoalValueError, ShoalError, ValueError):
        with pytest.raises(catch, match=(
                r"^buffer_size must be a multiple of n_shares=3 for a batch of Shares\(.*\) to "
                r"hold as many items of each share, got 4$")):
            Streamer(buffer_stream, Shares(FILES, 3), 4)


def test_the_batches_of_a_shares_stream_are_not_batched_again():
    batches = Streamer(buffer_stream, Shares(FILES, 2), 4)
    for catch in (ShoalValueError, ShoalError, ValueError):
        with pytest.raises(catch, match=r"^cannot batch the batches of Shares\(.*\) again: batch "
                                        r"its stream instead$"):
            Streamer(buffer_stream, batches, 2)
    # Another map over the batches maps each share's batches.
    assert isinstance(Streamer(tuples, batches, "x"), Shares)


def test_batches_of_a_shares_stream_refuse_workers_that_give_them_as_they_come():
    batches = Streamer(buffer_stream, Shares(FILES, 2), 4)
    for catch in (ShoalValueError, ShoalError, ValueError):
        with pytest.raises(catch, match=r"^ordered must be True for Shares\(.*\): its batches are "
                                        r"joined from every share's part"):
            ProcessStreamer(batches, n_workers=2, ordered=False)


@pytest.mark.parametrize("n_workers", [3, 5])
def test_more_workers_than_shares_are_refused(n_workers):
    for catch in (ShoalValueError, ShoalError, ValueError):
        with pytest.raises(catch, match=(
                r"^n_workers must be at most the n_shares=2 of Shares\(.*\): each worker runs "
                rf"one share or more, got {n_workers}$")):
            ProcessStreamer(Shares(FILES, 2), n_workers=n_workers)


# -- maps over a Shares stream map its shares ------------------------------------------


def arrays(tag, n):
    """``n`` items ``{"x": [tag, i], "y": i}``."""
    for i in range(n):
        yield {"x": np.array([tag, i]), "y": i}


def rows(tag, n):
    """``n`` items ``{"x": [[tag, i]]}``: a row each, to concatenate along an axis."""
    for i in range(n):
        yield {"x": np.array([[tag, i]])}


# Shares of 3: streamers 0, 3 (5 + 0 items), 1, 4 (2 + 1), 2, 5 (4 + 3).
SIZES = (5, 2, 4, 0, 1, 3)


def array_files(source=arrays, sizes=SIZES):
    return ChainMux([Streamer(source, tag, size) for tag, size in enumerate(sizes)])


def batches_in_turn(shards, size, partial):
    """The batches of a Shares stream: round by round, each share's next ``size`` items."""
    parts = [[items[k:k + size] for k in range(0, len(items), size)
              if partial or k + size <= len(items)] for items in shards]
    return [[item for share in parts if r < len(share) for item in share[r]]
            for r in range(max(map(len, parts)))]


def rows_of(batches):
    return [[tuple(row) for row in batch["x"].tolist()] for batch in batches]


@pytest.mark.parametrize("partial", [False, True])
def test_a_batch_holds_consecutive_items_of_each_share_share_after_share(partial):
    batches = list(Streamer(buffer_stream, Shares(array_files(), 3), 6, partial=partial))
    if partial:
        expected = [
            [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)],
            [(0, 2), (0, 3), (4, 0), (2, 2), (2, 3)],  # share 1's last part: one item
            [(0, 4), (5, 0), (5, 1)],  # share 1 has ended
            [(5, 2)],
        ]
    else:  # each share's last part, if short, is dropped
        expected = [
            [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)],
            [(0, 2), (0, 3), (2, 2), (2, 3)],
            [(5, 0), (5, 1)],
        ]
    assert rows_of(batches) == expected
    shards = [[tuple(item["x"].tolist()) for item in array_files().shard(i, 3)] for i in range(3)]
    assert rows_of(batches) == batches_in_turn(shards, 2, partial)
    assert next(iter(batches))["y"].tolist() == [0, 1, 0, 1, 0, 1]
    assert all(batch["x"].shape == (len(rows), 2) for batch, rows in zip(batches, expected))


def test_batches_along_an_axis_join_the_parts_along_it():
    batches = list(Streamer(buffer_stream, Shares(array_files(rows), 3), 6, partial=True, axis=0))
    assert rows_of(batches)[:2] == [[(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)],
                                    [(0, 2), (0, 3), (4, 0), (2, 2), (2, 3)]]
    along = list(Streamer(buffer_stream, Shares(array_files(rows), 3), 3, partial=True, axis=1))
    # One row; each share's item after each share's, along axis 1.
    assert [batch["x"].tolist() for batch in along[:3]] == [
        [[0, 0, 1, 0, 2, 0]], [[0, 1, 1, 1, 2, 1]], [[0, 2, 4, 0, 2, 2]]]
    # Share lengths 5, 3 and 7: three parts, then two, then one.
    assert [batch["x"].shape for batch in along] == [(1, 6)] * 3 + [(1, 4)] * 2 + [(1, 2)] * 2


def test_batches_are_the_same_with_any_number_of_workers():
    for partial in (False, True):
        for axis in (None, 0):
            source = rows if axis == 0 else arrays
            stream = Streamer(buffer_stream, Shares(array_files(source), 3), 6, partial=partial,
                              axis=axis)
            expected = rows_of(stream)
            with no_hang():
                for n_workers in (1, 2, 3):
                    assert rows_of(workers(stream, n_workers)) == expected


MAPS = {
    "tuples": (lambda s: Streamer(tuples, s, "x", "y"),
               lambda item: (item["x"], item["y"])),
    "keras_tuples": (lambda s: Streamer(keras_tuples, s, "x", "y"),
                     lambda item: (item["x"], item["y"])),
    "tuples of batches": (lambda s: Streamer(tuples, Streamer(buffer_stream, s, 3), "x"),
                          None),
}


@pytest.mark.parametrize("name", list(MAPS))
def test_a_map_over_shares_is_the_shares_of_the_map(name):
    mapped, of_item = MAPS[name]
    shares = Shares(array_files(), 3)
    stream = mapped(shares)
    assert isinstance(stream, Shares) and stream.n_shares == 3
    got = plain(list(stream))
    assert got == plain(list(Shares(mapped(array_files()), 3))) if of_item else got
    if of_item is not None:
        assert got == plain([of_item(item) for item in shares])
    else:  # batches of three, a tuple of one
        assert got[0] == ([[0, 0], [1, 0], [2, 0]],)
    with no_hang():
        for n_workers in (1, 2, 3):
            assert plain(list(workers(stream, n_workers))) == got


def test_a_seeded_cache_over_shares_caches_each_share_the_same_in_one_process_and_in_workers():
    stream = Streamer(cache, Shares(array_files(sizes=(5, 2, 4, 6, 1, 3)), 3), 3, prob=0.5,
                      random_state=1)
    assert isinstance(stream, Shares)
    expected = plain(list(stream))
    assert plain(list(stream)) == expected
    # Each share is its streamers' items through a cache of its own.
    assert expected == plain(in_turn([list(Streamer(cache, array_files(sizes=(5, 2, 4, 6, 1, 3)),
                                                    3, prob=0.5, random_state=1).shard(i, 3))
                                      for i in range(3)]))
    items = [tuple(item["x"]) for item in expected]
    assert len(items) > 21 and set(items) == {(t, i) for t, n in enumerate((5, 2, 4, 6, 1, 3))
                                               for i in range(n)}
    with no_hang():
        for n_workers in (1, 2, 3):
            assert plain(list(workers(stream, n_workers))) == expected


# -- in workers: the items of one process, with any number of workers ----------------------


def _split(name):
    """The most shares (3 at most) the pipeline ``name`` splits into, or None."""
    for n_shares in (3, 2):
        try:
            Shares(PIPELINES[name](), n_shares)
        except ShoalValueError:
            continue
        return n_shares
    return None


#: The pipelines that split, and into how many shares.
SPLIT = {name: n for name in PIPELINES if (n := _split(name)) is not None}
#: Those, but for the ones a share of which cannot run (a cycling mux of nothing).
EMPTY_SHARES = {"chain cycle", "chain cycle of a source", "stochastic no pruning"}
RUNS = {name: n for name, n in SPLIT.items() if name not in EMPTY_SHARES}
N_ITEMS = 40


def run(stream, n_items=N_ITEMS):
    """The first ``n_items`` items of ``stream`` (plain), and the error that stopped it, if any."""
    items = []
    it = stream.iterator()
    try:
        for item in it:
            items.append(plain(item))
            if len(items) == n_items:
                break
    except ShoalError as exc:
        return items, f"{type(exc).__name__}: {exc}"
    finally:
        it.close()
    return items, None


def test_every_kind_of_pipeline_that_splits_is_in_the_runs():
    # Every mux kind and mode of pipelines.py: the ones that cannot split are one stream.
    assert set(PIPELINES) - set(SPLIT) == {
        "streamer", "streamer of a list", "streamer of a streamer", "chain of a generator",
        "cache", "batches of a cache that ends, in a mux"}
    assert len(RUNS) >= 30


@pytest.mark.parametrize("name", list(SPLIT))
def test_workers_give_the_items_of_one_process_for_every_number_of_workers(name):
    n_shares = SPLIT[name]
    expected, error = run(Shares(PIPELINES[name](), n_shares))
    assert (error is not None) == (name in EMPTY_SHARES)
    with no_hang():
        for n_workers in range(1, n_shares + 1):
            got, got_error = run(workers(Shares(PIPELINES[name](), n_shares), n_workers))
            assert got == expected, f"with {n_workers} workers"
            assert got_error == error  # a share's error, after the same items


@pytest.mark.parametrize("start_method", ["spawn", "forkserver"])
@pytest.mark.parametrize("name", ["chain of a source streamer", "stochastic with_replacement poisson",
                                  "buffer_stream"])
def test_workers_started_otherwise_give_the_items_of_one_process(name, start_method):
    n_shares = SPLIT[name]
    expected, _ = run(Shares(PIPELINES[name](), n_shares))
    with no_hang():
        got, error = run(workers(Shares(PIPELINES[name](), n_shares), 2, start_method))
    assert error is None and got == expected


def key(item):
    return json.dumps(item, sort_keys=True)


FINITE = [name for name in RUNS if len(run(Shares(PIPELINES[name](), RUNS[name]), 500)[0]) < 500]


def test_the_finite_pipelines_are_many():
    assert len(FINITE) >= 9


@pytest.mark.parametrize("name", FINITE)
def test_workers_as_they_come_give_the_same_items_in_another_order(name):
    n_shares = SPLIT[name]
    expected = Counter(map(key, run(Shares(PIPELINES[name](), n_shares), 500)[0]))
    with no_hang():
        for n_workers in range(1, n_shares + 1):
            got, error = run(workers(Shares(PIPELINES[name](), n_shares), n_workers,
                                     ordered=False), 500)
            assert error is None and Counter(map(key, got)) == expected


# -- resume across topologies ---------------------------------------------------------------


def topology(stream, where):
    """``stream`` run in one process (``where`` 0) or by ``where`` forked workers."""
    return stream if where == 0 else workers(stream, where)


_END = object()


def assert_resumes_across_topologies(make, n_shares, save_in, positions, n_after=10,
                                     cycle=False, load_in=None):
    """Save an iteration of ``make()`` run in ``save_in`` at ``positions``; load everywhere.

    ``save_in``, and every topology loaded: 0, one process, or a number of
    workers. Each state, after a JSON round trip, is loaded in one process
    and with ``load_in(k)`` workers for the ``k``-th state (by default all
    of 1..n_shares in turn); the next ``n_after`` items must be those the
    saving run gave after it (not those of a fresh run: an unseeded stream
    draws anew at every run). A state is also saved at the end, if the
    iteration ends; nothing comes after it.
    """
    load_in = load_in or (lambda k: [0, 1 + k % n_shares])
    it = topology(Shares(make(), n_shares), save_in).iterator(cycle)
    states, items = [], []
    while len(items) < max(positions) + n_after:
        if len(items) in positions:
            states.append((len(items), roundtrip(it.state_dict())))
        item = next(it, _END)
        if item is _END:
            states.append((len(items), roundtrip(it.state_dict())))
            break
        items.append(plain(item))
    it.close()
    for k, (position, state) in enumerate(states):
        assert state["n_given"] == position
        for where in load_in(k):
            resumed = topology(Shares(make(), n_shares), where).iterator(cycle)
            resumed.load_state_dict(json.loads(json.dumps(state)))
            got = [plain(item) for item in islice(resumed, n_after)]
            resumed.close()
            assert got == items[position:position + n_after], (
                f"saved in {save_in}, at item {position}, loaded in {where}")
    return items


POSITIONS = {0, 1, 2, 4, 11, 25}


@pytest.mark.parametrize("save_in", ["one process", "workers"])
@pytest.mark.parametrize("name", list(RUNS))
def test_a_state_saved_anywhere_resumes_anywhere(name, save_in):
    n_shares = RUNS[name]
    with no_hang():
        assert_resumes_across_topologies(PIPELINES[name], n_shares,
                                         0 if save_in == "one process" else n_shares, POSITIONS)


@pytest.mark.parametrize("name", ["chain", "stochastic exhaustive poisson", "shuffled of stochastic",
                                  "cache of a mux", "unseeded tree under a seed"])
def test_a_state_saved_by_one_worker_hosting_every_share_resumes_anywhere(name):
    n_shares = RUNS[name]
    with no_hang():
        assert_resumes_across_topologies(PIPELINES[name], n_shares, 1, POSITIONS,
                                         load_in=lambda k: range(n_shares + 1))


@pytest.fixture
def few_snapshots(monkeypatch):
    """Forked workers snapshot their share only after their first item, when they wait, and at the end.

    So a state saved by workers has items to skip when it is loaded.
    """
    monkeypatch.setattr(shoal.parallel._worker, "SNAPSHOT_RATIO", 10**9)


@pytest.mark.parametrize("name", ["chain of muxes", "stochastic with_replacement binomial",
                                  "round robin permuted", "tuples"])
def test_a_state_saved_by_workers_far_from_their_snapshots_resumes_anywhere(name, few_snapshots):
    n_shares = RUNS[name]
    with no_hang():
        assert_resumes_across_topologies(PIPELINES[name], n_shares, 2, POSITIONS,
                                         load_in=lambda k: range(n_shares + 1))


CYCLED = ["streamer of a chain", "chain", "round robin", "chain of a source streamer",
          "stochastic exhaustive poisson", "reseeded stochastic of seeded muxes"]


@pytest.mark.parametrize("name", CYCLED)
def test_a_state_of_a_cycling_iteration_resumes_anywhere(name):
    n_shares = RUNS[name]
    one_pass = len(list(Shares(PIPELINES[name](), n_shares)))
    positions = {0, one_pass - 1, one_pass, one_pass + 1, 2 * one_pass + 3}
    with no_hang():
        for save_in in (0, n_shares):
            items = assert_resumes_across_topologies(PIPELINES[name], n_shares, save_in,
                                                     positions, cycle=True)
            assert len(items) == 2 * one_pass + 13


def unseeded():
    """Nested unseeded muxes, random, cycling and rate-limited: every run draws anew."""
    return StochasticMux([
        ShuffledMux([Streamer(forever, t) for t in "ab"]),
        ChainMux([StochasticMux(lengths("cd", (3, 4)), 1, 2, mode="exhaustive"),
                  Streamer(count, "e", 2)], mode="cycle"),
        RoundRobinMux(lengths("fg", (2, 3)), mode="permuted_cycle"),
        Streamer(forever, "h"),
    ], 2, 3, dist="poisson")


def test_an_unseeded_stream_resumes_with_the_draws_of_the_run_that_saved_it():
    first = list(islice(Shares(unseeded(), 2), 60))
    # Two runs of 60 items drawn from nested unseeded muxes are equal with p < 2**-40.
    assert list(islice(Shares(unseeded(), 2), 60)) != first
    with no_hang():
        for save_in in (0, 1, 2):
            assert_resumes_across_topologies(unseeded, 2, save_in, POSITIONS,
                                             load_in=lambda k: [0, 1, 2])


def test_a_state_saved_before_the_first_item_holds_the_seed_of_the_pass():
    it = Shares(unseeded(), 2).iterator()
    state = roundtrip(it.state_dict())
    expected = [next(it) for _ in range(30)]
    it.close()
    with no_hang():
        for where in (0, 1, 2):
            resumed = topology(Shares(unseeded(), 2), where).iterator()
            resumed.load_state_dict(state)
            assert [next(resumed) for _ in range(30)] == expected
            resumed.close()


@pytest.mark.parametrize("name", ["chain", "stochastic exhaustive constant", "tuples"])
def test_the_resume_checker_holds_for_shares_in_one_process_and_in_workers(name):
    n_shares = RUNS[name]
    assert_resumes_exactly(lambda: Shares(PIPELINES[name](), n_shares), n_positions=25,
                           n_after=8, normalize=plain)
    with no_hang():
        assert_resumes_exactly(lambda: workers(Shares(PIPELINES[name](), n_shares), 2),
                               n_positions=4, n_after=8, normalize=plain)


def test_batches_resume_across_topologies():
    def make():
        return ShuffledMux(lengths(range(4), (9, 5, 7, 3), arrays), random_state=1)

    def batches():
        return Streamer(buffer_stream, Shares(make(), 2), 4, partial=True)

    it = batches().iterator()
    states, expected = [], []
    for k in range(15):
        if k < 12:
            states.append(roundtrip(it.state_dict()))
        expected.append(plain(next(it)))
    it.close()
    with no_hang():
        for k, state in enumerate(states):
            for where in (0, 1 + k % 2):
                resumed = topology(batches(), where).iterator()
                resumed.load_state_dict(state)
                assert plain(list(islice(resumed, 3))) == expected[k:k + 3]
                resumed.close()
        saving = workers(batches(), 2).iterator()
        for _ in range(5):
            next(saving)
        state = roundtrip(saving.state_dict())
        saving.close()
        resumed = batches().iterator()
        resumed.load_state_dict(state)
        assert plain(list(islice(resumed, 4))) == expected[5:9]
        resumed.close()


def test_a_state_saved_by_workers_as_they_come_resumes_anywhere_with_every_item_once():
    def make():
        return Shares(ChainMux(lengths("abcdef", (9, 8, 7, 6, 2, 0))), 3)

    everything = Counter(make())
    with no_hang():
        for n_workers, position in ((1, 0), (2, 3), (3, 10)):
            it = workers(make(), n_workers, ordered=False).iterator()
            before = [next(it) for _ in range(position)]
            state = roundtrip(it.state_dict())
            it.close()
            for where, ordered in ((0, True), (2, True), (3, False)):
                resumed = (make() if where == 0 else workers(make(), where, ordered=ordered)
                           ).iterator()
                resumed.load_state_dict(state)
                assert Counter(before + list(resumed)) == everything
                resumed.close()


# -- corrupted and foreign states are refused at the load ----------------------------------


def saving_stream(n_shares=2):
    return Shares(StochasticMux(lengths("abcd", (9, 8, 7, 6)), 2, 3, random_state=2), n_shares)


def saved(stream, n_items=5):
    it = stream.iterator()
    for _ in range(n_items):
        next(it)
    state = roundtrip(it.state_dict())
    it.close()
    return state


def changed(state, change):
    state = json.loads(json.dumps(state))
    change(state["state"]["child"])
    return state


def assert_refused_and_going_on(stream, state, message, notes=()):
    """Loading ``state`` into an iteration of ``stream`` is refused; the iteration goes on."""
    expected = [plain(item) for item in islice(stream.iterator(), 8)]
    it = stream.iterator()
    before = [plain(next(it)) for _ in range(4)]
    with pytest.raises(ShoalValueError, match=message) as raised:
        it.load_state_dict(state)
    for note in notes:
        assert note in "\n".join(getattr(raised.value, "__notes__", []))
    after = [plain(next(it)) for _ in range(4)]
    it.close()
    assert before + after == expected


def set_field(field, value):
    def change(child):
        child[field] = value
    return change


def set_progress(child):
    child["states"][0]["n"] = -1


CORRUPTED = {
    "a bad seed": (set_field("seed", [1, 2, 3]), r"^state is corrupted at state\['state'\]"
                   r"\['child'\]\['seed'\]: it must be the pass's seed, four 32-bit words, or "
                   r"None, got \[1, 2, 3\]$"),
    "an ended share not hosted": (set_field("ended", [5]), r"^state is corrupted at state\["
                                  r"'state'\]\['child'\]\['ended'\]: it must be hosted shares, "
                                  r"each once, got \[5\]$"),
    "other hosted shares": (set_field("hosted", [0]), r"^state is corrupted at state\['state'\]"
                            r"\['child'\]\['hosted'\]: it must be the shares it hosts, \[0, 1\], "
                            r"got \[0\]$"),
    "a count below 0": (set_progress, r"^state is corrupted at state\['state'\]\['child'\]"
                        r"\['states'\]\[0\]: it must be a dict with a count 'n' and a 'state'"),
    "too few share states": (set_field("states", [None]), r"^state is corrupted at state\["
                             r"'state'\]\['child'\]\['states'\]: it must be one state per hosted "
                             r"share, got \[None\]$"),
    "another n_shares": (set_field("n_shares", 3), r"^state is of a Shares stream of n_shares=3, "
                         r"not of this one's 2: the shares differ"),
}


@pytest.mark.parametrize("where", [0, 2])
@pytest.mark.parametrize("case", list(CORRUPTED))
def test_a_corrupted_state_of_a_pass_is_refused_naming_the_field(case, where):
    change, message = CORRUPTED[case]
    state = changed(saved(saving_stream()), change)
    with no_hang():
        assert_refused_and_going_on(topology(saving_stream(), where), state, message)


@pytest.mark.parametrize("where", [0, 1, 2])
def test_a_state_of_other_shares_is_refused(where):
    with no_hang():
        assert_refused_and_going_on(topology(saving_stream(3), where), saved(saving_stream()),
                                    r"^state is of a Shares stream of n_shares=2, not of this "
                                    r"one's 3: the shares differ")


OTHER = Shares(ChainMux(lengths("abcd", (9, 8, 7, 6))), 2)


@pytest.mark.parametrize("save_in", [0, 2])
@pytest.mark.parametrize("where", [0, 1, 2])
def test_a_state_of_another_stream_is_refused_naming_the_share(save_in, where):
    with no_hang():
        state = saved(topology(saving_stream(), save_in))
        assert_refused_and_going_on(
            topology(OTHER, where), state,
            r"^state must be the state of a ChainMux iterator, got one of 'StochasticMux'\n",
            notes=["in the state of share 0 of Shares(ChainMux(<4 streamers>, mode='exhaustive'), "
                   "n_shares=2"])


PS_CORRUPTED = {
    "a turn of shares that are not": (
        set_field("turn", {"running": [0, 5], "position": 0}),
        r"^state is corrupted at state\['state'\]\['child'\]\['turn'\]: it must be \{'running': "
        r"the shares still running \(below 2\), 'position': whose turn is next among them\}, got"),
    "a turn past its shares": (
        set_field("turn", {"running": [0, 1], "position": 7}),
        r"^state is corrupted at state\['state'\]\['child'\]\['turn'\]"),
    "a turn of shares not numbers": (
        set_field("turn", {"running": ["a", 0], "position": 0}),
        r"^state is corrupted at state\['state'\]\['child'\]\['turn'\]: it must be \{'running'"),
    "a bad seed": (
        set_field("seed", "x"),
        r"^state is corrupted at state\['state'\]\['child'\]\['seed'\]: it must be the pass's "
        r"seed, four 32-bit words, or None, got 'x'"),
}


@pytest.mark.parametrize("where", [0, 1, 2])
@pytest.mark.parametrize("case", list(PS_CORRUPTED))
def test_a_corrupted_state_of_workers_is_refused_naming_the_field(case, where):
    # In one process, or by another number of workers, too (the turn is not used there).
    change, message = PS_CORRUPTED[case]
    with no_hang():
        state = changed(saved(workers(saving_stream(), 2)), change)
        assert_refused_and_going_on(topology(saving_stream(), where), state, message)


# -- properties: random trees, in one process and in workers ---------------------------------


tree_leaves = st.builds(lambda tag, n, endless: Streamer(forever, tag) if endless
                        else Streamer(count, tag, n),
                        st.sampled_from("abcdefgh"), st.integers(0, 6), st.booleans())


def _tree(kind, children, seed, choice):
    if kind == "shuffled":
        return ShuffledMux(children, random_state=seed)
    if kind == "stochastic":
        return StochasticMux(children, n_active=1 + seed % len(children), rate=3,
                             mode="exhaustive" if choice else "with_replacement",
                             random_state=seed)
    if kind == "chain":
        return ChainMux(children, mode="cycle" if choice else "exhaustive")  # (a cycle of
        # nothing raises: in workers too, after the same items)
    return RoundRobinMux(children, mode="permuted_cycle" if choice else "exhaustive",
                         random_state=seed)


def mux_trees(depth):
    children = tree_leaves if depth == 0 else st.one_of(tree_leaves, mux_trees(depth - 1))
    return st.builds(_tree, st.sampled_from(["shuffled", "stochastic", "chain", "round robin"]),
                     st.lists(children, min_size=1, max_size=4), st.integers(0, 2**32 - 1),
                     st.booleans())


@settings(max_examples=20, deadline=None, derandomize=True)
@given(mux_trees(2), st.data())
def test_random_trees_in_shares_give_the_same_items_in_workers(tree, data):
    n_streamers = len(tree.streamers)
    n_shares = data.draw(st.integers(1, n_streamers), label="n_shares")
    n_workers = data.draw(st.integers(1, n_shares), label="n_workers")
    expected, error = run(Shares(tree, n_shares), 30)
    with no_hang():
        got, got_error = run(workers(Shares(tree, n_shares), n_workers), 30)
        assert (got, got_error) == (expected, error)
        if error is None and len(expected) > 4:  # and a state saved by workers loads here
            it = workers(Shares(tree, n_shares), n_workers).iterator()
            for _ in range(3):
                next(it)
            state = roundtrip(it.state_dict())
            it.close()
            resumed = Shares(tree, n_shares).iterator()
            resumed.load_state_dict(state)
            assert [plain(item) for item in islice(resumed, 27)] == expected[3:]
            resumed.close()
