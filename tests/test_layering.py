"""Layer rules from ARCHITECTURE.md, checked on the source (an import-linter in miniature)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "holoscope"


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def modules_under(sub: str) -> list[Path]:
    return sorted((PACKAGE / sub).rglob("*.py")) if sub else sorted(PACKAGE.rglob("*.py"))


def test_source_tree_is_found():
    assert len(modules_under("core")) >= 5


def test_core_imports_no_other_holoscope_layer_and_nothing_heavy():
    for path in modules_under("core"):
        for name in imports_of(path):
            assert not name.startswith(("holoscope.codecs", "holoscope.render", "holoscope.app", "holoscope.cli")), (path, name)
            assert name.split(".")[0] not in ("torch", "PySide6", "moderngl", "av"), (path, name)


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
            assert rel.startswith(("render/gl/", "render/export.py", "app/")), rel
