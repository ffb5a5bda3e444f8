"""Run every ```python block of the README section "Interoperability and deployment"."""

import os
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
SECTION = "## Interoperability and deployment"


def _blocks() -> list[tuple[str, str]]:
    text = README.read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start:end if end != -1 else None]
    blocks, heading = [], ""
    for match in re.finditer(r"^### ([^\n]+)$|^```python\n(.*?)^```", section, re.M | re.S):
        if match.group(1):
            heading = match.group(1)
        else:
            blocks.append((heading, match.group(2)))
    return blocks


BLOCKS = _blocks()


def test_every_subsection_has_a_snippet():
    assert {h for h, _ in BLOCKS} >= {"Keras and PyTorch weights", "Saving and loading without pickle",
                                      "Bidirectional", "Streaming inference",
                                      "Batch inference on Dask (one machine or many)"}


@pytest.mark.parametrize("code", [code for _, code in BLOCKS],
                         ids=[f"{i}-{h.split()[0]}" for i, (h, _) in enumerate(BLOCKS)])
def test_readme_snippet_runs(code, tmp_path, monkeypatch):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    for module in re.findall(r"^(?:import|from) (keras|torch|dask|distributed)\b", code, re.M):
        pytest.importorskip(module)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})
