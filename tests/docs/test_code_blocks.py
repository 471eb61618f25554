"""Every ```python block in README.md and docs/**/*.md runs as written.

The blocks of one page run in order in one namespace (a page may build on its earlier blocks), in a
fresh temporary working directory, with one CPU thread. A block that is not meant to run as written
(it needs a trained run directory, the real datasets, or elides inputs with ``...``) is marked as a
sketch in its info string, and is only compiled (a syntax error still fails):

    ```python sketch
    model.load_state_dict(load_checkpoint("runs/.../checkpoint.pt")["model"])
    ```

A block marked ``peers`` (```` ```python peers ````) compares against the optional peer libraries
(``pip install -e .[peers]``) and runs only where they are installed; elsewhere it is compiled only.
Renderers read the first word of the info string as the language, so both still show as Python.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>[^`\n]*)$")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    info: str
    code: str

    @property
    def language(self) -> str:
        return (self.info.split() or [""])[0].lower()

    @property
    def sketch(self) -> bool:
        return "sketch" in self.info.split()[1:]

    @property
    def needs_peers(self) -> bool:
        return "peers" in self.info.split()[1:]


PEERS = ("spd_learn", "torchspd", "geoopt")
HAVE_PEERS = all(importlib.util.find_spec(name) is not None for name in PEERS)


def extract_blocks(page: Path) -> list[Block]:
    """Fenced code blocks of a Markdown page (CommonMark fences: ``` or ~~~, closing fence as long)."""
    blocks: list[Block] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, indent, start = m["fence"], len(m["indent"]), i
        body: list[str] = []
        i += 1
        while i < len(lines):
            close = FENCE.match(lines[i])
            if (
                close
                and close["fence"][0] == fence[0]
                and len(close["fence"]) >= len(fence)
                and not close["info"].strip()
            ):
                break
            body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
            i += 1
        blocks.append(Block(page, start + 1, m["info"].strip(), "\n".join(body) + "\n"))
        i += 1
    return blocks


def python_blocks(page: Path) -> list[Block]:
    return [b for b in extract_blocks(page) if b.language in ("python", "py", "python3")]


PAGES_WITH_CODE = [p for p in PAGES if python_blocks(p)]


def _param(page: Path) -> object:
    # torch.compile takes tens of seconds per function on a small CPU: such pages are marked slow.
    compiles = any("torch.compile(" in b.code and not b.sketch for b in python_blocks(page))
    return pytest.param(page, marks=pytest.mark.slow) if compiles else page


def test_extractor_finds_fences(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "text\n```python\nx = 1\n```\n\n````python sketch\n```\ny = ...\n````\n- item\n  ```bash\n  ls\n  ```\n"
    )
    blocks = extract_blocks(page)
    assert [(b.line, b.language, b.sketch) for b in blocks] == [
        (2, "python", False),
        (6, "python", True),
        (11, "bash", False),
    ]
    assert blocks[0].code == "x = 1\n"
    assert blocks[1].code == "```\ny = ...\n"
    assert blocks[2].code == "ls\n"


def test_pages_are_found() -> None:
    # README.md and the layer pages carry runnable examples; losing them (a moved folder, a broken
    # glob) must fail here rather than make the test below vacuous.
    names = {p.relative_to(ROOT).as_posix() for p in PAGES_WITH_CODE}
    assert "README.md" in names
    assert any(n.startswith("docs/layers/") for n in names)


@pytest.mark.parametrize("page", [_param(p) for p in PAGES_WITH_CODE], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_code_blocks_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads, dtype, grad = torch.get_num_threads(), torch.get_default_dtype(), torch.is_grad_enabled()
    torch.set_num_threads(1)
    namespace: dict[str, object] = {"__name__": "__main__"}
    rel = page.relative_to(ROOT).as_posix()
    try:
        for block in python_blocks(page):
            where = f"{rel}:{block.line}"
            code = compile(block.code, where, "exec")  # sketches must still parse
            if block.sketch or (block.needs_peers and not HAVE_PEERS):
                continue
            torch.manual_seed(0)
            out = io.StringIO()
            try:
                with contextlib.redirect_stdout(out), warnings.catch_warnings():
                    if block.needs_peers:  # the peers' own deprecation warnings (torch.jit.script) are not ours
                        warnings.simplefilter("ignore", DeprecationWarning)
                    exec(code, namespace)
            except Exception as exc:  # re-raised with the block's location
                raise AssertionError(
                    f"code block at {where} failed ({type(exc).__name__}: {exc}); fix it or mark it ```python sketch"
                ) from exc
    finally:  # a page may change torch's global state; the rest of the suite must not see it
        torch.set_num_threads(threads)
        torch.set_default_dtype(dtype)
        torch.set_grad_enabled(grad)
