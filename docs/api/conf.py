"""Sphinx configuration of the API reference, generated from the docstrings.

Build: ``bash scripts/docs.sh`` (output ``build/api/index.html``). The build is offline (no
intersphinx), warnings are errors (``-W``) and references are checked (``-n``): an explicit role
(``:func:``, ``:meth:``, ``:mod:``, ``:data:``, ...) or any reference to a ``matbackprop.`` name that does
not resolve fails the build. References into torch / numpy / scipy cannot be resolved offline and are
not checked.

The pages are written at build time into ``_generated/`` (gitignored): one page per module of the
packages in ``PACKAGES`` (every object documented once, where it is defined) and one summary per public
namespace in ``NAMESPACES`` (each ``__all__`` name linked to its definition), so a new module or
function appears without editing anything here.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import re
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent / "src"))
os.environ.setdefault("OMP_NUM_THREADS", "1")

project = "matbackprop"
author = "matbackprop contributors"
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",  # numpy-style "Parameters" and Google-style "Args:" sections
]
exclude_patterns = ["_build"]
html_theme = "alabaster"
add_module_names = False

# Packages whose modules get a page; experiments/ and cli.py are the command line, documented in the
# Markdown guide. Namespaces whose __all__ gets a summary table on the index page.
PACKAGES = [
    "matbackprop.linalg",
    "matbackprop.ops",
    "matbackprop.nn",
    "matbackprop.metrics",
    "matbackprop.segmentation",
    "matbackprop.data",
    "matbackprop.models",
    "matbackprop.train",
]
NAMESPACES = [
    "matbackprop",
    "matbackprop.nn",
    "matbackprop.metrics",
    "matbackprop.segmentation",
    "matbackprop.data",
    "matbackprop.train",
]

# Each object is documented once, in the module that defines it ("ignore-module-all": a package page
# does not repeat what its __init__ re-exports); re-exported names resolve to it (_resolve_reexport).
autodoc_default_options = {
    "members": True,
    "undoc-members": True,
    "show-inheritance": True,
    "ignore-module-all": True,
}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_inherit_docstrings = False  # torch's own docstrings (Module.train, ...) are not ours to check
napoleon_numpy_docstring = True
napoleon_google_docstring = True
# Types in this code base's "Parameters"/"Returns"/"Attributes" entries are prose ("(H, W) integer
# label map"): render them as text, not as cross-references.
napoleon_use_param = False
napoleon_use_rtype = False
napoleon_custom_sections = [("Attributes", "params_style")]
nitpicky = True


# ---------------------------------------------------------------------------------------------------
# Page generation


def _modules(package: str) -> list[str]:
    """``package`` and its public submodules, recursively, in name order."""
    try:
        pkg = importlib.import_module(package)
    except ImportError:
        return []
    names = [package]
    for info in pkgutil.walk_packages(pkg.__path__, prefix=package + "."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


ROLE = re.compile(r":(?P<role>[a-z]+):`(?P<tilde>~?)(?P<name>[A-Za-z_]\w*)`")


def _summary(obj: object, home: str) -> str:
    """The first paragraph of a docstring on one line (a whole paragraph keeps inline markup closed).

    The summary is shown on the index, away from its module, so a relative reference in it
    (``:data:`DATASETS```) is made absolute (``:data:`~matbackprop.data.locations.DATASETS```).
    """
    doc = inspect.getdoc(obj) or ""
    text = " ".join(doc.split("\n\n", 1)[0].split())
    module = sys.modules.get(home)

    def absolute(m: re.Match[str]) -> str:
        if module is None or not hasattr(module, m["name"]):
            return m.group(0)
        return f":{m['role']}:`~{home}.{m['name']}`"

    return ROLE.sub(absolute, text)


def _module_page(name: str, children: list[str]) -> str:
    title = f"``{name}``"
    lines = [title, "=" * len(title), "", f".. automodule:: {name}", ""]
    if children:
        lines += [".. toctree::", "   :maxdepth: 1", ""] + [f"   {c}" for c in children] + [""]
    return "\n".join(lines)


def _namespace_table(name: str) -> str:
    module = importlib.import_module(name)
    alias = "mb" if name == "matbackprop" else "mb." + name.split(".", 1)[1]
    title = f"``{alias}``: ``{name}``"
    lines = [title, "-" * len(title), "", f".. currentmodule:: {name}", ""]
    for attr in getattr(module, "__all__", []):
        obj = getattr(module, attr)
        if inspect.ismodule(obj):
            lines.append(f"* :py:mod:`{alias}.{attr} <{obj.__name__}>`")
            continue
        target = _canonical(f"{name}.{attr}", None) or f"{name}.{attr}"
        lines.append(f"* :py:obj:`{alias}.{attr} <{target}>`: {_summary(obj, target.rpartition('.')[0])}")
    return "\n".join(lines + [""])


def _write_pages(app: object) -> None:
    out = HERE / "_generated"
    out.mkdir(exist_ok=True)
    for old in [*out.glob("*.rst"), *out.glob("*.inc")]:
        old.unlink()
    tops = []
    for package in PACKAGES:
        names = _modules(package)
        if not names:
            continue
        tops.append(package)
        for mod in names:
            depth = mod.count(".")
            children = [c for c in names if c.startswith(mod + ".") and c.count(".") == depth + 1]
            (out / f"{mod}.rst").write_text(_module_page(mod, children))
    tables = "\n".join(_namespace_table(ns) for ns in NAMESPACES)
    (out / "namespaces.inc").write_text(tables)  # .inc: included by index.rst, not a page
    (out / "packages.inc").write_text(
        ".. toctree::\n   :maxdepth: 2\n   :caption: Modules\n\n" + "".join(f"   _generated/{p}\n" for p in tops)
    )


# ---------------------------------------------------------------------------------------------------
# References


def _defining_module(obj: object, attr: str, namespace: str) -> str:
    """The module that defines ``attr``: ``obj.__module__`` for functions and classes; for a constant,
    the submodule of ``namespace`` that assigns it (constants carry no ``__module__``)."""
    if inspect.isfunction(obj) or inspect.isclass(obj):
        return obj.__module__
    pattern = re.compile(rf"^{re.escape(attr)}\s*[:=]", re.M)
    for name in sorted(sys.modules):
        module = sys.modules[name]
        if (name == namespace or name.startswith(namespace + ".")) and getattr(module, attr, None) is obj:
            try:
                if pattern.search(inspect.getsource(module)):
                    return name
            except (OSError, TypeError):
                continue
    return namespace


def _canonical(target: str, context_module: str | None) -> str | None:
    """``matbackprop.logm`` or ``logm`` (seen from a module that imports it) -> its defining name."""
    candidates = [target]
    if "." not in target:
        candidates = [f"{m}.{target}" for m in (context_module, "matbackprop") if m]
    for candidate in candidates:
        module_name, _, attr = candidate.rpartition(".")
        try:
            obj = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError, ValueError):
            continue
        if inspect.ismodule(obj):
            return obj.__name__ if obj.__name__ != target else None
        qualname = getattr(obj, "__qualname__", attr) if inspect.isfunction(obj) or inspect.isclass(obj) else attr
        resolved = f"{_defining_module(obj, attr, module_name)}.{qualname}"
        if resolved != target:
            return resolved
    return None


def _resolve_reexport(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    """Resolve a re-exported name (``matbackprop.logm``) to its definition (``...linalg.funm.logm``)."""
    if node.get("refdomain") != "py":
        return None
    target = _canonical(node.get("reftarget", ""), node.get("py:module"))
    if target is None:
        return None
    domain = env.get_domain("py")
    return domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], target, node, contnode)


EXTERNAL = ("torch", "numpy", "np", "scipy", "PIL", "matplotlib", "higra", "contextlib", "typing", "collections")


def _quiet_prose_types(app: Any, domain: Any, node: Any) -> bool:
    """Keep the warning for a broken reference we wrote; drop it where it cannot be checked offline.

    Dropped: references into other packages (``:func:`torch.linalg.eigh```: no intersphinx offline);
    references to private names (``_helper``: not in the reference by design);
    ``py:class``/``py:obj`` references that napoleon and autodoc make from prose and annotations (the
    text before a colon in an attribute's doc comment, ``tuple[Any, float]``) unless they name a public
    ``matbackprop.`` object. Every other unresolved reference fails the build.
    """
    target = node.get("reftarget", "")
    if target.split(".", 1)[0] in EXTERNAL:
        return True
    if any(part.startswith("_") for part in target.lstrip("~.").split(".")):
        return True  # a private helper: not in the reference by design
    return node.get("reftype") in ("class", "obj") and not target.startswith("matbackprop")


def setup(app: Any) -> None:
    app.connect("builder-inited", _write_pages)
    app.connect("missing-reference", _resolve_reexport)
    app.connect("warn-missing-reference", _quiet_prose_types)
