"""What the documentation tells a reader to type works.

Every ```python block of every page in docs/ runs here, page by page: the
blocks of a page run in order in one namespace, as a reader who copies them
one after the other would run them, in a fresh directory (blocks may write
their tiny data files there). A block that needs a framework (PyTorch, Keras,
Lightning, JAX, TensorFlow) that is not installed is skipped, and so is a later
block that fails for a name it would have defined; the page then reports them
as skipped, saying which, after running all the others. A block
that is deliberately a fragment says so on its first line, with a comment
starting ``# fragment:``, and is not run; there should be very few.
"""

import gc
import re
import subprocess
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
FRAGMENT = "# fragment:"
OPTIONAL = {"torch": "torch", "keras": "keras", "lightning": "lightning", "jax": "jax",
            "tensorflow": "tensorflow-cpu", "torchdata": "torchdata"}

FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>[^`\n]*)$")


def code_blocks(text):
    """``(line number, info string, code)`` of each fenced block of a Markdown text."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        start, number = FENCE.match(lines[i]), i + 1
        i += 1
        if not start:
            continue
        indent, fence = len(start["indent"]), start["fence"]
        body = []
        while i < len(lines) and lines[i].strip() != fence:
            line = lines[i]
            body.append(line[indent:] if not line[:indent].strip() else line.lstrip())
            i += 1
        i += 1
        blocks.append((number, start["info"].strip(), textwrap.dedent("\n".join(body))))
    return blocks


def python_blocks(page):
    return [(line, code) for line, info, code in code_blocks(page.read_text())
            if info == "python"]


PAGES = sorted(p for p in DOCS.glob("*.md") if python_blocks(p))


def test_the_block_finder_finds_fenced_indented_and_fragment_blocks():
    text = textwrap.dedent("""\
        Text
        ```python
        a = 1
        ```
        1. A list item:

           ```python
           b = a + 1
           ```
        ```bash
        echo no
        ```
        ```python
        # fragment: needs your model
        model.fit()
        ```
        """)
    assert code_blocks(text) == [
        (2, "python", "a = 1"), (7, "python", "b = a + 1"), (10, "bash", "echo no"),
        (13, "python", "# fragment: needs your model\nmodel.fit()")]


# torchdata 0.11 (StatefulDataLoader) calls a deprecated torch function when imported.
@pytest.mark.filterwarnings("ignore:'set_vital' is deprecated:UserWarning")
# The pages run one after the other in this process: once parallel.md's JAX block has
# imported JAX, JAX warns at every fork of a later page's worker processes (as
# parallel.md tells its readers), which a reader of that page alone never sees.
@pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning")
@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_python_block_of_the_page_runs(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # Keras runs on the backend KERAS_BACKEND names (conftest.py makes torch the default).
    namespace = {"__name__": f"docs_{page.stem}"}
    skipped = []  # blocks that need a framework that is not installed
    try:
        _run_blocks(page, namespace, skipped)
    finally:
        # What the blocks left open (a DataLoader's iterator and its workers) ends
        # here, not when the garbage collector meets it during a later test.
        namespace.clear()
        gc.collect()
    if skipped:
        pytest.skip(f"{page.name}: the other blocks ran; " + "; ".join(skipped))


def _run_blocks(page, namespace, skipped):
    """Run the blocks of ``page`` in order in ``namespace``, noting in ``skipped`` those skipped."""
    for line, code in python_blocks(page):
        if code.startswith(FRAGMENT):
            continue
        try:
            exec(compile(code, f"{page.relative_to(ROOT)}:{line}", "exec"), namespace)
        except ModuleNotFoundError as exc:
            top = (exc.name or "").partition(".")[0]
            if top not in OPTIONAL:
                raise
            skipped.append(f"line {line} needs {top} (pip install {OPTIONAL[top]})")
        except NameError as exc:
            if not skipped:
                raise
            # Most likely defined by a block that could not run.
            skipped.append(f"line {line} ({exc}) follows a skipped block")
        except BaseException as exc:
            exc.add_note(f"in the code block of {page.relative_to(ROOT)} at line {line}")
            raise


def test_fragments_are_rare():
    fragments = [f"{page.name}:{line}" for page in PAGES
                 for line, code in python_blocks(page) if code.startswith(FRAGMENT)]
    assert len(fragments) <= 2, fragments


def _tracked_text_files():
    names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    for name in names:
        path = ROOT / name
        if path.suffix in {".md", ".py", ".txt", ".toml", ".rst"} or name == ".ci/run":
            yield name, path.read_text()


def test_install_advice_installs_from_a_clone_not_from_an_index():
    # shoal is not on a package index yet: asking pip for shoal with the keras
    # extra answers "No matching distribution". The advice is `pip install ".[keras]"`,
    # in a clone.
    advice = re.compile(r"pip install\s+['\"]?shoal\b")
    wrong = [f"{name}: {line.strip()}" for name, text in _tracked_text_files()
             if name != "CHANGELOG.md" for line in text.splitlines() if advice.search(line)]
    assert not wrong, wrong
    readme = (ROOT / "README.md").read_text()
    assert 'pip install ".[keras]"' in readme and 'pip install ".[torch]"' in readme


def test_code_lines_fit_the_box_on_the_page():
    # Longer lines are cut at the edge of the code box on a narrow screen.
    long = [f"{page.name}:{line + 1 + k}: {text}" for page in PAGES
            for line, code in python_blocks(page)
            for k, text in enumerate(code.splitlines()) if len(text) > 79]
    assert not long, long
