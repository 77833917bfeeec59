"""The README's commands are the ones CI runs."""

from pathlib import Path

from test_docs_code import code_blocks

ROOT = Path(__file__).resolve().parent.parent


def _blocks(text, language):
    """The code blocks of ``text`` fenced as ``language``."""
    return [code for _, info, code in code_blocks(text) if info == language]


def _ci_commands(ci):
    """The command lines of .ci/run, without the ``|| exit 1`` that makes set -e stop."""
    return [line.removesuffix(" || exit 1") for line in ci.splitlines()]


def test_ci_runs_the_readme_test_command():
    blocks = _blocks((ROOT / "README.md").read_text(), "bash")
    test_commands = [b for b in blocks if "pytest" in b]
    assert len(test_commands) == 1
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_commands[0].strip() in _ci_commands(ci)


def test_ci_builds_the_docs_with_the_readme_command():
    blocks = _blocks((ROOT / "README.md").read_text(), "bash")
    docs_commands = [b for b in blocks if "sphinx" in b]
    assert len(docs_commands) == 1 and "-W" in docs_commands[0]
    ci = (ROOT / ".ci" / "run").read_text()
    assert docs_commands[0].strip() in _ci_commands(ci)


def test_readme_runs_the_seed_example():
    blocks = _blocks((ROOT / "README.md").read_text(), "bash")
    assert any("examples/repeatable_validation.py" in b and "pip install" in b for b in blocks)


def test_the_readme_keras_recipe_runs_as_it_stands(tmp_path):
    # The one complete block: imports, tiny data files, a model and fit. It runs
    # on the backend KERAS_BACKEND names (torch when unset); CI runs it on all three.
    import importlib.util
    import os
    import subprocess
    import sys

    import pytest

    backend = os.environ.get("KERAS_BACKEND", "torch")
    for module in ("keras", backend):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"the README's Keras recipe needs {module} (pip install '.[keras]')")
    readme = (ROOT / "README.md").read_text()
    blocks = [b for b in _blocks(readme, "python") if "import shoal.keras" in b]
    assert len(blocks) == 1, "the README has one complete Keras block"
    script = tmp_path / "readme_keras.py"
    script.write_text(blocks[0] + "\nprint('val_loss', model.history.history['val_loss'])\n")
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300, check=False,
                            env=dict(os.environ, KERAS_BACKEND=backend))
    assert result.returncode == 0, result.stderr
    losses = result.stdout.rsplit("val_loss", 1)[1]
    assert losses.count(",") == 2  # three epochs, each validated
    assert "ran out of data" not in result.stderr  # validation_steps fits the data
    assert "Epoch 3/3" in result.stdout
