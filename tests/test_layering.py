"""Layer rules from ARCHITECTURE.md, checked on the source (an import-linter in miniature).

Import statements are not the only way across a layer: ``importlib.import_module(...)``,
``__import__(...)``, ``importlib.util.find_spec(...)`` and dotted strings resolved at run time
("holoscope.codecs.formats.sog:open_sog") reach a module just the same. :func:`layer_violations`
finds both kinds in a source text, so the checker itself is tested on planted sources.
"""

from __future__ import annotations

import ast
import re
import shutil
import textwrap
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "holoscope"

# layer -> the holoscope packages it must never reach, statically or at run time
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "core": ("holoscope.codecs", "holoscope.render", "holoscope.app", "holoscope.cli"),
    "codecs": ("holoscope.app",),
    "render": ("holoscope.app",),
}

# Functions that import (or locate, which imports the parent packages) a module named by a string.
DYNAMIC_IMPORTERS = {
    "importlib.import_module",
    "importlib.__import__",
    "importlib.util.find_spec",
    "importlib.find_loader",
    "importlib.resources.files",
    "pkgutil.resolve_name",
    "pkgutil.find_loader",
    "builtins.__import__",
    "__import__",
}
# "holoscope.codecs.formats.sog", "holoscope.app.main:run_app", and the head of a name built at run
# time: "holoscope.codecs.formats." + name, f"holoscope.codecs.formats.{name}:open".
DOTTED_PATH = re.compile(r"holoscope(?:\.[A-Za-z_]\w*)+(?:\.|:[A-Za-z_][\w.]*)?")
COMPUTED = "<computed at run time>"


def imports_of(path: Path) -> set[str]:
    return static_imports(path.read_text(encoding="utf-8"))


def static_imports(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _importer_aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> dotted name, for the names a module binds to importlib & co."""
    aliases = {"__import__": "__import__"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    aliases[alias.asname] = alias.name
                else:
                    root = alias.name.split(".")[0]
                    aliases[root] = root
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return aliases


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """``importlib.util.find_spec`` for a Name/Attribute chain, through the module's aliases."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(aliases.get(node.id, node.id))
    return ".".join(reversed(parts))


def _target(call: ast.Call) -> str:
    """The module a dynamic-import call names, or COMPUTED when it is not a string literal."""
    arg = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg in ("name", "anchor")), None)
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        name = arg.value.partition(":")[0]
        package = next((k.value for k in call.keywords if k.arg == "package"), None)
        if name.startswith(".") and isinstance(package, ast.Constant) and isinstance(package.value, str):
            return package.value + name  # close enough to tell the layer: ".x" in "holoscope.app"
        return name
    return COMPUTED


def dynamic_imports(source: str) -> set[str]:
    """Modules a source reaches at run time: importer calls (their literal argument, or
    COMPUTED), and string constants that are a dotted holoscope module path (``pkg.mod`` or
    ``pkg.mod:attr``), which some code will resolve."""
    tree = ast.parse(source)
    aliases = _importer_aliases(tree)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _dotted(node.func, aliases) in DYNAMIC_IMPORTERS:
            names.add(_target(node))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value.strip()
            if DOTTED_PATH.fullmatch(text):
                names.add(text.partition(":")[0].rstrip("."))
    return names


def _reaches(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def layer_violations(source: str, layer: str) -> list[str]:
    """What a module of ``layer`` reaches that the layer rules forbid, static or dynamic. In
    ``core`` an import whose target is computed at run time is a violation too: nothing
    proves it stays inside the layer."""
    forbidden = FORBIDDEN.get(layer, ())
    if not forbidden:
        return []
    found = [f"import {n}" for n in sorted(static_imports(source)) if any(_reaches(n, p) for p in forbidden)]
    for name in sorted(dynamic_imports(source)):
        if any(_reaches(name, p) for p in forbidden) or (name == COMPUTED and layer == "core"):
            found.append(f"dynamic import {name}")
    return found


def violations_under(root: Path) -> dict[str, list[str]]:
    """``layer_violations`` for every module of a package folder laid out like holoscope/."""
    report = {}
    for layer in FORBIDDEN:
        for path in sorted((root / layer).rglob("*.py")):
            found = layer_violations(path.read_text(encoding="utf-8"), layer)
            if found:
                report[path.relative_to(root).as_posix()] = found
    return report


def modules_under(sub: str) -> list[Path]:
    return sorted((PACKAGE / sub).rglob("*.py")) if sub else sorted(PACKAGE.rglob("*.py"))


def test_source_tree_is_found():
    assert len(modules_under("core")) >= 5


def test_core_imports_no_other_holoscope_layer_and_nothing_heavy():
    for path in modules_under("core"):
        for name in imports_of(path):
            assert not name.startswith(("holoscope.codecs", "holoscope.render", "holoscope.app", "holoscope.cli")), (path, name)
            assert name.split(".")[0] not in ("torch", "PySide6", "moderngl", "av"), (path, name)


def test_no_layer_reaches_a_forbidden_one_statically_or_dynamically():
    assert violations_under(PACKAGE) == {}


def test_qt_only_in_app_and_torch_never_at_import_time_outside_neural():
    for path in modules_under(""):
        rel = path.relative_to(PACKAGE).as_posix()
        for name in imports_of(path):
            root = name.split(".")[0]
            if root == "PySide6":
                assert rel.startswith("app/"), f"{rel} imports Qt"
            if root == "torch":
                assert "/neural/" in f"/{rel}", f"{rel} imports torch"


def test_codecs_and_render_never_import_the_app():
    for sub in ("codecs", "render"):
        for path in modules_under(sub):
            assert not any(n.startswith("holoscope.app") for n in imports_of(path)), path


def test_moderngl_only_in_gl_renderers_and_export():
    for path in modules_under(""):
        rel = path.relative_to(PACKAGE).as_posix()
        if "moderngl" in {n.split(".")[0] for n in imports_of(path)}:
            assert rel.startswith(("render/gl/", "render/export.py", "render/timeline.py", "app/")), rel


# The checker on planted sources ----------------------------------------------------------

PLANTED_IN_CORE = {
    "import_module": "import importlib\nreader = importlib.import_module('holoscope.codecs.formats.sog')\n",
    "aliased import_module": "from importlib import import_module as load\nload('holoscope.render.export')\n",
    "__import__": "def f():\n    return __import__('holoscope.app.main', fromlist=['run_app'])\n",
    "find_spec": "import importlib.util\nspec = importlib.util.find_spec('holoscope.cli')\n",
    "find_spec from util": "from importlib.util import find_spec\nfind_spec('holoscope.codecs')\n",
    "relative import_module": "import importlib\nimportlib.import_module('.builtin', package='holoscope.codecs')\n",
    "computed name": "import importlib\ndef f(name):\n    return importlib.import_module(name)\n",
    "dotted string": "OPENER = 'holoscope.codecs.formats.sog:open_sog'\n",
    "dotted string in a call": "register(opener='holoscope.codecs.builtin')\n",
    "f-string": "def f(name):\n    return load(f'holoscope.codecs.formats.{name}:open_{name}')\n",
    "concatenation": "def f(name):\n    return load('holoscope.render.' + name)\n",
    "static import in a function": "def f():\n    from holoscope.codecs.builtin import register_builtin_formats\n",
}


def test_checker_reports_each_planted_dynamic_import_in_core():
    for what, source in PLANTED_IN_CORE.items():
        assert layer_violations(source, "core"), what


def test_checker_reports_the_app_reached_from_codecs_and_render():
    source = "import importlib\nwindow = importlib.import_module('holoscope.app.window')\n"
    for layer in ("codecs", "render"):
        assert layer_violations(source, layer) == ["dynamic import holoscope.app.window"]
    assert layer_violations("RUN = 'holoscope.app.main:run_app'\n", "render") == ["dynamic import holoscope.app.main"]


def test_checker_allows_what_the_rules_allow():
    allowed = {
        "core": "import importlib\nimportlib.import_module('holoscope.core.media')\nNAME = 'holoscope.ply_inria'\n"
        "MESSAGE = 'call holoscope.codecs.builtin.register_builtin_formats() at start-up'\n",
        "codecs": "import importlib\nimportlib.import_module('holoscope.codecs.formats.sog')\n"
        "from holoscope.core.registry import register\n",
        "render": "OPENER = 'holoscope.codecs.formats.sog:open_sog'\nimport importlib\nimportlib.import_module(name)\n",
        "app": "import importlib\nimportlib.import_module('holoscope.app.window')\n",
    }
    for layer, source in allowed.items():
        assert layer_violations(source, layer) == [], layer


def test_a_planted_module_in_a_copy_of_the_package_is_caught(tmp_path: Path):
    copy = tmp_path / "holoscope"
    shutil.copytree(PACKAGE / "core", copy / "core", ignore=shutil.ignore_patterns("__pycache__"))
    assert violations_under(copy) == {}
    (copy / "core" / "planted.py").write_text(textwrap.dedent("""\
        import importlib


        def load_builtins():
            importlib.import_module("holoscope.codecs.builtin")
        """))  # fmt: skip
    assert violations_under(copy) == {"core/planted.py": ["dynamic import holoscope.codecs.builtin"]}
