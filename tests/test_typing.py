"""The public API is annotated: mypy checks a user's code against it.

mypy runs, with the project's configuration, on a small typed user script
that uses the public API as the docs show (it must find no error, every call
it makes must be to an annotated function, and the types it reveals are
those the API promises), and on a script of wrong uses (it must report an
error of a wrong type on each wrong line, and on no other). The typed script
also runs, so that what mypy accepts is right at run time too.

The mypy test needs mypy (``pip install '.[lint]'``, or a ``mypy`` on the
PATH): without it, it is skipped.
"""

import os
import re
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Every call must be to an annotated function (so an unannotated public
# signature is an error), and the script itself is fully annotated.
STRICT = "# mypy: disallow-untyped-calls, disallow-untyped-defs, disallow-incomplete-defs\n"

GOOD = STRICT + textwrap.dedent('''\
    from collections.abc import Iterator

    import numpy as np

    import shoal
    from shoal import (
        BaseMux,
        ChainMux,
        RoundRobinMux,
        ShuffledMux,
        StochasticMux,
        Streamer,
        StreamIterator,
        batch_length,
        buffer_stream,
        cache,
        keras_tuples,
        tuples,
        get_rng,
        reshard_states,
        resume_arg,
        streamable,
    )
    from shoal.util import Deprecated, deprecated, moved, rename_kw


    @streamable
    @resume_arg("start")
    def count_up(n: int, start: int = 0) -> Iterator[int]:
        yield from range(start, n)


    def letters(word: str) -> Iterator[str]:
        yield from word


    def vowels() -> Iterator[str]:
        yield from "aeiou"


    stream = Streamer(letters, "abc")
    first: list[object] = list(stream.iterate(max_iter=2)) + list(stream.cycle(max_iter=4.0))
    first += list(stream(max_iter=None, cycle=False)) + list(stream(max_iter=5, cycle=True))
    n_open: int = stream.active
    with stream as items:
        first.append(next(items))
    gen = iter(stream)
    gen.close()
    source = stream.streamer

    reveal_type(count_up)  # N: streamable keeps the signature
    counted = count_up(5)
    it: StreamIterator = counted.iterator(cycle=False)
    reveal_type(it)  # N
    saved = it.state_dict()
    reveal_type(saved)  # N
    it.load_state_dict(saved)
    n: int = it.n_given + sum(1 for _ in it)
    with count_up(3).iterator() as again:
        n += next(again)

    chain = ChainMux([Streamer(range(3)), "ab", vowels], mode="cycle", random_state=0)
    reveal_type(chain.shard(0, 2))  # N
    lazy = ChainMux(Streamer(letters, "ab"))
    maybe: int | None = lazy.n_streams
    robin = RoundRobinMux(["ab", "cd"], mode="permuted_cycle",
                          random_state=np.random.default_rng(1))
    shuffled = ShuffledMux(["ab", "cd"], weights=[2.0, 1.0], random_state=np.int64(3),
                           reseed_each_epoch=True)
    scheduled = ShuffledMux(["ab", "cd"], weights=lambda n_given: [1.0, n_given + 1.0],
                            random_state=np.random.SeedSequence(4))
    reveal_type(shuffled.shard(1, 2))  # N
    share: BaseMux = robin.shard(0, 2)
    count: int = share.n_streams + scheduled.n_streams
    mixed = shuffled.iterator()
    mixed.set_weights(np.array([1.0, 1.0]))
    mixed.set_weights(None)
    counts: list[int] = mixed.counts()
    mixed.close()

    files = ChainMux([range(k, k + 3) for k in range(4)])
    shares = [files.shard(i, 2).iterator() for i in range(2)]
    states = reshard_states(files, [s.state_dict() for s in shares], 3)
    reveal_type(states)  # N

    size: int | None = batch_length({"x": np.zeros(4)}) or batch_length((np.zeros(2),))
    rng = get_rng(0)
    draw = rng.randint(10)


    @deprecated("1.0", "2.0")
    def old(x: int) -> int:
        return x


    @moved("pkg.old", "1.0", "2.0")
    def new(x: int) -> int:
        return x


    def scale(x: int, factor: int = 1, multiplier: int | Deprecated = Deprecated()) -> int:
        return x * rename_kw("multiplier", multiplier, "factor", factor, "1.0", "2.0")


    total: int = old(1) + new(2) + scale(3)
    version: str = shoal.__version__

    mixture = StochasticMux([letters("ab"), letters("cd")], n_active=1, rate=4.0,
                            weights=[1.0, 2.0], mode="exhaustive", dist="poisson",
                            random_state=5)
    batches = Streamer(buffer_stream, mixture, 2, partial=True)
    first_batch = next(buffer_stream([{"x": np.zeros(2)}] * 4, 2))
    pairs = list(tuples([{"a": 1, "b": 2}], "a", "b"))
    keras_pairs = keras_tuples([{"a": 1, "b": 2}], inputs="a", outputs="b")
    keras_pairs.close()
    sample = list(cache(range(5), 2, prob=0.5, random_state=np.random.default_rng(0)))
''')

# Each wrong use is on a line marked "# E".
BAD = STRICT + textwrap.dedent('''\
    from collections.abc import Iterator

    from shoal import (
        ChainMux,
        RoundRobinMux,
        ShuffledMux,
        StochasticMux,
        Streamer,
        buffer_stream,
        reshard_states,
        streamable,
    )


    @streamable
    def count_up(n: int) -> Iterator[int]:
        yield from range(n)


    stream = Streamer(range(3))
    stream.iterate(max_iter="x")  # E
    stream.cycle(max_iter=[3])  # E
    count_up("3")  # E
    ShuffledMux(["ab"], random_state="seed")  # E
    ShuffledMux(["ab"], weights="ab")  # E
    RoundRobinMux(["ab"], mode="shuffled")  # E
    ChainMux(["ab"], mode="exhaustive").shard("0", 2)  # E
    stream.iterator().load_state_dict([1, 2])  # E
    reshard_states(stream, [{}], "2")  # E
    n: str = stream.iterator().n_given  # E
    StochasticMux(["ab"], 1, 2, mode="shuffled")  # E
    buffer_stream(range(3), buffer_size="2")  # E
''')

REVEALED = [
    "def (n: int, start: int =) -> shoal.core.Streamer",
    "shoal.iterator.StreamIterator",
    "dict[str, Any]",
    "shoal.mux.chain.ChainMux",
    "shoal.mux.shuffled.ShuffledMux",
    "list[dict[str, Any]]",
]


def test_the_typed_script_runs():
    # Correct use is correct at run time too, not only to mypy.
    namespace = {"__name__": "good", "reveal_type": lambda value: value}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # of deprecated() and moved()
        exec(compile(GOOD, "good.py", "exec"), namespace)
    assert namespace["first"] == ["a", "b", "a", "b", "c", "a", "a", "b", "c", "a", "b", "c", "a",
                                  "b", "a"]
    assert namespace["n"] == 5 and namespace["total"] == 6
    assert namespace["count"] == 1 + 2 and namespace["maybe"] is None and namespace["size"] == 4
    assert len(namespace["states"]) == 3


def mypy_command():
    """How to run mypy here: the module of this Python, else a mypy on the PATH."""
    try:
        import mypy  # noqa: F401
    except ImportError:
        found = shutil.which("mypy")
        if found is None:
            pytest.skip("mypy is not installed (pip install '.[lint]'): the annotations are "
                        "not checked")
        return [found]
    return [sys.executable, "-m", "mypy"]


def marked(text, mark):
    """The numbers of the lines of ``text`` that end with the comment ``mark``."""
    return [number for number, line in enumerate(text.splitlines(), 1)
            if re.search(rf"#\s*{mark}\b", line)]


def test_mypy_accepts_typed_use_and_reports_each_wrong_use(tmp_path):
    (tmp_path / "good.py").write_text(GOOD)
    (tmp_path / "bad.py").write_text(BAD)
    # This checkout's shoal, not an installed one; numpy's types from this Python.
    env = {**os.environ, "MYPYPATH": str(ROOT / "src")}
    result = subprocess.run(
        [*mypy_command(), "--config-file", str(ROOT / "pyproject.toml"),
         "--python-executable", sys.executable, "--cache-dir", str(tmp_path / "cache"),
         "--show-error-codes", "--no-error-summary", "--no-pretty", "good.py", "bad.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    lines = result.stdout.splitlines()
    errors = {(name, int(number)) for name, number in
              (re.match(r"(\w+)\.py:(\d+): error:", line).groups()
               for line in lines if re.match(r"\w+\.py:\d+: error:", line))}
    others = [line for line in lines if ": error:" in line and not re.match(r"(good|bad)\.py:", line)]
    assert not others, f"mypy reports errors outside the scripts (in shoal?):\n{result.stdout}"
    assert {number for name, number in errors if name == "good"} == set(), result.stdout
    assert {number for name, number in errors if name == "bad"} == set(marked(BAD, "E")), result.stdout
    # Errors of the wrong types given, not of a call to an unannotated function.
    codes = set(re.findall(r"^bad\.py:\d+: error: .*\[([a-z-]+)\]$", result.stdout, re.MULTILINE))
    assert codes == {"arg-type", "assignment"}, result.stdout
    # The revealed types, in order, one per marked line.
    notes = [re.sub(r"^good\.py:\d+: note: Revealed type is ", "", line).strip('"').replace("builtins.", "")
             for line in lines if re.match(r"good\.py:\d+: note: Revealed type is", line)]
    assert len(marked(GOOD, "N")) == len(REVEALED)
    assert notes == REVEALED, result.stdout
    assert result.returncode == 1, result.stdout + result.stderr  # the wrong uses, and no crash
