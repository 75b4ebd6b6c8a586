"""The package's layout holds: importing any fkp module has no side effects (no plotting backend
switched, no file read), each subpackage imports only what the layout allows, and no
top-level script imports another."""

import ast
import importlib
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import fkp
from tests import ROOT

MODULES = sorted(
    m.name for m in pkgutil.walk_packages(fkp.__path__, "fkp.") if not m.name.startswith("fkp.conf")
)

_IMPORT_ALL = f"import importlib\nfor name in {MODULES!r}:\n    importlib.import_module(name)\n"

# What each part of fkp may import at module level (imports inside functions, loaded only
# when that function runs, are free). The leaf modules import no other fkp subpackage.
LEAVES = {"fkp.errors", "fkp.plain", "fkp.geometry", "fkp.landmarks", "fkp.files", "fkp.viz",
          "fkp.registry"}  # fmt: skip
ALLOWED = {
    "fkp.runtime": {"fkp.runtime"},
    "fkp.models": {"fkp.models"},
    "fkp.data": {"fkp.data", "fkp.runtime.preprocess"},
    "fkp.evaluation": {"fkp.evaluation", "fkp.runtime"},
    "fkp.training": {"fkp.training", "fkp.models", "fkp.data", "fkp.evaluation", "fkp.runtime"},
    "fkp.cli": {"fkp"},
    "fkp.config": {"fkp"},
}


def test_importing_fkp_modules_leaves_matplotlibs_backend_alone():
    code = _IMPORT_ALL + "import matplotlib; print(matplotlib.get_backend())"
    env = {**os.environ, "MPLBACKEND": "svg"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "svg"


def test_importing_fkp_reads_no_config_or_landmark_file():
    code = (
        "import pathlib; read = []; original = pathlib.Path.read_text\n"
        "def spy(self, *a, **k):\n    read.append(str(self)); return original(self, *a, **k)\n"
        "pathlib.Path.read_text = spy\n"
        + _IMPORT_ALL
        + "print([p for p in read if p.endswith('.yaml')])\n"
        "from fkp.landmarks import IBUG68\n"
        "print(IBUG68.num_points)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["[]", "68"]  # read when first used, not on import


def _module_level_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text()).body:  # the module's own statements only
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fkp"):
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("fkp"))
    return names


def _part(name: str) -> str:
    return next((p for p in ALLOWED if name == p or name.startswith(p + ".")), name)


def test_each_subpackage_imports_only_what_the_layout_allows():
    broken = []
    for name in MODULES:
        path = Path(importlib.util.find_spec(name).origin)
        part = _part(name)
        for imported in _module_level_imports(path) - {"fkp"}:
            ok = imported in LEAVES or any(
                imported == a or imported.startswith(a + ".") for a in ALLOWED.get(part, ())
            )
            if name in LEAVES:  # a leaf imports leaves only
                ok = imported in LEAVES
            if not ok:
                broken.append(f"{name} imports {imported}")
    assert not broken, broken


def test_no_script_imports_another():
    """The top-level scripts and bench scripts are entry points: fkp, the tests and the other
    top-level scripts never import them (bench/report.py alone runs the benchmarks together)."""
    scripts = {p.stem for p in ROOT.glob("*.py")}
    scripts |= {p.stem for p in (ROOT / "bench").glob("*.py")} - {"common"}
    for path in [*ROOT.glob("*.py"), *ROOT.glob("fkp/**/*.py"), *ROOT.glob("tests/**/*.py")]:
        tree = ast.parse(path.read_text())
        names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                 for a in n.names}  # fmt: skip
        names |= {n.module.split(".")[0] for n in ast.walk(tree)
                  if isinstance(n, ast.ImportFrom) and n.module and not n.level}  # fmt: skip
        assert not names & scripts, f"{path} imports the script(s) {names & scripts}"
