"""What the documentation tells a reader to type works."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _tracked_text_files():
    names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    for name in names:
        path = ROOT / name
        if path.suffix in {".md", ".py", ".txt", ".toml", ".rst"} or name == ".ci/run":
            yield name, path.read_text()


def test_install_advice_installs_from_a_clone_not_from_an_index():
    # shoal is not on a package index yet: installing the name "shoal[keras]" with pip
    # answers "No matching distribution". The advice is `pip install ".[keras]"`, in a clone.
    advice = re.compile(r"pip install\s+['\"]?shoal\b")
    wrong = [f"{name}: {line.strip()}" for name, text in _tracked_text_files()
             if name != "CHANGELOG.md" for line in text.splitlines() if advice.search(line)]
    assert not wrong, wrong
    readme = (ROOT / "README.md").read_text()
    assert 'pip install ".[keras]"' in readme and 'pip install ".[torch]"' in readme
