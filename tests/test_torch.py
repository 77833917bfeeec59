"""PyTorch: a StreamDataset in a real DataLoader, across workers and across ranks."""

import copy
import json
import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="PyTorch is not installed (pip install torch, or pip install '.[torch]')"
)
import torch_sources as sources  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

import shoal  # noqa: E402
from shoal.torch import StreamDataset  # noqa: E402

TESTS = Path(__file__).resolve().parent


def ids(loader):
    out = []
    for item in loader:
        value = item["id"]
        out.extend(value.tolist() if hasattr(value, "tolist") else [value])
    return out


@pytest.fixture(autouse=True)
def no_rank_in_the_environment(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)


@pytest.mark.parametrize("num_workers", [0, 1, 2])
@pytest.mark.parametrize("mode", ["exhaustive", "chain"])
def test_the_workers_together_give_one_pass_of_the_data(num_workers, mode):
    dataset = StreamDataset(sources.files(mode=mode))
    loader = DataLoader(dataset, batch_size=None, num_workers=num_workers)
    got = ids(loader)
    assert sorted(got) == sources.ALL_IDS  # every item once: none twice, none missing


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_seeded_dataset_is_deterministic(num_workers):
    def run():
        return ids(DataLoader(StreamDataset(sources.files()), batch_size=None,
                              num_workers=num_workers))

    assert run() == run()


def test_the_dataloader_batches_items():
    loader = DataLoader(StreamDataset(sources.files()), batch_size=4, num_workers=2)
    batches = list(loader)
    assert batches[0]["x"].shape == (4, 2)
    assert batches[0]["x"].dtype == torch.int64
    assert sorted(i for b in batches for i in b["id"].tolist()) == sources.ALL_IDS


def test_shoal_buffering_works_with_batch_size_none():
    batched = shoal.Streamer(shoal.buffer_stream, sources.files(), 3)
    loader = DataLoader(StreamDataset(batched), batch_size=None, num_workers=0)
    batches = list(loader)
    assert all(b["x"].shape == (3, 2) for b in batches)
    assert sorted(i for b in batches for i in b["id"].tolist()) == sources.ALL_IDS


@pytest.mark.parametrize("start_method, wrap", [
    ("fork", "buffer_stream"), ("spawn", "buffer_stream"), ("fork", "tuples"),
    ("fork", "keras_tuples"), ("fork", "cache")])
def test_a_map_over_a_mux_is_split_among_the_workers(start_method, wrap):
    # docs/pytorch.md: StreamDataset(Streamer(buffer_stream, mux, 32)) with workers.
    mux = sources.files(n_rows=6)
    stream = {
        "buffer_stream": lambda: shoal.Streamer(shoal.buffer_stream, mux, 3),
        "tuples": lambda: shoal.Streamer(shoal.tuples, mux, "id"),
        "keras_tuples": lambda: shoal.Streamer(shoal.keras_tuples, mux, "x", "id"),
        "cache": lambda: shoal.Streamer(shoal.cache, mux, 2, prob=1.0),
    }[wrap]()
    loader = DataLoader(StreamDataset(stream), batch_size=None, num_workers=2,
                        multiprocessing_context=start_method)
    for _ in range(2):  # every epoch
        got = []
        for item in loader:
            value = item["id"] if isinstance(item, dict) else item[-1]
            got.extend(value.tolist() if hasattr(value, "tolist") else [value])
        assert sorted(got) == sorted(f * 1000 + i for f in range(6) for i in range(6))


def test_too_few_streamers_for_the_shares_is_a_clear_error():
    dataset = StreamDataset(sources.files(n_files=3), rank=1, world_size=2)
    with pytest.raises(shoal.ShoalValueError,
                       match=r"(?s)number of streamers .* \(3\), got 4: every share needs at least "
                             r"one streamer.*4 shares: 2 ranks x 2 DataLoader workers"):
        list(DataLoader(dataset, batch_size=None, num_workers=2))
    with pytest.raises(shoal.ShoalValueError, match="is one stream: it cannot be split into 2 shares"):
        list(DataLoader(StreamDataset(shoal.Streamer(sources.rows, 0, 3)), batch_size=None,
                        num_workers=2))


def test_ranks_from_arguments_and_from_the_environment_take_disjoint_shares(monkeypatch):
    shares = [ids(DataLoader(StreamDataset(sources.files(), rank=r, world_size=2),
                             batch_size=None, num_workers=1)) for r in range(2)]
    assert not set(shares[0]) & set(shares[1])
    assert sorted(shares[0] + shares[1]) == sources.ALL_IDS
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert ids(DataLoader(StreamDataset(sources.files()), batch_size=None)) == shares[1]
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(shoal.ShoalValueError, match="RANK must be in 0..WORLD_SIZE-1"):
        list(StreamDataset(sources.files()))


def test_bad_arguments_are_refused():
    with pytest.raises(shoal.ShoalTypeError, match=r"stream must be a Streamer or a mux, got \[1\]"):
        StreamDataset([1])
    with pytest.raises(shoal.ShoalValueError, match="give both rank and world_size, or neither"):
        StreamDataset(sources.files(), rank=0)
    with pytest.raises(shoal.ShoalValueError, match=r"rank must be < world_size \(2\), got 2"):
        StreamDataset(sources.files(), rank=2, world_size=2)


def test_the_dataset_state_can_be_saved_and_restored():
    dataset = StreamDataset(sources.files(n_rows=20))
    items = iter(dataset)
    first = [next(items)["id"] for _ in range(17)]
    state = json.loads(json.dumps(dataset.state_dict()))
    rest = [item["id"] for item in items]
    resumed = StreamDataset(sources.files(n_rows=20))
    resumed.load_state_dict(state)
    assert [item["id"] for item in resumed] == rest
    assert len(first) + len(rest) == 120


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


RANK_PROGRAM = """
import json, sys
import torch.distributed as dist
from torch.utils.data import DataLoader
import torch_sources as sources
from shoal.torch import StreamDataset
dist.init_process_group("gloo")
dataset = StreamDataset(sources.files())
got = [int(item["id"]) for item in DataLoader(dataset, batch_size=None, num_workers=1)]
shares = [None] * dist.get_world_size()
dist.all_gather_object(shares, got)
print(json.dumps({"rank": dist.get_rank(), "shares": shares}))
dist.destroy_process_group()
"""


def test_a_real_distributed_group_gives_each_rank_its_own_share():
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), WORLD_SIZE="2")
    ranks = [subprocess.Popen([sys.executable, "-c", RANK_PROGRAM], cwd=TESTS,
                              env=dict(env, RANK=str(r)), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for r in range(2)]
    outputs = []
    for process in ranks:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    shares = outputs[0]["shares"]
    assert outputs[1]["shares"] == shares  # all ranks agree on who had what
    assert shares[0] and shares[1] and not set(shares[0]) & set(shares[1])
    assert sorted(shares[0] + shares[1]) == sources.ALL_IDS


# docs/pytorch.md, "What an epoch is".


def _rows_of(n_files, n_rows):
    return [shoal.Streamer(sources.rows, f, n_rows) for f in range(n_files)]


def _epoch_ids(mux, n_shares):
    """One epoch over ``n_shares`` shares (as ranks, each with no DataLoader worker)."""
    return [i for rank in range(n_shares)
            for i in ids(DataLoader(StreamDataset(mux, rank=rank, world_size=n_shares),
                                    batch_size=None))]


@pytest.mark.parametrize("n_shares", [1, 2, 3, 4])
def test_an_exhaustive_mux_with_rate_none_gives_every_item_once_whatever_the_shares(n_shares):
    mux = shoal.StochasticMux(_rows_of(8, 5), 3, None, mode="exhaustive", random_state=0)
    assert sorted(_epoch_ids(mux, n_shares)) == [f * 1000 + i for f in range(8) for i in range(5)]


def test_with_a_finite_rate_an_epoch_reads_about_rate_items_of_each_streamer():
    # dist="constant" makes "about rate" exactly rate: 3 of each streamer's 10 items.
    mux = shoal.StochasticMux(_rows_of(8, 10), 3, 3, mode="exhaustive", dist="constant",
                              random_state=0)
    for num_workers in (0, 2):
        got = ids(DataLoader(StreamDataset(mux), batch_size=None, num_workers=num_workers))
        per_streamer = np.bincount([i // 1000 for i in got], minlength=8)
        assert per_streamer.tolist() == [3] * 8
        assert len(set(got)) == len(got)  # none twice, but 7 of each 10 never read


def test_with_a_finite_rate_the_size_of_an_epoch_changes_with_the_shares():
    mux = shoal.StochasticMux(_rows_of(8, 25), 2, 8, mode="exhaustive", random_state=0)
    sizes = [len(_epoch_ids(mux, n_shares)) for n_shares in (1, 2, 3, 4)]
    # Each share draws its numbers of items from its own seed. For an arbitrary seed
    # the chance that all four sizes coincide is far below 1%; the seed is fixed, so
    # the test gives the same answer every run.
    assert len(set(sizes)) > 1, sizes
    assert all(8 * 8 / 2 < size < 8 * 25 for size in sizes), sizes  # about 8 of each 25
    with_workers = ids(DataLoader(StreamDataset(mux), batch_size=None, num_workers=2))
    assert len(with_workers) == sizes[1]


def test_a_mux_that_does_not_end_gives_an_endless_epoch():
    mux = shoal.StochasticMux(_rows_of(4, 5), 2, 3, random_state=0)  # with_replacement
    loader = iter(DataLoader(StreamDataset(mux), batch_size=None))
    assert len([next(loader) for _ in range(200)]) == 200  # 10 times the 20 items


# -- elastic: the states of n shares (ranks x workers) load into another n ------------------


def take_ids(loader, n):
    """The ids of the first ``n`` items (or batches) of ``loader``."""
    out = []
    for item in loader:
        value = item["id"]
        out.extend(value.tolist() if hasattr(value, "tolist") else [value])
        if len(out) >= n:
            break
    return out


def saved_by_ranks(stream, world_size, taken):
    """Ranks without DataLoader workers take ``taken[r]`` items each, and save: (ids, states)."""
    before, states = [], []
    for rank in range(world_size):
        dataset = StreamDataset(stream, rank=rank, world_size=world_size)
        before += take_ids(DataLoader(dataset, batch_size=None), taken[rank])
        states.append(json.loads(json.dumps(dataset.state_dict())))
    return before, states


@pytest.mark.parametrize("world_size, num_workers", [(1, 0), (1, 2), (3, 0), (2, 2)])
def test_the_states_of_two_ranks_go_on_in_any_number_of_ranks_and_workers(world_size,
                                                                          num_workers):
    before, states = saved_by_ranks(sources.files(), 2, [4, 7])
    after = []
    for rank in range(world_size):
        dataset = StreamDataset(sources.files(), rank=rank, world_size=world_size)
        dataset.load_state_dict(states[::-1])  # in any order
        after += ids(DataLoader(dataset, batch_size=None, num_workers=num_workers))
    assert len(before) == 11
    assert sorted(before + after) == sources.ALL_IDS  # nothing repeated, nothing lost


def test_the_state_of_a_run_without_workers_goes_on_in_dataloader_workers():
    # Loaded in the main process, the state of the one share of a run is
    # split anew among the DataLoader's workers: each item once, not twice.
    before, (state,) = saved_by_ranks(sources.files(), 1, [9])
    dataset = StreamDataset(sources.files())
    dataset.load_state_dict(state)
    after = ids(DataLoader(dataset, batch_size=None, num_workers=2))
    assert len(before) == 9
    assert sorted(before + after) == sources.ALL_IDS


def test_the_state_of_one_share_loaded_where_workers_run_other_shares_is_refused():
    # Rank 0 of 2 saved without workers; loading that one share's state and
    # iterating it with 2 DataLoader workers (shares 0 and 2 of 4) would give
    # its items twice: each worker refuses it when it starts.
    _, states = saved_by_ranks(sources.files(), 2, [4, 7])
    dataset = StreamDataset(sources.files(), rank=0, world_size=2)
    dataset.load_state_dict(states[0])
    with pytest.raises(shoal.ShoalValueError,
                       match=r"state is of share \[0, 2\], this one is \[\d, 4\]"):
        ids(DataLoader(dataset, batch_size=None, num_workers=2))


def test_a_state_loaded_and_saved_before_iterating_is_kept():
    before, states = saved_by_ranks(sources.files(), 2, [4, 7])
    dataset = StreamDataset(sources.files())
    dataset.load_state_dict(states)
    saved = json.loads(json.dumps(dataset.state_dict()))  # a checkpoint right after resuming
    assert saved["shard"] == [0, 1]
    again = StreamDataset(sources.files())
    again.load_state_dict(saved)
    assert sorted(before + ids(DataLoader(again, batch_size=None))) == sources.ALL_IDS


def test_batches_of_a_map_over_the_mux_go_on_in_other_shares():
    batches = shoal.Streamer(shoal.buffer_stream, sources.files(), 2, partial=True)
    before, states = saved_by_ranks(batches, 3, [2, 2, 4])
    dataset = StreamDataset(batches)
    dataset.load_state_dict(states)
    after = ids(DataLoader(dataset, batch_size=None, num_workers=2))
    assert sorted(before + after) == sources.ALL_IDS


def test_states_of_a_stream_that_cannot_be_split_anew_are_refused_when_iterated():
    mux = shoal.ShuffledMux([shoal.Streamer(sources.rows, f, 5) for f in range(6)],
                            random_state=0)
    _, states = saved_by_ranks(mux, 2, [3, 3])
    same = StreamDataset(mux, rank=1, world_size=2)
    same.load_state_dict(states)  # as many shares as before: each goes on from its own
    assert len(take_ids(DataLoader(same, batch_size=None), 5)) == 5
    other = StreamDataset(mux)
    other.load_state_dict(states)
    with pytest.raises(shoal.ShoalValueError,
                       match="(?s)cannot reshard the states of ShuffledMux.* exactly: a "
                             "ShuffledMux restarts each streamer.*splitting the states of 2 "
                             "shares .* among 1"):
        next(iter(DataLoader(other, batch_size=None)))


def test_a_list_of_states_must_be_one_for_each_share():
    _, states = saved_by_ranks(sources.files(), 3, [1, 1, 1])
    dataset = StreamDataset(sources.files())
    with pytest.raises(shoal.ShoalValueError, match=r"one for each of the 3 shares, but shares "
                                                    r"\[1\] are missing"):
        dataset.load_state_dict([states[0], states[2]])
    with pytest.raises(shoal.ShoalValueError, match=r"state\[1\] is of share 0, as an earlier"):
        dataset.load_state_dict([states[0], states[0], states[2]])
    _, two = saved_by_ranks(sources.files(), 2, [1, 1])
    with pytest.raises(shoal.ShoalValueError, match=r"shares of one run, got shares of \[2, 3\]"):
        dataset.load_state_dict([*states, *two])
    with pytest.raises(shoal.ShoalValueError, match=r"state\[0\] must be the state_dict\(\) of a "
                                                    "StreamDataset that has started"):
        dataset.load_state_dict([{}])
    with pytest.raises(shoal.ShoalValueError,
                       match=r"state is of share \[1, 3\], this one is \[0, 1\]; to go on with "
                             "another number of ranks or workers, load the list"):
        dataset.load_state_dict(states[1])


# -- a loaded state is for the next iteration only, wherever it runs ---------------------


def checkpoint_after(n_items):
    """(ids, state): the first ``n_items`` of a dataset iterated in this process, and its state."""
    dataset = StreamDataset(sources.files())
    items = iter(dataset)
    before = [next(items)["id"] for _ in range(n_items)]
    return before, json.loads(json.dumps(dataset.state_dict()))


def loader_over(dataset, how):
    if how == "stateful":
        stateful = pytest.importorskip("torchdata.stateful_dataloader",
                                       reason="torchdata is not installed")
        return stateful.StatefulDataLoader(dataset, batch_size=None, num_workers=2,
                                           multiprocessing_context="fork")
    num_workers, persistent, context = how
    return DataLoader(dataset, batch_size=None, num_workers=num_workers,
                      persistent_workers=persistent, multiprocessing_context=context)


@pytest.mark.filterwarnings("ignore:'set_vital' is deprecated:UserWarning")
@pytest.mark.parametrize("how", [(0, False, None), (2, False, "fork"), (2, True, "fork"),
                                 (2, False, "spawn"), "stateful"])
def test_a_loaded_state_is_for_the_next_iteration_only(how):
    # The first epoch goes on from the checkpoint; the next ones are whole
    # passes, with DataLoader workers as without (it was the rest of the
    # checkpointed pass every epoch, its first 9 items never seen again).
    before, state = checkpoint_after(9)
    dataset = StreamDataset(sources.files())
    dataset.load_state_dict(state)
    loader = loader_over(dataset, how)
    epochs = [ids(loader) for _ in range(3)]
    assert [len(epoch) for epoch in epochs] == [21, 30, 30]
    assert sorted(before + epochs[0]) == sources.ALL_IDS
    assert sorted(epochs[1]) == sorted(epochs[2]) == sources.ALL_IDS
    if how[0] == 0:
        # Not the checkpoint any more: the end of the last pass.
        assert dataset.state_dict()["iterator"]["n_given"] == 30


def test_a_loaded_state_taken_by_workers_is_not_taken_again_by_a_loader_seeded_alike():
    # Two iterations whose workers have the same base seed (a generator seeded
    # alike): the workers of the second know they are not the first.
    before, state = checkpoint_after(9)
    dataset = StreamDataset(sources.files())
    dataset.load_state_dict(state)
    epochs = [ids(DataLoader(dataset, batch_size=None, num_workers=2,
                             generator=torch.Generator().manual_seed(0))) for _ in range(2)]
    assert sorted(before + epochs[0]) == sources.ALL_IDS
    assert sorted(epochs[1]) == sources.ALL_IDS


def test_a_state_loaded_after_persistent_workers_started_is_refused_not_ignored():
    dataset = StreamDataset(sources.files())
    loader = DataLoader(dataset, batch_size=None, num_workers=2, persistent_workers=True,
                        multiprocessing_context="fork")
    assert sorted(ids(loader)) == sources.ALL_IDS
    _, state = checkpoint_after(9)
    dataset.load_state_dict(state)
    with pytest.raises(shoal.ShoalValueError,
                       match="loaded into this StreamDataset in the main process after this "
                             "DataLoader's persistent workers started"):
        ids(loader)
    resumed = ids(DataLoader(dataset, batch_size=None, num_workers=2))  # a new loader takes it
    assert len(resumed) == 21


def test_the_main_process_refuses_to_report_the_state_of_an_iteration_in_workers():
    dataset = StreamDataset(sources.files())
    take_ids(DataLoader(dataset, batch_size=None, num_workers=2), 5)
    # The PyTorch way gave {} here, which loaded as a restart from the beginning.
    with pytest.raises(shoal.ShoalValueError,
                       match=r"(?s)last iteration ran in DataLoader workers.*so its state is in "
                             r"the workers.*StatefulDataLoader.*persistent_workers=True"):
        dataset.state_dict()
    take_ids(DataLoader(dataset, batch_size=None), 5)  # iterated here again: the state is here
    assert dataset.state_dict()["iterator"]["n_given"] == 5


def test_an_empty_state_is_no_checkpoint():
    dataset = StreamDataset(sources.files())
    with pytest.raises(shoal.ShoalValueError,
                       match=r"state must be a StreamDataset.state_dict\(\) or a list of them, "
                             r"got \{\}: an empty state is no checkpoint"):
        dataset.load_state_dict({})
    with pytest.raises(shoal.ShoalValueError, match="got an empty list"):
        dataset.load_state_dict([])
    with pytest.raises(shoal.ShoalTypeError, match=r"state must be a StreamDataset.state_dict\(\) "
                                                   r"or a list of them, got None \(NoneType\)"):
        dataset.load_state_dict(None)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_the_state_before_any_iteration_is_a_start_from_the_beginning(num_workers):
    # A checkpoint taken before the first step; a ShuffledMux, which cannot be
    # split anew from a pass begun, starts anew in any number of workers.
    mux = shoal.ShuffledMux([shoal.Streamer(sources.rows, f, 5) for f in range(4)],
                            random_state=0)
    state = json.loads(json.dumps(StreamDataset(mux).state_dict()))
    assert state == {"shard": [0, 1], "iterator": None}
    dataset = StreamDataset(mux)
    dataset.load_state_dict(state)
    fresh = StreamDataset(mux)
    loader = DataLoader(dataset, batch_size=None, num_workers=num_workers)
    assert take_ids(loader, 12) == take_ids(DataLoader(fresh, batch_size=None,
                                                       num_workers=num_workers), 12)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_the_states_of_shares_that_had_not_started_go_on_from_their_start(num_workers):
    # Rank 1 of 2 saved before it iterated: its share goes on from its start,
    # in one share (split anew) or in two.
    dataset = StreamDataset(sources.files(), rank=0, world_size=2)
    before = take_ids(DataLoader(dataset, batch_size=None), 7)
    states = [dataset.state_dict(), StreamDataset(sources.files(), rank=1,
                                                  world_size=2).state_dict()]
    assert states[1]["iterator"] is None
    resumed = StreamDataset(sources.files())
    resumed.load_state_dict(json.loads(json.dumps(states)))
    after = ids(DataLoader(resumed, batch_size=None, num_workers=num_workers))
    assert sorted(before + after) == sources.ALL_IDS


@pytest.mark.parametrize("start_method", ["spawn", "forkserver"])
def test_a_dataset_iterated_in_this_process_then_goes_to_spawned_workers(start_method):
    # The iteration run here stays here: it used to go with the dataset, and
    # its generators cannot be pickled ("cannot pickle 'generator' object").
    dataset = StreamDataset(sources.files())
    assert len(take_ids(DataLoader(dataset, batch_size=None), 4)) == 4  # abandoned
    loader = DataLoader(dataset, batch_size=None, num_workers=2,
                        multiprocessing_context=start_method)
    assert sorted(ids(loader)) == sources.ALL_IDS
    assert sorted(ids(DataLoader(dataset, batch_size=None))) == sources.ALL_IDS  # to its end
    assert sorted(ids(loader)) == sources.ALL_IDS


def test_a_copy_of_a_dataset_is_a_dataset_of_its_own():
    dataset = StreamDataset(sources.files())
    take_ids(DataLoader(dataset, batch_size=None), 5)
    for copied in (copy.copy(dataset), copy.deepcopy(dataset),
                   pickle.loads(pickle.dumps(dataset))):
        assert sorted(ids(DataLoader(copied, batch_size=None, num_workers=2))) == sources.ALL_IDS
        with pytest.raises(shoal.ShoalValueError, match="ran in DataLoader workers"):
            copied.state_dict()
    assert dataset.state_dict()["iterator"]["n_given"] == 5  # its own iteration, here


def test_a_forked_worker_leaves_the_main_process_iteration_alone(tmp_path):
    # An iteration left open here is inherited by forked workers: they must
    # not close it, which runs its generators' `finally` in the worker.
    log = tmp_path / "closed.txt"
    mux = shoal.ChainMux([shoal.Streamer(sources.rows_logging_closes, f, 5, str(log))
                          for f in range(4)])
    dataset = StreamDataset(mux)
    items = iter(dataset)
    next(items)
    loader = DataLoader(dataset, batch_size=None, num_workers=2, multiprocessing_context="fork")
    assert len(ids(loader)) == 20
    closes = [line.split() for line in log.read_text().splitlines()]
    assert len(closes) == 4  # each worker's two files, closed where they were opened
    assert all(started == closed for started, closed in closes), closes
    assert len(list(items)) == 19  # the iteration here goes on where it was


STATEFUL = pytest.mark.filterwarnings("ignore:'set_vital' is deprecated:UserWarning")


@STATEFUL
@pytest.mark.filterwarnings("ignore:This DataLoader will create 3 worker processes")
@pytest.mark.parametrize("new_workers", [1, 3])
def test_a_stateful_dataloader_with_two_workers_goes_on_with_another_number(new_workers):
    stateful = pytest.importorskip("torchdata.stateful_dataloader",
                                   reason="torchdata is not installed")
    from shoal.torch import share_states

    loader = stateful.StatefulDataLoader(StreamDataset(sources.files(n_rows=6)), batch_size=2,
                                         num_workers=2, multiprocessing_context="fork")
    before = take_ids(loader, 10)
    states = json.loads(json.dumps(share_states(loader.state_dict())))
    assert [state["shard"] for state in states] == [[0, 2], [1, 2]]
    dataset = StreamDataset(sources.files(n_rows=6))
    dataset.load_state_dict(states)
    resumed = stateful.StatefulDataLoader(dataset, batch_size=2, num_workers=new_workers,
                                          multiprocessing_context="fork")
    after = ids(resumed)
    expected = sorted(f * 1000 + i for f in range(6) for i in range(6))
    assert sorted(before + after) == expected  # nothing repeated, nothing lost


@STATEFUL
def test_share_states_reads_a_stateful_dataloader_without_workers():
    stateful = pytest.importorskip("torchdata.stateful_dataloader",
                                   reason="torchdata is not installed")
    from shoal.torch import share_states

    dataset = StreamDataset(sources.files())
    loader = stateful.StatefulDataLoader(dataset, batch_size=None)
    before = take_ids(loader, 7)
    (state,) = share_states(loader.state_dict())
    assert state["shard"] == [0, 1]
    resumed = StreamDataset(sources.files())
    resumed.load_state_dict([state])
    after = ids(DataLoader(resumed, batch_size=None, num_workers=2))
    assert sorted(before + after) == sources.ALL_IDS
    with pytest.raises(shoal.ShoalValueError, match="loader_state must be the state_dict"):
        share_states({"nothing": 1})


ELASTIC_PROGRAM = """
import json, os, sys
import torch.distributed as dist
from torch.utils.data import DataLoader
import torch_sources as sources
from shoal.torch import StreamDataset
dist.init_process_group("gloo")
rank, world_size = dist.get_rank(), dist.get_world_size()
dataset = StreamDataset(sources.files())
if os.environ.get("STATES"):
    dataset.load_state_dict(json.loads(os.environ["STATES"]))
    n_take = None
else:
    n_take = 3 + 2 * rank
got = []
for item in DataLoader(dataset, batch_size=None):
    got.append(int(item["id"]))
    if len(got) == n_take:
        break
mine = {"ids": got, "state": dataset.state_dict()}
everyone = [None] * world_size
dist.all_gather_object(everyone, mine)
print(json.dumps(everyone))
dist.destroy_process_group()
"""


def start_group(world_size, states=None):
    """Start ELASTIC_PROGRAM in a real gloo group of ``world_size`` processes."""
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()),
               WORLD_SIZE=str(world_size), STATES=json.dumps(states) if states else "")
    return [subprocess.Popen([sys.executable, "-c", ELASTIC_PROGRAM], cwd=TESTS,
                             env=dict(env, RANK=str(r)), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for r in range(world_size)]


def group_output(ranks):
    """What each rank of a group started by start_group gave, as every rank saw it."""
    outputs = []
    for process in ranks:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    assert all(output == outputs[0] for output in outputs)  # every rank saw the same
    return outputs[0]


def test_a_real_group_of_two_ranks_resumes_as_one_and_as_three():
    saved = group_output(start_group(2))
    before = [i for rank in saved for i in rank["ids"]]
    assert len(before) == 3 + 5
    states = [rank["state"] for rank in saved]
    groups = {world_size: start_group(world_size, states) for world_size in (1, 3)}
    for world_size, ranks in groups.items():
        after = [i for rank in group_output(ranks) for i in rank["ids"]]
        assert sorted(before + after) == sources.ALL_IDS, world_size
