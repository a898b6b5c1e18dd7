"""The package's floors: libraries at the bottom, ``defs/`` above them, the ``delitos`` command on top.

An import may only point down. Imports inside functions count too: they are how a module reaches up lazily.
"""

from __future__ import annotations

import ast
from pathlib import Path

import delitos_platform

PACKAGE = Path(delitos_platform.__file__).parent
# Each floor, top first, by the dotted prefixes of its modules; whatever matches none is a library.
COMMANDS = ("delitos_platform.commands",)
DEFINITIONS = ("delitos_platform.defs", "delitos_platform.definitions")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def floor(module: str) -> int:
    """0 for a library, 1 for the definitions, 2 for the command line."""
    if module.startswith(COMMANDS):
        return 2
    return 1 if module.startswith(DEFINITIONS) else 0


def imported_modules(path: Path) -> set[str]:
    """Every ``delitos_platform`` module a file imports, wherever the import statement is."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from package import module`` imports the module; ``from module import name``, the module.
            names.update(
                f"{node.module}.{alias.name}" if is_module(f"{node.module}.{alias.name}") else node.module
                for alias in node.names
            )
    return {name for name in names if name.startswith("delitos_platform")}


def is_module(dotted: str) -> bool:
    path = PACKAGE.parent.joinpath(*dotted.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def test_every_import_points_down_a_floor_or_stays_on_its_own():
    upward = [
        f"{module_name(path)} imports {imported}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for imported in sorted(imported_modules(path))
        if floor(imported) > floor(module_name(path))
    ]
    assert not upward, "\n".join(upward)
