"""ChainMux over a source of streamers: a generator function, a generator, a Streamer.

pescador documents ``streamers`` as "a list of Streamers, or a generator (or
Streamer) of Streamers"; the outputs here are checked against pescador itself
where it is installed.
"""

import gc
import json
from collections import Counter
from itertools import islice

import pytest
from pipelines import PIPELINES, tagged

import shoal
from shoal import (
    ChainMux,
    EmptyStreamError,
    ProcessStreamer,
    RoundRobinMux,
    ShoalTypeError,
    ShoalValueError,
    SpentSourceError,
    Streamer,
)

CALLS = []  # the passes each source was started for


def letters(tag, n):
    for i in range(n):
        yield f"{tag}{i}"


def files():
    """Three files, the middle one empty."""
    CALLS.append("files")
    yield Streamer(letters, "a", 2)
    yield Streamer(letters, "b", 0)
    yield Streamer(letters, "c", 3)


def some_files(n_files, n_rows=2):
    CALLS.append(("some_files", n_files))
    for f in range(n_files):
        yield Streamer(letters, "abcdefghij"[f], n_rows)


def rows(file_index, n):
    for i in range(n):
        yield {"file": file_index, "i": i}


def row_files(n_files, n_rows):
    for f in range(n_files):
        yield Streamer(rows, f, n_rows)


@pytest.fixture(autouse=True)
def _calls():
    CALLS.clear()


# -- the three sources -------------------------------------------------------------


def test_a_generator_function_is_called_at_every_pass():
    chain = ChainMux(files)
    assert list(chain) == ["a0", "a1", "c0", "c1", "c2"]
    assert list(chain) == ["a0", "a1", "c0", "c1", "c2"]
    assert CALLS == ["files", "files"]  # called afresh for each pass, never at construction


def test_a_streamer_of_streamers_is_started_at_every_pass():
    chain = ChainMux(Streamer(some_files, 3), mode="cycle")
    assert list(chain(max_iter=14)) == ["a0", "a1", "b0", "b1", "c0", "c1"] * 2 + ["a0", "a1"]
    assert CALLS == [("some_files", 3)] * 3


def test_a_pass_gives_what_the_source_gives_now():
    # A source that finds new files between passes: each pass reads the new list.
    found = [Streamer(letters, "a", 1)]

    def listing():
        yield from list(found)

    chain = ChainMux(listing)
    assert list(chain) == ["a0"]
    found.append(Streamer(letters, "b", 2))
    assert list(chain) == ["a0", "b0", "b1"]


def test_a_generator_of_streamers_is_read_once_and_repeats_as_in_pescador():
    chain = ChainMux(some_files(2), mode="cycle")
    assert list(chain(max_iter=6)) == ["a0", "a1", "b0", "b1", "a0", "a1"]
    assert CALLS == [("some_files", 2)]


def test_a_one_shot_source_streams_once_then_says_so():
    chain = ChainMux(Streamer(some_files(2)))
    assert list(chain) == ["a0", "a1", "b0", "b1"]
    with pytest.raises(SpentSourceError, match="streams once"):
        list(chain)
    cycling = ChainMux(Streamer(some_files(1)), mode="cycle")
    with pytest.raises(SpentSourceError, match="streams once"):
        list(cycling(max_iter=10))


def test_items_that_are_not_streamers_are_wrapped_as_a_list_would_be():
    def sources():
        yield "xy"
        yield [1, 2]

    assert list(ChainMux(sources)) == ["x", "y", 1, 2]


@pytest.mark.parametrize("make", [
    lambda: files,
    lambda: Streamer(some_files, 3),
    lambda: some_files(3),
    lambda: Streamer(files),
])
def test_the_same_items_as_pescador(make):
    pescador = pytest.importorskip("pescador")
    for mode, n in (("exhaustive", None), ("cycle", 13)):
        mine = list(ChainMux(make(), mode=mode)(max_iter=n))
        theirs = list(pescador.ChainMux(make(), mode=mode)(max_iter=n))
        assert mine == theirs


# -- empty streamers and empty sources ------------------------------------------------


def test_empty_streamers_are_skipped_and_an_empty_cycle_says_so():
    def empties():
        yield Streamer(letters, "a", 0)
        yield Streamer(letters, "b", 0)

    assert list(ChainMux(empties)) == []
    with pytest.raises(EmptyStreamError, match="a whole pass yielded no item"):
        list(ChainMux(empties, mode="cycle")(max_iter=5))
    with pytest.raises(EmptyStreamError, match="a whole pass yielded no item"):
        list(ChainMux(Streamer(some_files, 0), mode="cycle")(max_iter=5))


# -- bad sources -------------------------------------------------------------------


def test_a_function_that_needs_arguments_is_refused_at_the_call():
    with pytest.raises(ShoalTypeError, match=r"streamers is a function.*some_files.*needs some"):
        ChainMux(some_files)


def test_an_item_that_cannot_be_a_streamer_is_named():
    def bad():
        yield Streamer(letters, "a", 1)
        yield 42

    with pytest.raises(ShoalTypeError, match=r"streamers\[1\] \(from Streamer\(bad\)\) must be a "
                                             r"Streamer.*got 42"):
        list(ChainMux(bad))


def test_an_error_of_the_source_reaches_the_caller_with_a_note():
    def failing():
        yield Streamer(letters, "a", 1)
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone") as info:
        list(ChainMux(failing))
    assert any("source of streamers" in note for note in info.value.__notes__)


# -- resuming ------------------------------------------------------------------------


def test_resume_mid_way_reads_the_source_afresh_and_skips_to_the_streamer():
    chain = ChainMux(Streamer(some_files, 4, 3), mode="cycle")
    it = chain.iterator()
    before = list(islice(it, 16))  # into the second pass, streamer b
    state = json.loads(json.dumps(it.state_dict()))
    expected = list(islice(it, 10))
    CALLS.clear()
    resumed = chain.iterator()
    resumed.load_state_dict(state)
    assert list(islice(resumed, 10)) == expected
    assert before[12:16] == ["a0", "a1", "a2", "b0"]
    assert CALLS == [("some_files", 4), ("some_files", 4)]  # this pass, then the next


# -- closing ------------------------------------------------------------------------


def failing_rows():
    yield "row"
    raise OSError("unreadable file")


@pytest.mark.parametrize("how", ["close", "break", "error"])
def test_the_source_of_streamers_is_closed_at_once(how):
    log = []

    def logged():
        try:
            yield Streamer(letters, "a", 3)
            yield Streamer(failing_rows)
        finally:
            log.append("source closed")

    gc.disable()
    try:
        it = ChainMux([ChainMux(logged)]).iterator()
        if how == "close":
            next(it)
            it.close()
        elif how == "break":
            for _ in it:
                break
            it.close()
        else:
            with pytest.raises(OSError, match="unreadable file"):
                list(it)
        assert log == ["source closed"]
    finally:
        gc.enable()


# -- shares: workers, ranks -------------------------------------------------------------


def test_shares_of_a_source_take_every_nth_streamer_and_cover_it_once():
    chain = ChainMux(Streamer(some_files, 5))
    shares = [list(chain.shard(i, 2)) for i in range(2)]
    assert shares == [["a0", "a1", "c0", "c1", "e0", "e1"], ["b0", "b1", "d0", "d1"]]
    assert [list(chain.shard(i, 2)) for i in range(2)] == shares  # the same on every call
    assert chain.shard(0, 1) is chain


def test_a_share_can_be_empty_and_says_so_when_it_must_cycle():
    chain = ChainMux(Streamer(some_files, 1), mode="cycle")
    with pytest.raises(EmptyStreamError, match="a whole pass yielded no item"):
        list(chain.shard(1, 2)(max_iter=3))


def test_a_generator_of_streamers_cannot_be_shared_and_says_so():
    chain = ChainMux(some_files(4))
    with pytest.raises(ShoalValueError, match="iterator of streamers cannot be split"):
        chain.shard(0, 2)


def test_a_chain_over_an_iterator_of_streamers_cannot_be_sharded():
    chain = ChainMux(iter(tagged(4)))
    with pytest.raises(shoal.ShoalValueError, match="streamers are not known until they are read"):
        chain.shard(0, 2)
    assert chain.shard(0, 1) is chain


def test_worker_processes_split_a_source_of_streamers():
    chain = ChainMux(Streamer(row_files, 5, 3))
    items = list(ProcessStreamer(chain, n_workers=2, start_method="fork"))
    assert Counter((item["file"], item["i"]) for item in items) == Counter(
        (f, i) for f in range(5) for i in range(3))


def test_worker_processes_refuse_to_split_a_generator_of_streamers():
    with pytest.raises(ShoalValueError, match="iterator of streamers cannot be split"):
        ProcessStreamer(ChainMux(row_files(5, 3)), n_workers=2, start_method="fork")


def test_stream_dataset_splits_a_source_of_streamers_among_dataloader_workers():
    pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    from shoal.torch import StreamDataset

    dataset = StreamDataset(ChainMux(Streamer(row_files, 5, 3)))
    got = [(int(item["file"]), int(item["i"]))
           for item in DataLoader(dataset, batch_size=None, num_workers=2)]
    assert Counter(got) == Counter((f, i) for f in range(5) for i in range(3))

    refusing = StreamDataset(ChainMux(row_files(5, 3)))
    with pytest.raises(ShoalValueError, match="iterator of streamers cannot be split"):
        list(DataLoader(refusing, batch_size=None, num_workers=2))


def test_a_source_chain_inside_another_mux():
    mux = RoundRobinMux([ChainMux(Streamer(some_files, 2, 1)), ChainMux(files)])
    assert list(mux) == ["a0", "a0", "b0", "a1", "c0", "c1", "c2"]
    assert shoal.ChainMux(files).n_streams is None


def test_states_of_shares_of_a_source_cannot_be_resharded_and_say_why():
    chain = ChainMux(Streamer(some_files, 4))
    states = [chain.shard(i, 2).iterator().state_dict() for i in range(2)]
    with pytest.raises(ShoalValueError, match="streamers come from a source"):
        shoal.reshard_states(chain, states, 3)


@pytest.mark.parametrize("make", [lambda: some_files(3), lambda: Streamer(some_files, 3),
                                  lambda: files])
def test_keras_validation_reads_one_pass_of_a_cycling_chain_of_any_source(make):
    pytest.importorskip("keras")
    pytest.importorskip("torch")
    from shoal.keras import _one_pass

    chain = ChainMux(make(), mode="cycle")
    assert list(_one_pass(chain)) == list(ChainMux(make()))
    assert chain.mode == "cycle"  # the recipe given is left as it is


@pytest.mark.parametrize("name", ["chain of a generator function", "chain of a source streamer",
                                  "chain cycle of a source", "shuffled of chains of sources"])
@pytest.mark.parametrize("bad, message", [
    ("7", r"must be a whole number"), (-1, r"must be a whole number"),
    (10**20, r"must be a whole number"), (2, r"must be 3, the count of its parent, got 2"),
])
def test_the_state_of_a_streamer_read_from_a_source_is_checked_as_it_opens(name, bad, message):
    # Its streamers are known only by reading the source: the state of the one
    # running is checked when the chain opens it again, naming the field (it
    # was a bare TypeError, ValueError or OverflowError from deep inside).
    it = PIPELINES[name]().iterator()
    list(islice(it, 3))
    state = it.state_dict()
    root = state["state"]
    if "children" in root:
        root = next(child["state"] for child in root["children"].values()
                    if child["state"]["child"] is not None)
    root["child"]["given"] = bad
    resumed = PIPELINES[name]().iterator()
    resumed.load_state_dict(state)
    with pytest.raises(ShoalValueError, match=r"state\['child'\]\['given'\]: it " + message):
        list(islice(resumed, 5))
