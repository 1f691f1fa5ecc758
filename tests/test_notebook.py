"""The retrieval playground notebook runs top to bottom against the test server.

The notebook is executed with nbclient in a kernel that runs *this* interpreter
(the project's virtualenv): a kernelspec pointing at ``sys.executable`` is
installed into a temporary directory that ``JUPYTER_PATH`` puts first, so a
``python3`` kernelspec elsewhere on the machine cannot be picked up instead.
"""

from __future__ import annotations

import re
import sys
import time
import uuid
from pathlib import Path

import nbformat
import pytest
from ipykernel.kernelspec import install as install_kernelspec
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "retrieval_playground.ipynb"
CELL_TIMEOUT_S = 60
SUMMARY = re.compile(r"PLAYGROUND SUMMARY user=(\w+) best_tool=(\w+) best_rate=([\d.]+) top_example_tool=(\w+)")


def outputs_text(nb: nbformat.NotebookNode) -> str:
    """Every stream and plain-text output of the executed notebook, in order."""
    parts: list[str] = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                parts.append(out.text)
            elif out.output_type in {"execute_result", "display_data"}:
                parts.append(out.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def test_notebook_is_saved_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "the notebook has no code cells"
    assert all(not c.outputs and c.execution_count is None for c in code), "clear the outputs before committing"


@pytest.mark.slow
def test_retrieval_playground_runs(redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "share" / "jupyter"))  # searched before any other kernel dir
    install_kernelspec(kernel_name="python3", prefix=str(tmp_path))  # argv: [sys.executable, -m, ipykernel_launcher]
    monkeypatch.setenv("REDIS_URL", redis_url)  # the kernel inherits the environment
    monkeypatch.setenv("PLAYGROUND_NAMESPACE", f"playground_{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("MPLBACKEND", "Agg")

    nb = nbformat.read(NOTEBOOK, as_version=4)
    # Prove which interpreter runs the notebook (added to the in-memory copy only).
    nb.cells.insert(0, nbformat.v4.new_code_cell("import sys\nprint('KERNEL_PREFIX=' + sys.prefix)"))
    client = NotebookClient(
        nb, kernel_name="python3", timeout=CELL_TIMEOUT_S, startup_timeout=60,
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    started = time.monotonic()
    client.execute()  # raises CellExecutionError if any cell fails
    elapsed = time.monotonic() - started
    print(f"notebook ran in {elapsed:.1f}s")

    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, errors
    text = outputs_text(nb)
    assert f"KERNEL_PREFIX={sys.prefix}\n" in text, "the notebook ran in another Python than this virtualenv"
    assert "Connected to the server in REDIS_URL" in text

    summary = {m[0]: m[1:] for m in SUMMARY.findall(text)}
    assert set(summary) == {"maya", "leo"}, text[-2000:]
    # Best tools follow from the synthetic outcomes alone (no embeddings involved).
    assert summary["maya"][0] == "create_microsteps"
    assert summary["leo"][0] == "suggest_break"
    # The top example comes from a tool that works for the person, never from one that fails them.
    assert summary["maya"][2] in {"create_microsteps", "start_body_doubling"}
    assert summary["leo"][2] in {"sensory_check_in", "start_breathing_exercise", "suggest_break"}

    assert any("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", [])), "no plot"
    assert text.rstrip().endswith("PLAYGROUND DONE")
