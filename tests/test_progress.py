"""The progress bar never touches what it wraps before the loop does: a bar over a DataLoader
draws no random number and starts no iterator of its own, so a notebook trains to the same numbers
interactively in JupyterLab, under papermill and from the command line."""
import importlib
import sys
import types

import pytest
import torch
from torch.utils.data import DataLoader

from defectlib import progress


class CountingList(list):
    """A dataset-free iterable that counts how often an iterator is asked of it."""
    iters = 0

    def __iter__(self):
        type(self).iters += 1
        return super().__iter__()


def _reload(monkeypatch, batch: str | None, kernel: bool):
    """progress re-imported as it would be in a batch run / a kernel / a terminal."""
    if batch is None:
        monkeypatch.delenv("DEFECTLIB_BATCH", raising=False)
    else:
        monkeypatch.setenv("DEFECTLIB_BATCH", batch)
    shell = types.SimpleNamespace(kernel=object()) if kernel else None
    fake = types.SimpleNamespace(get_ipython=lambda: shell)
    monkeypatch.setitem(sys.modules, "IPython", fake)
    return importlib.reload(progress)


@pytest.fixture(autouse=True)
def _restore():
    yield
    importlib.reload(progress)


@pytest.mark.parametrize("batch,kernel", [(None, False), (None, True), ("1", True), ("1", False)])
def test_bar_construction_does_not_iterate(monkeypatch, batch, kernel):
    mod = _reload(monkeypatch, batch, kernel)
    CountingList.iters = 0
    items = CountingList(range(6))
    bar = mod.tqdm(items, total=6, disable=True)
    assert CountingList.iters == 0, f"{mod.tqdm!r} iterated its iterable at construction"
    assert list(bar) == list(range(6)) and CountingList.iters == 1


@pytest.mark.parametrize("kernel", [False, True])
def test_bar_leaves_a_loaders_random_stream_alone(monkeypatch, kernel):
    """The draws of a shuffled loader without a generator of its own, through a bar, equal the draws
    without one (tqdm.auto's bar gives another order and another next random number)."""
    mod = _reload(monkeypatch, None, kernel)

    def run(wrap):
        torch.manual_seed(0)
        loader = DataLoader(list(range(10)), batch_size=2, shuffle=True)
        order = [b.tolist() for b in wrap(loader)]
        return order, torch.rand(1).item()

    assert run(lambda dl: mod.tqdm(dl, total=len(dl), disable=True)) == run(lambda dl: dl)


def test_which_bar(monkeypatch):
    pytest.importorskip("ipywidgets")
    assert _reload(monkeypatch, None, kernel=True).tqdm.__module__ == "tqdm.notebook"
    assert _reload(monkeypatch, None, kernel=False).tqdm.__module__ == "tqdm.std"
    assert _reload(monkeypatch, "1", kernel=True).tqdm.__module__ == "tqdm.std"


CELL = """
import torch
from torch.utils.data import DataLoader
from defectlib.engine import TrainConfig, fit
from defectlib import progress
torch.manual_seed(0)
data = [(torch.randn(4), torch.randn(1)) for _ in range(16)]
loader = DataLoader(data, batch_size=4, shuffle=True)  # no generator: shuffles from the global RNG
model = torch.nn.Linear(4, 1)
loss = lambda m, b, d: {"loss": torch.nn.functional.mse_loss(m(b[0]), b[1])}
fit(model, loader, TrainConfig(epochs=2, lr=0.1, optimizer="sgd", seed=0), loss_fn=loss, device="cpu")
print(progress.tqdm.__module__, repr(model.weight.detach().sum().item()))
"""


def _in_kernel(monkeypatch, batch: str) -> tuple[str, float]:
    """Run CELL in a fresh Jupyter kernel: its bar's module and the trained weight."""
    import nbclient
    import nbformat
    monkeypatch.setenv("DEFECTLIB_BATCH", batch)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(CELL)])
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=120).execute()
    text = "".join(o.get("text", "") for o in nb.cells[0].outputs
                   if o.output_type == "stream" and o.name == "stdout")
    bar, weight = text.split()[-2:]
    return bar, float(weight)


@pytest.mark.slow
def test_a_notebook_trains_alike_interactively_in_batch_and_in_a_terminal(monkeypatch):
    """The same training in a Jupyter kernel as JupyterLab runs it (widget bar), in a kernel as
    papermill runs it under ``defectlib run`` (``DEFECTLIB_BATCH=1``, text bar) and in this process
    (a terminal: text bar) ends at the same weights; with ``tqdm.auto``, the batch run ended
    elsewhere than the other two (a shuffled loader without a generator of its own)."""
    pytest.importorskip("ipywidgets")
    pytest.importorskip("nbclient")
    here: dict = {}
    exec(CELL.replace("print(", "result = ("), here)
    terminal = float(here["result"][1])
    lab, batch = _in_kernel(monkeypatch, "0"), _in_kernel(monkeypatch, "1")
    assert (lab[1], batch[1]) == (terminal, terminal), f"JupyterLab {lab}, batch {batch}, terminal {terminal}"
    assert (lab[0], batch[0], here["result"][0]) == ("tqdm.notebook", "tqdm.std", "tqdm.std")
