"""PyTorch over a Shares stream: the items and batches of one process on every topology.

``StreamDataset(Shares(stream, n))`` in a DataLoader with ``w`` workers on
``R`` ranks (``R * max(w, 1)`` dividing ``n``) gives the in-process items,
rank ``r`` those at global positions ``r, r + R, ...``; batched, through
``JoinedBatches``, global batch ``s`` (every rank's batch ``s``) holds the
rows of in-process batch ``s``. A state saved on one topology (torchdata's
StatefulDataLoader, a ProcessStreamer, one process) goes on on any other.
"""

import json
import os
import subprocess
import sys
from itertools import islice
from pathlib import Path

import pytest

torch = pytest.importorskip(
    "torch", reason="PyTorch is not installed (pip install torch, or pip install '.[torch]')"
)
import torch_sources as sources  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

import shoal  # noqa: E402
from shoal.torch import JoinedBatches, StreamDataset, share_states  # noqa: E402

TESTS = Path(__file__).resolve().parent

pytestmark = [
    # Up to 4 workers on a machine that may have fewer cores: only slower.
    pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning"),
    pytest.mark.filterwarnings("ignore:'set_vital' is deprecated:UserWarning"),
]

# (ranks, DataLoader workers) that can run n_shares shares: ranks x max(workers, 1) divides it.
TOPOLOGIES = {
    4: [(1, 0), (1, 1), (1, 2), (1, 4), (2, 0), (2, 1), (2, 2), (4, 0), (4, 1)],
    8: [(1, 0), (1, 1), (1, 2), (1, 4), (2, 2), (2, 4), (4, 1), (4, 2), (8, 0)],
}


@pytest.fixture(autouse=True)
def no_rank_in_the_environment(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)


def stateful():
    return pytest.importorskip("torchdata.stateful_dataloader",
                               reason="torchdata is not installed").StatefulDataLoader


def item_ids(items, n=None):
    """The ids of the first ``n`` items (all if None)."""
    return [int(item["id"]) for item in islice(items, n)]


def rows(batch):
    """A batch's rows, sorted: what it holds, whatever their order."""
    return sorted(tuple(row) for row in batch["x"].tolist())


def loader(stream, rank=0, world_size=1, num_workers=0, state=None):
    dataset = StreamDataset(stream, rank=rank, world_size=world_size)
    if state is not None:
        dataset.load_state_dict(state)
    return DataLoader(dataset, batch_size=None, num_workers=num_workers)


def drain(items):
    """Iterate ``items`` (a DataLoader) to its end.

    An error is raised once the DataLoader's iterator is gone: held by the
    error's traceback, it would be inherited by the workers forked later
    in this process, which try to shut down its workers when they exit.
    """
    iterator = iter(items)
    try:
        for _ in iterator:
            pass
    except shoal.ShoalError as exc:
        del iterator
        raise exc.with_traceback(None) from None


def global_batches(per_rank):
    """Global batch s of each rank's batches: the rows of every rank's batch s, sorted."""
    return [sorted(row for batch in batches for row in batch) for batches in zip(*per_rank)]


def json_copy(value):
    return json.loads(json.dumps(value))


# -- items --------------------------------------------------------------------------------


@pytest.mark.parametrize("n_shares", [4, 8])
@pytest.mark.parametrize("num_workers", [0, 1, 2, 4])
def test_a_dataloader_gives_the_items_of_one_process(n_shares, num_workers):
    shares = shoal.Shares(sources.sampled(), n_shares)
    expected = item_ids(shares, 40)
    assert item_ids(loader(shares, num_workers=num_workers), 40) == expected


@pytest.mark.parametrize("n_shares, world_size, num_workers",
                         [(n, r, w) for n, topologies in TOPOLOGIES.items()
                          for r, w in topologies if r > 1])
def test_rank_r_of_r_ranks_gives_the_items_at_global_positions_r_plus_multiples_of_r(
        n_shares, world_size, num_workers):
    shares = shoal.Shares(sources.sampled(), n_shares)
    expected = item_ids(shares, 12 * world_size)
    for rank in range(world_size):
        got = item_ids(loader(shares, rank, world_size, num_workers), 12)
        assert got == expected[rank::world_size], rank


@pytest.mark.parametrize("n_shares, world_size, num_workers",
                         [(4, 1, 3), (4, 3, 0), (4, 2, 4), (8, 3, 1)])
def test_hosts_that_do_not_divide_the_shares_are_refused(n_shares, world_size, num_workers):
    shares = shoal.Shares(sources.sampled(), n_shares)
    n_hosts = world_size * max(num_workers, 1)
    refusal = (rf"(?s)n_shares={n_shares} of Shares\(.*\) must be a multiple of the number of "
               rf"hosts, ranks x DataLoader workers, got {n_hosts} \({world_size} rank\(s\) x "
               rf"{max(num_workers, 1)} DataLoader worker\(s\)\)")
    with pytest.raises(shoal.ShoalValueError, match=refusal):
        drain(loader(shares, world_size - 1, world_size, num_workers))


# Shares 1 (files 1, 5) and 3 (files 3, 7) of 4 end apart: share 3 has 2 rows more.
UNEQUAL = [3, 3, 3, 5, 3, 3, 3, 3]


@pytest.mark.parametrize("num_workers", [0, 1, 4])
def test_shares_that_end_apart_run_where_each_worker_hosts_one_or_none(num_workers):
    shares = shoal.Shares(sources.chained(UNEQUAL), 4)
    expected = item_ids(shares)
    assert expected[-6:] == [4002, 5002, 6002, 7000, 7001, 7002]  # share 3 alone at the end
    assert item_ids(loader(shares, num_workers=num_workers)) == expected


def test_a_worker_hosting_two_shares_that_end_apart_raises_rather_than_reorder():
    shares = shoal.Shares(sources.chained(UNEQUAL), 4)
    with pytest.raises(shoal.ShoalValueError,
                       match=r"(?s)the shares \[1, 3\] of ChainMux\(<8 streamers>.*\) that this "
                             r"DataLoader worker \(or rank\) runs did not end together \(share 3 "
                             r"went on after another ended\)"):
        drain(loader(shares, num_workers=2))
    # 8 shares on 2 ranks x 2 workers: worker 0 of rank 1 hosts shares 1 and 5, and share 5
    # (files 5 and 13) has 2 rows more.
    shares = shoal.Shares(sources.chained([3] * 5 + [5] + [3] * 10), 8)
    with pytest.raises(shoal.ShoalValueError,
                       match=r"the shares \[1, 5\] of .* did not end together \(share 5"):
        drain(loader(shares, rank=1, world_size=2, num_workers=2))


@pytest.mark.parametrize("num_workers", [0, 1])
def test_a_rank_hosting_two_shares_that_end_apart_raises_rather_than_give_other_places(
        num_workers):
    # 4 shares on 2 ranks: rank 1 hosts shares 1 and 3, and share 3 has 2 rows more. Its
    # items would be at other places of the turn than rank 1's (the turn goes on
    # without share 1 on rank 0 too): refused, as for a DataLoader worker.
    shares = shoal.Shares(sources.chained(UNEQUAL), 4)
    rank_0 = item_ids(loader(shares, rank=0, world_size=2, num_workers=num_workers))
    assert rank_0 == item_ids(shares)[0:24:2]  # its shares 0 and 2 end together
    with pytest.raises(shoal.ShoalValueError,
                       match=r"the shares \[1, 3\] of .* \(or rank\) runs did not end together"):
        drain(loader(shares, rank=1, world_size=2, num_workers=num_workers))


def test_joined_batches_refuse_a_loader_that_batches_again():
    batches = shoal.Streamer(shoal.buffer_stream, shoal.Shares(sources.chained([4] * 8), 4), 4)
    with pytest.raises(shoal.ShoalValueError, match=r"batch_size=None, got batch_size=2"):
        JoinedBatches(DataLoader(StreamDataset(batches), batch_size=2))


@pytest.mark.parametrize("n_shares", [4, 8])
def test_equal_shares_of_a_finite_stream_run_on_every_topology(n_shares):
    shares = shoal.Shares(sources.chained([4] * 8), n_shares)
    expected = item_ids(shares)
    assert sorted(expected) == sorted(f * 1000 + i for f in range(8) for i in range(4))
    for world_size, num_workers in TOPOLOGIES[n_shares]:
        got = [item_ids(loader(shares, rank, world_size, num_workers))
               for rank in range(world_size)]
        for rank in range(world_size):
            assert got[rank] == expected[rank::world_size], (world_size, num_workers, rank)


def test_a_state_whose_running_shares_the_hosts_cannot_share_is_refused():
    # Share 3 alone is left: two hosts could not follow the turn.
    shares = shoal.Shares(sources.chained(UNEQUAL), 4)
    dataset = StreamDataset(shares)
    items = iter(dataset)
    before = item_ids(items, 25)  # the next tried shares 0, 1 and 2, which ended
    state = json_copy(dataset.state_dict())
    rest = item_ids(items)
    assert before + rest == item_ids(shares) and rest == [7002]
    with pytest.raises(shoal.ShoalValueError,
                       match=r"(?s)cannot run Shares\(.*\) on 2 hosts taken in turn \(1 rank\(s\) "
                             r"x 2 DataLoader worker\(s\)\): 1 of its shares are running, not a "
                             r"multiple of 2"):
        drain(loader(shares, num_workers=2, state=state))
    assert item_ids(loader(shares, num_workers=1, state=state)) == rest


# -- batches ------------------------------------------------------------------------------


def batched(n_shares, size, stream=None, partial=False):
    return shoal.Streamer(shoal.buffer_stream,
                          shoal.Shares(stream or sources.sampled(), n_shares), size, partial)


def rank_batches(stream, world_size, num_workers, n_batches=None):
    """Each rank's first ``n_batches`` batches (rows, sorted), joined by JoinedBatches."""
    return [[rows(batch) for batch in islice(JoinedBatches(
        loader(stream, rank, world_size, num_workers)), n_batches)]
        for rank in range(world_size)]


@pytest.mark.parametrize("n_shares", [4, 8])
def test_global_batches_hold_the_rows_of_the_batches_of_one_process_on_every_topology(n_shares):
    stream = batched(n_shares, 16)
    expected = [rows(batch) for batch in islice(stream, 5)]
    for world_size, num_workers in TOPOLOGIES[n_shares]:
        per_rank = rank_batches(stream, world_size, num_workers, 5)
        assert all(len(batch) == 16 // world_size for batches in per_rank for batch in batches)
        assert global_batches(per_rank) == expected, (world_size, num_workers)


def test_the_batches_of_equal_finite_shares_end_alike_on_every_topology():
    # Shares of 6 rows, 4 of each in a batch: the last batch holds the 2 left of each.
    stream = batched(4, 16, sources.chained([3] * 8), partial=True)
    expected = [rows(batch) for batch in stream]
    assert [len(batch) for batch in expected] == [16, 8]
    for world_size, num_workers in TOPOLOGIES[4]:
        assert global_batches(rank_batches(stream, world_size, num_workers)) == expected, (
            world_size, num_workers)


def test_a_dataloader_of_workers_over_batches_of_shares_needs_joined_batches():
    stream = batched(4, 8)
    with pytest.raises(shoal.ShoalValueError,
                       match=r"iterate a DataLoader over Shares\(Streamer\(buffer_stream, .*\), "
                             r"n_shares=4\) through shoal.torch.JoinedBatches\(loader\)"):
        drain(loader(stream, num_workers=2))
    # One worker, or none, makes whole batches.
    expected = [rows(batch) for batch in islice(stream, 3)]
    for num_workers in (0, 1):
        assert [rows(b) for b in islice(loader(stream, num_workers=num_workers), 3)] == expected


def test_joined_batches_refuses_a_loader_of_anything_else():
    for wrong in [loader(shoal.Shares(sources.sampled(), 4), num_workers=2),  # items, not batches
                  loader(shoal.Streamer(shoal.buffer_stream, sources.sampled(), 8)),  # no Shares
                  [1, 2]]:
        with pytest.raises(shoal.ShoalTypeError,
                           match=r"loader must be a DataLoader over a StreamDataset of a batched "
                                 r"Shares stream \(Streamer\(buffer_stream, Shares\(...\), size\)\)"):
            JoinedBatches(wrong)


# -- resume -------------------------------------------------------------------------------


def saved_by_stateful_loader(stream, num_workers, n_items):
    """The first ``n_items`` ids of a StatefulDataLoader, and its state after each (0..n_items)."""
    items = stateful()(StreamDataset(stream), batch_size=None, num_workers=num_workers)
    states = [json_copy(share_states(items.state_dict()))]
    ids = []
    for item in items:
        ids.append(int(item["id"]))
        states.append(json_copy(share_states(items.state_dict())))
        if len(ids) == n_items:
            break
    return ids, states


@pytest.mark.parametrize("num_workers, other_topologies", [
    (2, [(1, 0), (1, 4), (1, 1), (2, 2), (4, 1), (1, 2)]),
    (4, [(1, 2), (1, 0), (2, 1), (1, 4)]),
])
def test_a_stateful_dataloader_state_goes_on_with_any_number_of_workers_and_ranks(
        num_workers, other_topologies):
    shares = shoal.Shares(sources.sampled(), 4)
    expected = item_ids(shares, 60)
    n_saved = 14
    ids, states = saved_by_stateful_loader(shares, num_workers, n_saved)
    assert ids == expected[:n_saved]
    assert all(len(state) == num_workers for state in states)
    for position, state in enumerate(states):
        # Each position on one of the topologies, in turn.
        world_size, workers = other_topologies[position % len(other_topologies)]
        per_rank = [item_ids(loader(shares, rank, world_size, workers, state), 8)
                    for rank in range(world_size)]
        rest = expected[position:position + 8 * world_size]
        for rank in range(world_size):
            assert per_rank[rank] == rest[rank::world_size], (position, world_size, workers)


@pytest.mark.parametrize("random_state", [3, None])
@pytest.mark.parametrize("num_workers", [0, 1, 2])
def test_the_states_of_every_rank_of_a_run_go_on_on_any_topology(random_state, num_workers):
    # Each rank's DataLoader draws the seed of its pass from its own base seed
    # (without workers, from its own process), so the states of the ranks of
    # one run hold other seeds: each share goes on with its own.
    shares = shoal.Shares(sources.sampled(random_state=random_state), 4)
    for position, (world_size, workers) in zip([0, 1, 3], [(1, 4), (4, 0), (1, 0)]):
        loaders = [stateful()(StreamDataset(shares, rank=rank, world_size=2), batch_size=None,
                              num_workers=num_workers) for rank in range(2)]
        iterators = [iter(items) for items in loaders]
        before = [item_ids(items, position) for items in iterators]
        states = json_copy([state for items in loaders for state in share_states(
            items.state_dict())])
        after = [item_ids(items, 12) for items in iterators]
        # The uninterrupted run: rank r gave the items at global positions r, r + 2, ...
        rest = [item for pair in zip(*after) for item in pair]
        if random_state is not None:
            expected = item_ids(shares, 2 * position + 24)
            assert [item for pair in zip(*before) for item in pair] + rest == expected
        per_rank = [item_ids(loader(shares, rank, world_size, workers, states), 24 // world_size)
                    for rank in range(world_size)]
        assert per_rank == [rest[rank::world_size] for rank in range(world_size)], position


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_stateful_dataloader_resumes_on_the_same_topology(num_workers):
    shares = shoal.Shares(sources.sampled(), 4)
    expected = item_ids(shares, 30)
    saved = stateful()(StreamDataset(shares), batch_size=None, num_workers=num_workers)
    before = item_ids(saved, 11)
    resumed = stateful()(StreamDataset(shares), batch_size=None, num_workers=num_workers)
    resumed.load_state_dict(saved.state_dict())
    assert before + item_ids(resumed, 19) == expected


def test_joined_batches_resume_on_the_same_topology_and_on_others():
    stream = batched(8, 16)
    expected = [rows(batch) for batch in islice(stream, 9)]
    saved = JoinedBatches(stateful()(StreamDataset(stream), batch_size=None, num_workers=2))
    before = [rows(batch) for batch in islice(saved, 4)]
    assert before == expected[:4]
    loader_state = saved.state_dict()
    same = JoinedBatches(stateful()(StreamDataset(stream), batch_size=None, num_workers=2))
    same.load_state_dict(loader_state)
    assert [rows(batch) for batch in islice(same, 5)] == expected[4:]
    states = json_copy(share_states(loader_state))
    for world_size, num_workers in [(1, 4), (1, 0), (2, 1), (4, 2)]:
        per_rank = [[rows(batch) for batch in islice(JoinedBatches(
            loader(stream, rank, world_size, num_workers, states)), 5)]
            for rank in range(world_size)]
        assert global_batches(per_rank) == expected[4:], (world_size, num_workers)


def test_the_state_of_an_iteration_in_one_process_goes_on_in_dataloader_workers():
    shares = shoal.Shares(sources.sampled(), 8)
    expected = item_ids(shares, 40)
    for position, (world_size, num_workers) in zip([0, 1, 7, 12], TOPOLOGIES[8][1:]):
        # A StreamIterator's state (StreamIterator.state_dict)...
        with shares.iterator() as iterator:
            assert item_ids(iterator, position) == expected[:position]
            state = json_copy(iterator.state_dict())
        per_rank = [item_ids(loader(shares, rank, world_size, num_workers, state), 8)
                    for rank in range(world_size)]
        rest = expected[position:position + 8 * world_size]
        assert per_rank == [rest[rank::world_size] for rank in range(world_size)], position
        # ... and a StreamDataset's, iterated in this process, alone or in a list.
        dataset = StreamDataset(shares)
        assert item_ids(dataset, position) == expected[:position]
        for state in (dataset.state_dict(), [dataset.state_dict()]):
            got = item_ids(loader(shares, num_workers=num_workers, state=json_copy(state)), 8)
            assert got == expected[position:position + 8], position


def test_a_stream_iterator_refuses_the_states_of_a_stream_dataset():
    # They go the other way only: a StreamDataset loads a StreamIterator's state.
    shares = shoal.Shares(sources.sampled(), 4)
    dataset = StreamDataset(shares)
    item_ids(dataset, 3)
    for state in (dataset.state_dict(), [dataset.state_dict()]):
        for stream in (shares, shoal.ProcessStreamer(shares, n_workers=2)):
            with stream.iterator() as iterator, pytest.raises(
                    shoal.ShoalValueError, match=r"state must be a dict from "
                                                 r"StreamIterator.state_dict \(version 3\), got"):
                iterator.load_state_dict(json_copy(state))


@pytest.mark.parametrize("n_workers", [1, 3])
def test_the_state_of_a_process_streamer_goes_on_in_dataloader_workers(n_workers):
    shares = shoal.Shares(sources.sampled(), 4)
    expected = item_ids(shares, 40)
    streamer = shoal.ProcessStreamer(shares, n_workers=n_workers, start_method="fork")
    with streamer.iterator() as iterator:
        assert item_ids(iterator, 9) == expected[:9]
        state = json_copy(iterator.state_dict())
    for world_size, num_workers in [(1, 0), (1, 4), (2, 2)]:
        per_rank = [item_ids(loader(shares, rank, world_size, num_workers, state), 10)
                    for rank in range(world_size)]
        rest = expected[9:9 + 10 * world_size]
        assert per_rank == [rest[rank::world_size] for rank in range(world_size)]


def test_an_unseeded_stream_draws_afresh_and_its_states_carry_the_seed():
    shares = shoal.Shares(sources.sampled(random_state=None), 4)
    # Each item picks one of its share's two open files at random: two fresh
    # runs give the same 40 items with probability about 2**-40.
    runs = [item_ids(loader(shares, num_workers=2), 40) for _ in range(2)]
    assert runs[0] != runs[1]
    assert item_ids(shares, 40) not in runs
    # The uninterrupted run is the one saved from.
    ids, states = saved_by_stateful_loader(shares, 2, 30)
    for position, (world_size, num_workers) in zip([0, 3, 10, 17], [(1, 0), (1, 4), (2, 1),
                                                                    (1, 2)]):
        per_rank = [item_ids(loader(shares, rank, world_size, num_workers,
                                    states[position]), 12 // world_size)
                    for rank in range(world_size)]
        rest = ids[position:position + 12]
        assert per_rank == [rest[rank::world_size] for rank in range(world_size)], position
    # ... and in one process, through a dataset's state (the whole stream as one host).
    dataset = StreamDataset(shares)
    dataset.load_state_dict(states[10])
    assert item_ids(dataset, 20) == ids[10:30]


# -- a real gloo group --------------------------------------------------------------------

GROUP_PROGRAM = """
import json, os, sys
from itertools import islice
import torch.distributed as dist
from torchdata.stateful_dataloader import StatefulDataLoader
import shoal
import torch_sources as sources
from shoal.torch import JoinedBatches, StreamDataset, share_states
dist.init_process_group("gloo")
world_size = dist.get_world_size()
stream = shoal.Streamer(shoal.buffer_stream, shoal.Shares(sources.sampled(), 4), 16)
dataset = StreamDataset(stream)
if os.environ["STATES"]:
    dataset.load_state_dict(json.loads(os.environ["STATES"]))
batches = JoinedBatches(StatefulDataLoader(dataset, batch_size=None,
                                           num_workers=int(os.environ["WORKERS"])))
got = [sorted(map(tuple, batch["x"].tolist())) for batch in islice(batches, 4)]
mine = {"batches": got, "states": share_states(batches.state_dict())}
everyone = [None] * world_size
dist.all_gather_object(everyone, mine)
if dist.get_rank() == 0:
    print(json.dumps(everyone))
dist.destroy_process_group()
"""


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_group(world_size, num_workers, states=None):
    """Start GROUP_PROGRAM in a gloo group of ``world_size`` ranks."""
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()),
               WORLD_SIZE=str(world_size), WORKERS=str(num_workers),
               STATES=json.dumps(states) if states else "")
    return [subprocess.Popen([sys.executable, "-c", GROUP_PROGRAM], cwd=TESTS,
                             env=dict(env, RANK=str(rank)), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for rank in range(world_size)]


def group_output(ranks):
    """Every rank's batches and states, as rank 0 gathered them."""
    outputs = []
    try:
        for process in ranks:
            out, err = process.communicate(timeout=180)
            assert process.returncode == 0, err
            outputs.append(out)
    finally:
        for process in ranks:
            if process.poll() is None:
                process.kill()
                process.communicate()
    gathered = json.loads(outputs[0].strip().splitlines()[-1])
    return [[[tuple(row) for row in batch] for batch in rank["batches"]] for rank in gathered], [
        state for rank in gathered for state in rank["states"]]


def test_a_real_group_of_2_ranks_of_2_workers_resumes_as_1_of_4_and_as_4_of_1():
    stream = batched(4, 16)
    expected = [rows(batch) for batch in islice(stream, 8)]
    per_rank, states = group_output(start_group(2, 2))
    assert [len(batch) for batches in per_rank for batch in batches] == [8] * 8
    assert global_batches(per_rank) == expected[:4]
    assert sorted(state["shard"] for state in states) == [[0, 4], [1, 4], [2, 4], [3, 4]]
    groups = {(1, 4): start_group(1, 4, states), (4, 1): start_group(4, 1, states)}
    for topology, ranks in groups.items():
        per_rank, _ = group_output(ranks)
        assert global_batches(per_rank) == expected[4:], topology


# -- Lightning ----------------------------------------------------------------------------

LIGHTNING_PROGRAM = """
import json, logging, warnings
import lightning as L
import torch
from torch.utils.data import DataLoader
import shoal
import torch_sources as sources
from shoal.torch import StreamDataset
warnings.simplefilter("ignore")
logging.getLogger("lightning").setLevel(logging.ERROR)
logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)

class Model(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.seen = []

    def training_step(self, batch, batch_idx):
        self.seen.append(batch["id"].tolist())
        x = batch["x"].float()
        return torch.nn.functional.mse_loss(self.layer(x).squeeze(1), x.sum(1))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

shares = shoal.Shares(sources.sampled(), 4)
loader = DataLoader(StreamDataset(shares), batch_size=4, num_workers=2)
model = Model()
trainer = L.Trainer(max_steps=6, accelerator="cpu", logger=False, enable_checkpointing=False,
                    enable_progress_bar=False, enable_model_summary=False)
trainer.fit(model, train_dataloaders=loader)
print(json.dumps({"steps": trainer.global_step, "seen": model.seen}))
"""


def test_lightning_fits_on_a_dataloader_of_a_shares_stream():
    pytest.importorskip("lightning", reason="Lightning is not installed (pip install lightning)")
    result = subprocess.run([sys.executable, "-c", LIGHTNING_PROGRAM], cwd=TESTS,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["steps"] == 6
    # Worker 0 runs places 0 and 2 of the turn, worker 1 places 1 and 3; the
    # DataLoader batches 4 items in a worker and takes the workers in turn.
    expected = item_ids(shoal.Shares(sources.sampled(), 4), 24)
    assert out["seen"] == [expected[8 * (s // 2) + s % 2:8 * (s // 2) + 8:2] for s in range(6)]
