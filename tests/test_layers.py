"""shoal's modules import each other one way: each layer only from the layers beneath it.

The recipes (``core``) sit under the muxes and maps, which sit under the
running-state layer (``iterator``), which sits under the adapters
(``parallel``, ``keras``, ``torch``). A module may import its own layer or a
lower one, never a higher one, not even lazily inside a function; and no
circle of imports exists, even within a layer.
"""

import ast
import pathlib
import subprocess
import sys

import shoal

# Lowest first. A module added to shoal must be given its layer here.
LAYERS = [
    ("helpers", ["_version", "version", "exceptions", "_checks", "_iterutil", "_counter", "_schema", "_contract",
                 "_random", "util", "_arena"]),
    ("running state", ["iterator", "_resume"]),
    ("recipes", ["core"]),
    ("muxes and maps", ["mux._base", "mux.chain", "mux.round_robin", "mux.shuffled",
                        "mux._stochastic_counts", "mux._stochastic_policy",
                        "mux._stochastic_slots", "mux._stochastic_node", "mux.stochastic",
                        "mux", "maps._recipe", "maps._batch", "maps._tuples", "maps._cache",
                        "maps"]),
    ("resharding", ["reshard", "shares"]),
    ("adapters", ["parallel._protocol", "parallel._ring", "parallel._state", "parallel._stats",
                  "parallel._worker", "parallel._threads",
                  "parallel._lifecycle", "parallel._consumer", "parallel._recipe", "parallel",
                  "zmq_stream", "keras", "torch"]),
    ("package", [""]),
]
LAYER_OF = {module: level for level, (_, modules) in enumerate(LAYERS) for module in modules}
SOURCE = pathlib.Path(shoal.__file__).parent


def module_name(path, root=SOURCE):
    """``mux.chain`` for ``mux/chain.py``, ``mux`` for ``mux/__init__.py``, ``""`` for shoal's."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def shoal_imports(path, root=SOURCE):
    """The shoal modules the file at ``path`` imports, anywhere in it: ``{module: line}``."""
    name = module_name(path, root)
    # The package a relative import starts from: the module's own for __init__.
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    package = [part for part in package if part]
    found = {}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = [*base, *(node.module.split(".") if node.module else [])]
            elif node.module and node.module.split(".")[0] == "shoal":
                target = node.module.split(".")[1:]
            else:
                continue
            # ``from . import x`` or ``from .mux import _base`` may name a module.
            for alias in node.names:
                candidate = ".".join([*target, alias.name])
                found.setdefault(candidate if candidate in LAYER_OF else ".".join(target),
                                 node.lineno)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "shoal":
                    found.setdefault(".".join(parts[1:]), node.lineno)
    return found


def all_modules():
    return {module_name(path): path for path in SOURCE.rglob("*.py")}


def test_every_module_has_a_layer():
    unplaced = sorted(set(all_modules()) - set(LAYER_OF))
    assert not unplaced, f"give these modules a layer in LAYERS of {__file__}: {unplaced}"


def test_no_module_imports_a_higher_layer():
    wrong = []
    for name, path in sorted(all_modules().items()):
        for target, line in shoal_imports(path).items():
            assert target in LAYER_OF, f"{path}:{line} imports unknown shoal module {target!r}"
            if LAYER_OF[target] > LAYER_OF[name]:
                wrong.append(f"{name or 'shoal'} ({LAYERS[LAYER_OF[name]][0]}) imports "
                             f"{target} ({LAYERS[LAYER_OF[target]][0]}) at line {line}")
    assert not wrong, "\n".join(wrong)


def test_no_circle_of_imports():
    graph = {name: set(shoal_imports(path)) - {name} for name, path in all_modules().items()}
    done, on_path = set(), []

    def visit(name):
        if name in on_path:
            circle = on_path[on_path.index(name):] + [name]
            raise AssertionError("circle of imports: " + " -> ".join(circle))
        if name in done:
            return
        on_path.append(name)
        for target in sorted(graph.get(name, ())):
            visit(target)
        on_path.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)


def test_the_checker_sees_lazy_and_absolute_imports(tmp_path):
    # The check above is only as good as the parser: it must see an import
    # inside a function, an absolute import and ``from . import module``.
    package = tmp_path / "shoal"
    (package / "mux").mkdir(parents=True)
    probe = package / "mux" / "probe.py"
    probe.write_text("def f():\n    from ..iterator import StreamIterator\n"
                     "import shoal.parallel\nfrom .. import maps\nfrom . import chain\n")
    assert shoal_imports(probe, package) == {"iterator": 2, "parallel": 3, "maps": 4,
                                             "mux.chain": 5}


def test_importing_a_module_loads_no_higher_layer():
    # In a fresh interpreter, with the package's __init__ (which imports
    # everything) not run, import each module in layer order and see which
    # shoal modules it loads. keras and torch are left out: they import their
    # framework (the static check above covers them).
    order = [module for _, modules in LAYERS[:-1] for module in modules
             if module not in ("keras", "torch")]
    program = f"""
import importlib, importlib.util, sys
spec = importlib.util.spec_from_file_location(
    "shoal", {str(SOURCE / "__init__.py")!r}, submodule_search_locations=[{str(SOURCE)!r}])
sys.modules["shoal"] = importlib.util.module_from_spec(spec)  # its code is not run
for module in {order!r}:
    importlib.import_module("shoal." + module)
    loaded = sorted(m[len("shoal."):] for m in sys.modules if m.startswith("shoal."))
    print(module, *loaded)
"""
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                            check=True)
    lines = result.stdout.split("\n")[:-1]
    assert len(lines) == len(order)
    for line in lines:
        module, *loaded = line.split()
        higher = [m for m in loaded if LAYER_OF[m] > LAYER_OF[module]]
        assert not higher, f"importing shoal.{module} loaded {higher}"


def module_level_attribute_sets(path):
    """``(line, text)`` of each statement outside functions that sets an attribute of an
    object the module did not make itself.

    ``Streamer._x = ...`` or ``setattr(buffer_stream, ...)`` in a module's body (a loop or an
    ``if`` there included) patches an object that another module made or will read: a
    back-door around the contract, which passes things down as arguments or registers them.
    (A module may set up an object it made: ``_repr = reprlib.Repr(); _repr.maxlist = 6``.)
    """
    tree = ast.parse(path.read_text(), str(path))
    made = {target.id for node in tree.body if isinstance(node, ast.Assign)
            for target in node.targets if isinstance(target, ast.Name)}
    found = []

    def root(node):
        while isinstance(node, (ast.Attribute, ast.Subscript)):
            node = node.value
        return node.id if isinstance(node, ast.Name) else None

    def visit(statements):
        for node in statements:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue  # methods set attributes of their own objects
            bodies = [getattr(node, field, []) for field in ("body", "orelse", "finalbody")]
            bodies += [handler.body for handler in getattr(node, "handlers", [])]
            if any(bodies):
                visit([child for body in bodies for child in body])
                continue
            targets = []
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
                targets = [node.target]
            for target in targets:
                if isinstance(target, ast.Attribute) and root(target) not in made:
                    found.append((node.lineno, ast.unparse(target)))
            for call in ast.walk(node):
                if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and (
                        call.func.id in ("setattr", "delattr")) and call.args and (
                        root(call.args[0]) not in made):
                    found.append((node.lineno, ast.unparse(call)))

    visit(tree.body)
    return found


def test_no_module_sets_attributes_of_other_objects_in_its_body():
    wrong = [f"{path.relative_to(SOURCE)}:{line}: {text}"
             for path in sorted(all_modules().values())
             for line, text in module_level_attribute_sets(path)]
    assert not wrong, "\n".join(wrong)


def test_the_attribute_check_sees_a_back_door(tmp_path):
    module = tmp_path / "patch.py"
    module.write_text("from .core import Streamer\nStreamer._iterator_class = object\n"
                      "for f in (min, max):\n    setattr(f, 'x', 1)\n"
                      "own = object()\nown.ok = 1\n")
    assert module_level_attribute_sets(module) == [
        (2, "Streamer._iterator_class"), (4, "setattr(f, 'x', 1)")]



def test_no_behaviour_is_chosen_by_a_name_or_an_error_text():
    # A function's __name__ or the text of an error is for people; code asks the contract.
    wrong = []
    for path in sorted(all_modules().values()):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Compare):
                text = ast.unparse(node)
                if ("__name__" in text and "__main__" not in text) or "str(exc)" in text:
                    wrong.append(f"{path.relative_to(SOURCE)}:{node.lineno}: {text}")
    assert not wrong, "\n".join(wrong)
