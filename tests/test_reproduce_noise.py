"""The reproducibility check on another machine: it does not cry wolf when a run is a fresh draw of
the reference's distribution, it fails a shifted model, and it says which CPU made each number.

``defectlib.course.reproduce`` gives each metric a 95 % prediction interval for one new seed given the
reference's seeds, fails a run with more metrics outside than a binomial count explains, or with one
metric beyond the Bonferroni-level interval. The simulations below draw runs the way a rerun on
another CPU kind (or with a new seed) behaves: each metric a new draw of its own distribution.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from defectlib.course import report, reproduce
from defectlib import runtime
from defectlib.record import Recorder

REPO_RESULTS = Path(__file__).resolve().parents[1] / "results"
NB = "03_ocinet_nrsd"


def _reference(values: dict, nb: str = NB) -> reproduce.Results:
    """A reference holding ``{(name, dataset): {seed: value}}`` for one notebook."""
    ref = reproduce.Results("ref", "committed")
    for (name, dataset), by_seed in values.items():
        ref.values[(nb, name, dataset)] = dict(by_seed)
        ref.units[(nb, name, dataset)] = "%"
    ref.seeds[nb] = sorted({s for v in values.values() for s in v})
    ref.ran[nb] = set(ref.seeds[nb])
    return ref


def _run(values: dict, seed: int, nb: str = NB) -> reproduce.Results:
    run = reproduce.Results("run", "run")
    for (name, dataset), value in values.items():
        run.values[(nb, name, dataset)] = {seed: value}
        run.units[(nb, name, dataset)] = "%"
    run.seeds[nb], run.ran[nb] = [seed], {seed}
    return run


def _failed(run, ref) -> bool:
    return reproduce.failed(reproduce.compare(run, ref)[1])


def test_false_alarm_rate_is_at_most_5_percent_for_fresh_draws():
    """36 metrics (as many as notebook 03 checks), 3 reference seeds and one new seed, all drawn
    from the same normal distributions: the check may fail at most 5 % of the time. The band the
    check used before (each metric inside [min - sd, max + sd] of the seeds) fails most such runs."""
    rng = np.random.default_rng(0)
    m, trials = 36, 1000
    mu, sigma = rng.uniform(5, 90, m), rng.uniform(0.2, 3.0, m)
    keys = [(f"metric{j}", "NEU-Seg (real)") for j in range(m)]
    fails = old_band_fails = 0
    for _ in range(trials):
        seeds = rng.normal(mu, sigma, (3, m))
        new = rng.normal(mu, sigma)
        ref = _reference({k: {s: float(seeds[s, j]) for s in range(3)} for j, k in enumerate(keys)})
        fails += _failed(_run({k: float(new[j]) for j, k in enumerate(keys)}, seed=7), ref)
        sd = seeds.std(0, ddof=1)
        old_band_fails += bool(np.any((new < seeds.min(0) - sd) | (new > seeds.max(0) + sd)))
    assert fails / trials <= 0.05, fails
    assert old_band_fails / trials > 0.5, old_band_fails  # why the band had to change


def test_a_shifted_model_fails():
    rng = np.random.default_rng(1)
    m, trials = 36, 300
    mu, sigma = rng.uniform(5, 90, m), rng.uniform(0.2, 3.0, m)
    keys = [(f"metric{j}", "NEU-Seg (real)") for j in range(m)]
    fails = 0
    for _ in range(trials):
        seeds = rng.normal(mu, sigma, (3, m))
        ref = _reference({k: {s: float(seeds[s, j]) for s in range(3)} for j, k in enumerate(keys)})
        shifted = rng.normal(mu - 6 * sigma, sigma)  # every metric 6 sd worse
        fails += _failed(_run({k: float(shifted[j]) for j, k in enumerate(keys)}, seed=7), ref)
    assert fails / trials >= 0.95, fails
    # one metric alone, far beyond its Bonferroni-level interval, fails the run too
    seeds = rng.normal(mu, sigma, (3, m))
    ref = _reference({k: {s: float(seeds[s, j]) for s in range(3)} for j, k in enumerate(keys)})
    one = {k: float(seeds[:, j].mean()) for j, k in enumerate(keys)}
    assert not _failed(_run(one, seed=7), ref)
    one[keys[0]] -= 200 * float(seeds[:, 0].std(ddof=1))
    rows, counts = reproduce.compare(_run(one, seed=7), ref)
    assert counts["far outside"] == 1 and counts["outside"] == 0 and reproduce.failed(counts)


def _committed_draws(rng, shift_sd: float = 0.0):
    """The committed results/ as the reference, and a seed-0 rerun of every notebook drawn from
    the committed seeds' distribution (normal, their mean and sd), shifted by ``shift_sd`` sd."""
    ref = reproduce.load(REPO_RESULTS)
    run = reproduce.Results("draw", "run")
    for key, by_seed in ref.values.items():
        if 0 not in by_seed:
            continue
        spread = ref.spread(key)
        value = by_seed[0]
        if spread and spread["sd"] > 0 and not reproduce.machine_dependent(key[1], ref.units[key]):
            value = float(rng.normal(spread["mean"] + shift_sd * spread["sd"], spread["sd"]))
        run.values[key] = {0: value}
        run.units[key] = ref.units[key]
    for nb in ref.seeds:
        run.seeds[nb], run.ran[nb] = [0], {0}
    return run, ref


def test_reruns_drawn_from_the_committed_seeds_pass_and_a_shift_fails():
    rng = np.random.default_rng(2)
    run, ref = _committed_draws(rng)
    rows, counts = reproduce.compare(run, ref)
    assert counts["within"] + counts["outside"] > 50  # most committed metrics have a seed spread
    passed = sum(not _failed(*_committed_draws(rng)) for _ in range(200))
    assert passed / 200 >= 0.95, passed
    shifted = sum(_failed(*_committed_draws(rng, shift_sd=-8.0)) for _ in range(50))
    assert shifted / 50 >= 0.95, shifted


# --- which CPU made a number ----------------------------------------------------------------------
@pytest.mark.parametrize("vendor, flags, kind", [
    ("GenuineIntel", "fpu avx2 avx512f avx512_bf16 amx_tile amx_bf16", "Intel AMX"),
    ("AuthenticAMD", "fpu avx2 avx512f avx512_bf16", "AMD AVX-512 BF16"),
    ("GenuineIntel", "fpu avx2 avx512f", "Intel AVX-512"),
    ("AuthenticAMD", "fpu sse4_2 avx2", "AMD AVX2"),
])
def test_cpu_kind_names_vendor_and_widest_numeric_instruction_set(vendor, flags, kind):
    assert runtime.cpu_kind(vendor, flags.split()) == kind


def test_machine_reads_cpuinfo(tmp_path, monkeypatch):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) "
                    "Platinum 8481C\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_tile amx_bf16\n\n"
                    "processor\t: 1\nvendor_id\t: ignored\n")
    for name in runtime.KERNEL_ENV:  # the suite may itself run with narrowed kernels
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    m = runtime.machine(str(info))
    assert m["cpu"] == "Intel(R) Xeon(R) Platinum 8481C" and m["kind"] == "Intel AMX"
    assert m["flags"] == ["avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"]
    assert m["threads"] == torch.get_num_threads() and m["torch"] == torch.__version__
    assert m["kernel_env"] == {"ONEDNN_MAX_CPU_ISA": "AVX2"}
    line = runtime.machine_line(m)
    assert line.startswith("Intel(R) Xeon(R) Platinum 8481C (Intel AMX: avx2") and "ONEDNN_MAX_CPU_ISA=AVX2" in line
    assert "not recorded" in runtime.machine_line(None)
    assert runtime.machine(str(tmp_path / "missing"))["cpu"]  # no /proc/cpuinfo: still a name


def test_every_results_json_records_its_cpu(tmp_path):
    rec = Recorder(tmp_path, notebook="01_x", profile="smoke")
    data = json.loads(rec.save().read_text())
    assert data["machine"] == runtime.machine()
    assert set(data["machine"]) >= {"cpu", "kind", "flags", "aten_capability", "torch", "threads"}


def _run_dir(tmp_path, name, machine, value=50.0):
    own = {"notebook": NB, "seed": 0, "profile": "cpu", "metrics": [
        {"name": "IoU", "value": value, "dataset": "NEU-Seg", "real": True, "unit": "%"}]}
    if machine is not None:
        own["machine"] = machine
    res = {"run": name, "profile": "cpu", "seed": 0, "summary": "1 of 1 notebooks ok", "failed": [],
           "notebooks": [{"notebook": NB, "source": NB, "seed": 0, "status": "ok", "elapsed_s": 1.0,
                          "executed": f"{NB}.ipynb", "output_dir": NB, "log": "x.log",
                          "error": None, "results": own}]}
    folder = tmp_path / name
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps(res))
    return folder


def test_report_says_when_the_cpu_kinds_differ(tmp_path, capsys):
    amd = dict(runtime.machine(), cpu="AMD EPYC", kind="AMD AVX-512 BF16", threads=2)
    intel = dict(amd, cpu="Intel Xeon", kind="Intel AMX")
    ref = _run_dir(tmp_path, "amd", amd)
    same = _run_dir(tmp_path, "amd2", amd)
    assert report.main([str(same), "--against", str(ref)]) == 0
    out = capsys.readouterr().out
    assert "**another machine**" not in out and "computed on another CPU kind" not in out
    assert "CPU of this run: AMD EPYC (AMD AVX-512 BF16" in out
    other = _run_dir(tmp_path, "intel", intel)
    assert report.main([str(other), "--against", str(ref)]) == 0
    out = capsys.readouterr().out
    assert "**another machine** (CPU kind AMD AVX-512 BF16 -> Intel AMX)" in out
    assert "computed on another CPU kind than the reference: identical numbers are not expected" in out
    text = (other / "report.md").read_text()
    assert "- CPU: Intel Xeon (Intel AMX" in text and "another machine" in text
    threads = _run_dir(tmp_path, "amd4", dict(amd, threads=4))
    report.main([str(threads), "--against", str(ref)])
    assert "threads 2 -> 4" in capsys.readouterr().out
    unknown = _run_dir(tmp_path, "old", None)
    report.main([str(other), "--against", str(unknown)])
    assert "the reference did not record its CPU" in capsys.readouterr().out
