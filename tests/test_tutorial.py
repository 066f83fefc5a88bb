"""``python -m condiff tutorial``: per-notebook progress on the console and nothing from the kernel's log."""
from __future__ import annotations

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from condiff.tools import tutorial

KERNELSPEC = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}


def test_run_all_prints_progress_per_notebook_and_no_kernel_warning(tmp_path, monkeypatch, capfd):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for stem in ("01_a", "02_b"):
        nb = new_notebook(cells=[new_code_cell(f"print('ran {stem}')")], metadata=KERNELSPEC)
        nbformat.write(nb, folder / f"{stem}.ipynb")
    monkeypatch.setattr(tutorial, "NOTEBOOKS_DIR", folder)
    times = tutorial.run_all(tmp_path / "out")
    out, err = capfd.readouterr()  # file-descriptor level: the kernel process writes to the inherited stderr
    assert list(times) == ["01_a.ipynb", "02_b.ipynb"]
    lines = out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["[1/2] 01_a.ipynb"] * 2 + ["[2/2] 02_b.ipynb"] * 2, out
    assert "running" in lines[0] and "done in" in lines[1]
    assert "without encryption" not in out + err and "WARNING" not in err, err
    executed = nbformat.read(tmp_path / "out" / "01_a.ipynb", as_version=4)
    assert executed.cells[0].outputs[0]["text"] == "ran 01_a\n"
