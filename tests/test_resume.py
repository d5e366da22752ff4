"""Resume, end to end (issue 27): the profiles' checkpoints, the engine's finished-model load, the
kill switch, the commands' ``--resume`` (SIGKILL in the middle of a model's training) and
``defectlib run --resume``. The notebooks killed and resumed one by one: tests/test_notebooks_e2e.py."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from defectlib.course import run as runner
from defectlib.engine import TrainConfig, fit, supervised_loss
from defectlib.engine import loop as loop_mod
from defectlib.engine.checkpoint import KILL_AFTER_CHECKPOINTS, load_checkpoint, rng_state
from defectlib.experiments.registry import CHECKPOINT_SHARE, checkpointing, profile, train_config

REPO = Path(__file__).resolve().parents[1]


# --- the profiles' checkpoints ---------------------------------------------------------------------
def test_paper_and_smoke_profiles_checkpoint_into_the_run_folder_and_cpu_does_not(tmp_path):
    for nb in ("01", "02", "03", "04"):
        paper = profile(nb, "paper", output_dir=tmp_path / nb)
        assert paper.checkpoint_every == 1 and paper.checkpoint_dir == str(tmp_path / nb / "checkpoints")
        assert profile(nb, "smoke", output_dir=tmp_path).checkpoint_every == 1
        assert profile(nb, "cpu", output_dir=tmp_path).checkpoint_every == 0
        assert profile(nb, "paper").checkpoint_dir is None and not profile(nb, "paper").resume
        assert profile(nb, "paper", output_dir=tmp_path, resume=True).resume
    # a folder named in the changes wins over the run's
    assert profile("03", "paper", output_dir=tmp_path, checkpoint_dir="/elsewhere").checkpoint_dir == "/elsewhere"


def test_train_config_gives_each_named_model_its_own_folder(tmp_path):
    cfg = profile("01", "paper", output_dir=tmp_path, resume=True)
    t = train_config(cfg, seed=0, name="phase5")
    assert t.checkpoint_dir == tmp_path / "checkpoints" / "phase5" and t.resume and t.checkpoint_every == 1
    assert t.checkpoint_share == CHECKPOINT_SHARE
    with pytest.raises(ValueError, match="name="):
        train_config(cfg, seed=0)                          # two unnamed models would share a folder
    with pytest.raises(ValueError, match="relative"):
        train_config(cfg, seed=0, name="../phase5")
    # no run folder, or a cpu profile: no checkpoint fields at all (the engine's defaults)
    assert checkpointing(profile("01", "paper"), None) == {}
    assert train_config(profile("01", "cpu", output_dir=tmp_path), seed=0, name="phase5").checkpoint_dir is None


# --- the engine --------------------------------------------------------------------------------------
def _toy(seed=0):
    torch.manual_seed(seed)
    x, y = torch.randn(32, 3), torch.randn(32, 1)
    return torch.nn.Linear(3, 1), DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True)


def test_a_finished_model_is_loaded_not_trained_again(tmp_path):
    """Resuming a model whose last.pt says it finished takes no step: same weights, same history,
    and the random generators as the uninterrupted run left them (what the notebook draws next)."""
    cfg = TrainConfig(epochs=3, lr=0.1, checkpoint_dir=tmp_path, resume=True, progress=False)
    model, loader = _toy()
    first = fit(model, loader, cfg, loss_fn=supervised_loss(torch.nn.MSELoss()))
    after_first = rng_state()["torch"].clone()
    again, loader = _toy(seed=1)                    # other initial weights: they must be replaced
    torch.manual_seed(123)                          # and other generator states: restored
    second = fit(again, loader, cfg, loss_fn=supervised_loss(torch.nn.MSELoss()))
    assert second.epochs == first.epochs and second.steps == first.steps
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    assert torch.equal(rng_state()["torch"], after_first)


def test_checkpoint_share_widens_the_interval_when_a_write_is_slow(tmp_path, monkeypatch):
    writes = []
    real = loop_mod.save_checkpoint

    def slow(path, state):
        if Path(path).name == "last.pt":
            writes.append(state["epoch"])
            time.sleep(0.2)                          # a slow disk: 0.2 s per last.pt
        return real(path, state)
    monkeypatch.setattr(loop_mod, "save_checkpoint", slow)
    model, loader = _toy()
    cfg = TrainConfig(epochs=12, lr=0.1, checkpoint_dir=tmp_path, checkpoint_share=0.5, progress=False)
    fit(model, loader, cfg, loss_fn=supervised_loss(torch.nn.MSELoss()))
    # epochs of milliseconds: after the first write the next is due only at the end
    assert writes[0] == 1 and writes[-1] == 12 and len(writes) <= 3
    writes.clear()
    fit(model, loader, TrainConfig(epochs=4, lr=0.1, checkpoint_dir=tmp_path / "b", progress=False),
        loss_fn=supervised_loss(torch.nn.MSELoss()))
    assert writes == [1, 2, 3, 4]                    # without a share: every checkpoint_every epochs


def test_the_kill_switch_sends_sigkill_after_the_nth_checkpoint(tmp_path):
    code = ("import torch\nfrom torch.utils.data import DataLoader, TensorDataset\n"
            "from defectlib.engine import TrainConfig, fit, supervised_loss\n"
            "d = DataLoader(TensorDataset(torch.randn(8, 3), torch.randn(8, 1)), batch_size=4)\n"
            f"fit(torch.nn.Linear(3, 1), d, TrainConfig(epochs=5, checkpoint_dir={str(tmp_path)!r}, progress=False),"
            " loss_fn=supervised_loss(torch.nn.MSELoss()))\nprint('survived')\n")
    env = {**os.environ, KILL_AFTER_CHECKPOINTS: "2"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL and "survived" not in done.stdout
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 2


# --- the commands: killed in the middle of a model's training, then --resume -------------------------
def _env(**extra) -> dict:
    drop = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "DEFECTLIB_DATA", KILL_AFTER_CHECKPOINTS)
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", MPLBACKEND="Agg", **extra)
    return env


def _metrics(folder: Path) -> dict:
    return {m["name"]: m["value"] for m in json.loads((folder / "results.json").read_text())["metrics"]}


@pytest.mark.slow
def test_a_command_killed_mid_training_resumes_to_the_same_numbers(tmp_path):
    """DANet's command, phases 2 and 5 for 2 epochs of 2 steps each: SIGKILL after phase 2's first epoch (its
    last.pt half way), then ``--resume``: phase 2 continues at epoch 2, phase 5 trains, and every
    metric equals the uninterrupted run's."""
    cmd = [sys.executable, "-m", "defectlib.experiments.danet", "--profile", "smoke", "--quiet",
           "--set", "phases=2,5", "--set", "epochs=2", "--set", "max_steps=none", "--set", "batch_size=8"]
    whole = subprocess.run(cmd + ["--out", str(tmp_path / "whole")], env=_env(), cwd=tmp_path,
                           capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, whole.stdout[-2000:] + whole.stderr[-2000:]
    out = tmp_path / "killed"
    killed = subprocess.run(cmd + ["--out", str(out)], env=_env(**{KILL_AFTER_CHECKPOINTS: "1"}), cwd=tmp_path,
                            capture_output=True, text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL and not (out / "results.json").exists()
    state = load_checkpoint(out / "checkpoints" / "phase2" / "last.pt")
    assert state["epoch"] == 1 and not (out / "checkpoints" / "phase5").exists()   # mid-training
    resumed = subprocess.run(cmd + ["--out", str(out), "--resume"], env=_env(), cwd=tmp_path,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert load_checkpoint(out / "checkpoints" / "phase2" / "last.pt")["epoch"] == 2
    a, b = _metrics(tmp_path / "whole"), _metrics(out)
    assert a and a == b


# --- defectlib run --resume ------------------------------------------------------------------------
FLAKY = [  # fails on its first execution (a marker file says it ran once), then passes
    "import json, os\nfrom pathlib import Path\nfrom defectlib.record import Recorder\n"
    "marker = Path(output_dir) / 'ran-once'\n"
    "if not marker.exists():\n    marker.write_text('x')\n    raise RuntimeError('node lost')\n"
    "rec = Recorder(output_dir, '01_flaky', profile, config={}, seed=seed)\n"
    "rec.metric('m', 1.0, dataset='-', real=False)\nrec.note(f'resume={resume}')\nrec.save()",
]


def test_run_resume_finishes_what_failed_and_keeps_what_finished(tmp_path, make_notebook):
    params = ('profile = "smoke"\ndata_root = None\ndevice = "auto"\nseed = 0\noutput_dir = None\n'
              'resume = False\ndry_run = False')
    make_notebook(tmp_path / "nbs" / "01_flaky.ipynb", FLAKY, parameters=params)
    make_notebook(tmp_path / "nbs" / "02_fine.ipynb", ["x = 1"], parameters=params)
    assert runner.main(["--notebooks", str(tmp_path / "nbs"), "--out", str(tmp_path / "runs"), "--quiet"]) == 1
    (run,) = (tmp_path / "runs").iterdir()
    fine_log = (run / "02_fine" / "papermill.log").read_text()
    assert runner.main(["--resume", str(run), "--quiet"]) == 0
    data = json.loads((run / "results.json").read_text())
    flaky, fine = data["notebooks"]
    assert flaky["status"] == "ok" and flaky["parameters"]["resume"] is True
    assert "resume=True" in flaky["results"]["notes"]
    assert "resume" not in fine["parameters"] and (run / "02_fine" / "papermill.log").read_text() == fine_log
    assert (run / "01_flaky" / "attempt-1.ipynb").is_file() and data["resumed"][0]["notebooks"] == ["01_flaky"]
    assert "node lost" in (run / "01_flaky" / "papermill.log").read_text()          # the log grew
    # nothing left to do: said, and nothing runs
    assert runner.main(["--resume", str(run), "--quiet"]) == 0


def test_run_resume_refuses_settings_and_folders_that_are_not_runs(tmp_path, capsys):
    with pytest.raises(SystemExit):
        runner.main(["--resume", str(tmp_path), "--profile", "cpu"])
    assert "drop --profile" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        runner.main(["--resume", str(tmp_path)])
    assert "no results.json" in capsys.readouterr().err


def test_a_slim_finished_checkpoint_loads_but_refuses_more_epochs(tmp_path):
    model, loader = _toy()
    cfg = TrainConfig(epochs=2, lr=0.1, optimizer="adam", checkpoint_dir=tmp_path, resume=True, slim_last=True,
                      progress=False)
    fit(model, loader, cfg, loss_fn=supervised_loss(torch.nn.MSELoss()))
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["finished"] and "optimizer" not in state and state["epoch"] == 2
    again, loader = _toy(seed=1)
    fit(again, loader, cfg, loss_fn=supervised_loss(torch.nn.MSELoss()))       # loads it: no step
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    with pytest.raises(ValueError, match="finished run .* cannot go on to epoch 3"):
        fit(again, loader, TrainConfig(**{**cfg.to_dict(), "epochs": 3}), loss_fn=supervised_loss(torch.nn.MSELoss()))
