"""Check the built distributions, and smoke-test an installed wheel.

``python .ci/check_dist.py contents dist/`` lists the wheel and the sdist and
checks that the wheel holds the whole package and its metadata, and nothing
else (no tests, docs, examples or benchmarks), and that the sdist can rebuild
the package. ``python .ci/check_dist.py smoke`` imports the installed shoal
and runs a tiny stream through it; run it in a fresh environment, outside
the repository.
"""

import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def check_contents(dist):
    dist = Path(dist)
    (wheel,) = dist.glob("shoal-*.whl")
    (sdist,) = dist.glob("shoal-*.tar.gz")
    names = zipfile.ZipFile(wheel).namelist()
    print(f"{wheel.name}:", *sorted(names), sep="\n  ")

    dist_info = [n for n in names if ".dist-info/" in n]
    package = [n for n in names if n.startswith("shoal/")]
    others = sorted(set(names) - set(dist_info) - set(package))
    assert not others, f"the wheel holds files outside the package: {others}"
    for word in ("tests", "docs", "examples", "benchmarks", "conftest"):
        assert not any(word in n for n in names), f"the wheel holds {word}: {names}"

    modules = sorted(str(p.relative_to(ROOT / "src").as_posix())
                     for p in (ROOT / "src" / "shoal").rglob("*.py"))
    # py.typed: the package's annotations are for type checkers of its users (PEP 561).
    modules.append("shoal/py.typed")
    missing = sorted(set(modules) - set(package))
    assert not missing, f"the wheel lacks modules of the package: {missing}"
    extra = sorted(set(package) - set(modules))
    assert not extra, f"the wheel holds files that are not modules of the package: {extra}"

    (metadata_name,) = [n for n in dist_info if n.endswith("/METADATA")]
    metadata = Parser().parsestr(zipfile.ZipFile(wheel).read(metadata_name).decode())
    assert metadata["Name"] == "shoal"
    assert metadata["License-Expression"] == "ISC", metadata["License-Expression"]
    assert metadata["Requires-Python"] == ">=3.10"
    assert metadata["Description-Content-Type"] == "text/markdown"
    assert "Restartable data streams" in metadata.get_payload()
    requires = metadata.get_all("Requires-Dist")
    runtime = sorted(r for r in requires if "extra ==" not in r)
    assert runtime == ["decorator>=5", "numpy>=1.23"], runtime
    assert {"torch", "keras", "test", "docs"} <= set(metadata.get_all("Provides-Extra"))
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in dist_info), dist_info

    with tarfile.open(sdist) as tar:
        sdist_names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    print(f"{sdist.name}:", *sorted(sdist_names), sep="\n  ")
    for needed in ["pyproject.toml", "README.md", "LICENSE", *("src/" + m for m in modules)]:
        assert needed in sdist_names, f"the sdist lacks {needed}"
    for left_out in ("tests/", "docs/", "examples/", "benchmarks/", ".ci/"):
        assert not any(n.startswith(left_out) for n in sdist_names), f"the sdist holds {left_out}"
    print(f"{wheel.name}: {len(package)} package files and its metadata, nothing else; "
          f"{sdist.name}: the package, README, LICENSE and pyproject.toml")


def smoke():
    import shoal

    location = Path(shoal.__file__).resolve()
    assert "site-packages" in location.parts, f"shoal imported from {location}, not the wheel"
    mux = shoal.ChainMux([shoal.Streamer(range(3)), shoal.Streamer(range(3, 5))], mode="cycle")
    assert list(mux(max_iter=7)) == [0, 1, 2, 3, 4, 0, 1]
    it = mux.iterator()
    first = [next(it) for _ in range(4)]
    again = mux.iterator()
    again.load_state_dict(it.state_dict())
    assert first + [next(again) for _ in range(3)] == [0, 1, 2, 3, 4, 0, 1]
    assert not {"torch", "keras", "tensorflow", "jax"} & set(sys.modules), "a framework was imported"
    print(f"shoal {shoal.__version__} from the wheel, at {location.parent}: imports and streams")


if __name__ == "__main__":
    if sys.argv[1:2] == ["contents"] and len(sys.argv) == 3:
        check_contents(sys.argv[2])
    elif sys.argv[1:] == ["smoke"]:
        smoke()
    else:
        sys.exit(f"usage: {sys.argv[0]} contents DIST_DIR | smoke")
