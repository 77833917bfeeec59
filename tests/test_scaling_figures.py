"""The measured scaling of docs/tuning.md: what benchmarks/bench_scaling.py writes, what docs draw.

``bench_scaling.py --json PATH`` writes every figure of a run; the docs'
``pictures.scaling_figure()`` draws them. Running the benchmark takes
minutes, so its measurements are replaced here by fake figures: the test
checks what reaches the file and the picture, not the timing.
"""

import datetime
import importlib.util
import json
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = load("benchmarks/bench_scaling.py", "bench_scaling")

CPU_NAMES = ["bare processes", "shoal ordered", "shoal as they come",
             "DataLoader(StreamDataset)", "DataLoader(map-style)"]
ARRAY_NAMES = ["bare processes", "one-copy ceiling", "shoal", "shoal, batches of 8",
               "DataLoader", "DataLoader, batches of 8"]


def fake_rates(names, k, scale):
    return {name: scale * k * (10 - j) for j, name in enumerate(names)}


def fake_cpu(k):
    return {"bare": 0.0005, "ordered": 0.0005 + 1e-5 * k, "as they come": 0.0006}


def with_torch_or_not(names):
    return names if bench.torch is not None else [n for n in names if "DataLoader" not in n]


def test_bench_scaling_writes_every_figure_of_its_run_to_json(tmp_path, monkeypatch, capsys):
    # The measurements are faked; main() runs as `--workers 1 2 --json PATH` would.
    monkeypatch.setattr(bench, "calibrate", lambda: 123)
    monkeypatch.setattr(bench, "cpu_bound", lambda k, n, rounds, n_rounds: (
        fake_rates(with_torch_or_not(CPU_NAMES), k, 100.0), fake_cpu(k)))
    monkeypatch.setattr(bench, "large_arrays", lambda k, n, n_rounds: fake_rates(
        with_torch_or_not(ARRAY_NAMES), k, 1000.0))
    path = tmp_path / "scaling.json"
    bench.main(["--quick", "--workers", "1", "2", "--json", str(path)])

    figures = json.loads(path.read_text())
    assert set(figures) == {"machine", "settings", "cpu_bound", "arrays"}
    machine = figures["machine"]
    assert machine["cores"] == os.cpu_count()
    assert machine["cpu"] == bench.cpu_model()
    assert machine["torch"] == (bench.torch.__version__ if bench.torch is not None else None)
    datetime.date.fromisoformat(machine["date"])
    assert figures["settings"] == {"quick": True, "workers": [1, 2], "rounds": 2,
                                   "work_rounds_per_item": 123}
    assert figures["cpu_bound"] == {"unit": "items/s", "rows": [
        {"workers": k, "rates": fake_rates(with_torch_or_not(CPU_NAMES), k, 100.0),
         "cpu_per_item_s": fake_cpu(k)} for k in (1, 2)]}
    assert figures["arrays"] == {"unit": "MB/s", "item_bytes": 4 * 2**20, "rows": [
        {"workers": k, "rates": fake_rates(with_torch_or_not(ARRAY_NAMES), k, 1000.0)}
        for k in (1, 2)]}
    # The tables are printed as before, beside the file.
    out = capsys.readouterr().out
    assert "| workers | bare processes | shoal ordered | shoal as they come |" in out
    assert "| 2 | 2,000 | 1,800 | 1,600 |" in out


def test_the_processor_is_named_from_proc_cpuinfo_or_none():
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: no name
        assert bench.cpu_model() is None
        return
    named = re.search(r"^model name\s*:\s*(.+?)\s*$", text, re.MULTILINE)
    assert bench.cpu_model() == (named[1] if named else None)


def fake_figures(workers, with_torch=True):
    def names(all_names):
        return all_names if with_torch else [n for n in all_names if "DataLoader" not in n]
    return {
        "machine": {"cores": 16, "cpu": "Some CPU 9000", "python": "3.11.7", "numpy": "2.4.6",
                    "torch": "2.13.0" if with_torch else None, "shoal": "0.1",
                    "date": "2026-01-02"},
        "settings": {"quick": False, "workers": workers, "rounds": 3,
                     "work_rounds_per_item": 100},
        "cpu_bound": {"unit": "items/s", "rows": [
            {"workers": k, "rates": fake_rates(names(CPU_NAMES), k, 100.0),
             "cpu_per_item_s": fake_cpu(k)} for k in workers]},
        "arrays": {"unit": "MB/s", "item_bytes": 4 * 2**20, "rows": [
            {"workers": k, "rates": fake_rates(names(ARRAY_NAMES), k, 1000.0)}
            for k in workers]},
    }


@pytest.mark.parametrize("with_torch", [True, False])
@pytest.mark.parametrize("workers", [[1], [1, 2], list(range(1, 16))])
def test_the_docs_draw_each_contender_against_the_workers(tmp_path, workers, with_torch):
    pytest.importorskip("matplotlib", reason="the docs' pictures need matplotlib")
    pictures = load("docs/pictures.py", "pictures")
    path = tmp_path / "scaling.json"
    path.write_text(json.dumps(fake_figures(workers, with_torch)))
    fig = pictures.scaling_figure(path)
    try:
        fig.savefig(tmp_path / "scaling.png")
        cpu, arrays = fig.axes
        for ax, names, unit, scale in ((cpu, CPU_NAMES, "items/s", 100.0),
                                       (arrays, ARRAY_NAMES, "MB/s", 1000.0)):
            drawn = names if with_torch else [n for n in names if "DataLoader" not in n]
            assert [line.get_label() for line in ax.get_lines()] == [
                pictures.SCALING_STYLES[name][0] for name in drawn]
            assert [line.get_label() for line in ax.get_legend().get_lines()] == [
                pictures.SCALING_STYLES[name][0] for name in drawn]
            for line, name in zip(ax.get_lines(), drawn):
                assert list(line.get_ydata()) == [fake_rates(drawn, k, scale)[name]
                                                  for k in workers]
                if len(workers) == 1:  # one point: a marker, no line
                    assert line.get_linestyle() == "None" and len(line.get_xdata()) == 1
                else:
                    assert line.get_linestyle() != "None"
                    assert list(line.get_xdata()) == workers
            assert unit in ax.get_ylabel() and "workers" in ax.get_xlabel()
            assert ax.get_title()
        title = fig.get_suptitle().replace("\n", " ")
        assert "16 cores" in title and "Some CPU 9000" in title and "2026-01-02" in title
        assert ("torch 2.13.0" if with_torch else "without torch") in title
    finally:
        import matplotlib.pyplot as plt
        plt.close(fig)


def test_the_committed_figures_are_a_run_of_the_benchmark():
    # docs/tuning.md draws docs/figures/scaling.json: it has every workload and contender.
    figures = json.loads((ROOT / "docs" / "figures" / "scaling.json").read_text())
    assert {"cores", "cpu", "torch", "date"} <= set(figures["machine"])
    for key, names in (("cpu_bound", CPU_NAMES), ("arrays", ARRAY_NAMES)):
        rows = figures[key]["rows"]
        assert rows and [row["workers"] for row in rows] == figures["settings"]["workers"]
        for row in rows:
            assert set(row["rates"]) == set(names if figures["machine"]["torch"] else [
                n for n in names if "DataLoader" not in n])
            assert all(rate > 0 for rate in row["rates"].values())
