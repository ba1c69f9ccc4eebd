"""The config reference, generated from the schema dataclasses and the comments on their fields,
so the documentation cannot drift from the code.

A field's description is the block of comment lines right above it, or the comment at the end
of its line. A subclass that only changes a field's default keeps its parent's description.
The docs site builds its reference page with `markdown` (docs/hooks/config_reference.py), and
the tests fail on a field without a description (`undocumented`).
"""
from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import tokenize
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Dict, List, Optional, Sequence, Tuple

from omegaconf import MISSING

# Keys Hydra itself reads, not the user: not listed.
_HIDDEN = ("_target_", "defaults")


@dataclass
class Section:
    """One table of the reference: `title`, the key prefix its rows are shown with, and the
    schema dataclasses whose fields it lists (one class: its fields; several: each option of a
    config group, `option` naming how the user picks it)."""

    title: str
    prefix: str
    schemas: Sequence[type]
    intro: str = ""
    option: str = ""  # e.g. "data=": each schema then gets a sub-heading data=<name>
    names: Sequence[str] = ()  # the option names, in the order of `schemas`
    skip: Sequence[str] = ()  # keys not listed (a parent's that another page documents)


@lru_cache(maxsize=None)
def _own_comments(cls: type) -> Dict[str, str]:
    """Field name -> the comment written on it in `cls`'s own body (not its parents')."""
    try:
        lines, first = inspect.getsourcelines(cls)
    except (OSError, TypeError):
        return {}
    source = "".join(lines)
    comments: Dict[int, str] = {}  # line (1-based, in `source`) -> comment text
    code_lines = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
        elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                              tokenize.ENDMARKER):
            code_lines.add(tok.start[0])
    body = ast.parse(source).body[0]  # a module-level class: its source starts unindented
    found = {}
    for node in body.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        line = node.lineno
        if line in comments:  # at the end of the field's own line
            found[node.target.id] = comments[line]
            continue
        above: List[str] = []
        up = line - 1
        while up in comments and up not in code_lines:
            above.insert(0, comments[up])
            up -= 1
        if above:
            found[node.target.id] = " ".join(above)
    return found


def description(cls: type, name: str) -> Optional[str]:
    """The field's comments from the base class down to `cls`: what the key is, then what a
    subclass says about its own default."""
    texts: List[str] = []
    for klass in reversed(cls.__mro__):
        text = _own_comments(klass).get(name) if dataclasses.is_dataclass(klass) else None
        if text and text not in texts:
            texts.append(text)
    return " ".join(texts) or None


def fields(cls: type, skip: Sequence[str] = ()) -> List[Tuple[str, str, Any, Optional[str]]]:
    """(name, type, default, description) of each field users set, in declaration order."""
    rows = []
    for f in dataclasses.fields(cls):
        if f.name in _HIDDEN or f.name in skip:
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        else:
            default = MISSING
        rows.append((f.name, _type_text(f.type), default, description(cls, f.name)))
    return rows


def undocumented(sections: Sequence[Section]) -> List[str]:
    """Every key of the reference that has no description: `prefix.name (Class)`."""
    return [f"{s.prefix}{name} ({cls.__name__})" for s in sections for cls in s.schemas
            for name, _, _, text in fields(cls, s.skip) if not text]


def markdown(sections: Sequence[Section], preface: str = "") -> str:
    out = [preface.rstrip() + "\n"] if preface else []
    for s in sections:
        out.append(f"## {s.title}\n")
        if s.intro:
            out.append(s.intro.rstrip() + "\n")
        names = list(s.names) or [""] * len(s.schemas)
        for cls, name in zip(s.schemas, names):
            if s.option:
                out.append(f"### `{s.option}{name}`\n")
                doc = written_doc(cls)
                if doc:
                    out.append(doc + "\n")
            rows = fields(cls, s.skip)
            if not rows:
                out.append("No keys of its own.\n")
                continue
            out.append("| key | type | default | what it is |\n|---|---|---|---|")
            for key, kind, default, text in rows:
                out.append(f"| `{s.prefix}{key}` | {kind} | {_default_text(default)} | {_cell(text or '')} |")
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def written_doc(cls: type) -> str:
    """The class's own docstring on one line; "" for none (not the signature dataclasses
    write in its place)."""
    doc = cls.__dict__.get("__doc__") or ""
    return "" if doc.startswith(f"{cls.__name__}(") else " ".join(doc.split())


def _type_text(kind: Any) -> str:
    text = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    return text.replace("typing.", "").replace("Optional[", "optional ").rstrip("]") \
        if text.startswith("Optional[") and text.count("[") == 1 else text.replace("typing.", "")


def _default_text(default: Any) -> str:
    if default is MISSING or default == "???":
        return "required"
    if default is None:
        return "`null`"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    return _cell(f"`{default!r}`" if isinstance(default, str) else f"`{default}`")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
