"""The README's commands are the ones CI runs."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _bash_blocks(text):
    blocks, inside = [], None
    for line in text.splitlines():
        if line.strip() == "```bash":
            inside = []
        elif line.strip() == "```" and inside is not None:
            blocks.append("\n".join(inside))
            inside = None
        elif inside is not None:
            inside.append(line)
    return blocks


def test_ci_runs_the_readme_test_command():
    blocks = _bash_blocks((ROOT / "README.md").read_text())
    test_commands = [b for b in blocks if "pytest" in b]
    assert len(test_commands) == 1
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_commands[0].strip() in ci.splitlines()


def test_ci_builds_the_docs_with_the_readme_command():
    blocks = _bash_blocks((ROOT / "README.md").read_text())
    docs_commands = [b for b in blocks if "sphinx" in b]
    assert len(docs_commands) == 1 and "-W" in docs_commands[0]
    ci = (ROOT / ".ci" / "run").read_text()
    assert docs_commands[0].strip() in ci.splitlines()


def test_readme_runs_the_seed_example():
    blocks = _bash_blocks((ROOT / "README.md").read_text())
    assert any("examples/repeatable_validation.py" in b and "pip install" in b for b in blocks)
