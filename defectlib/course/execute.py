"""Executing one notebook: a ``papermill`` process of its own, and what to say when it fails.

Each notebook runs in a separate ``python -m papermill`` process started in a new session, so its
kernel inherits an environment of its own (``CUDA_VISIBLE_DEVICES`` for one GPU, thread counts) and
the whole process group can be stopped on a timeout or Ctrl-C. When a notebook fails, the failing
cell is read back from the executed notebook (papermill marks it); when it fails before any cell
runs (kernel missing, timeout), the error comes from the end of its log. Used by
:mod:`defectlib.course.run`.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_PROGRESS = re.compile(r"(\d+)/(\d+) \[")


def detect_gpus(env: dict | None = None) -> list[str]:
    """GPU ids visible to this process: ``CUDA_VISIBLE_DEVICES`` if set, else ``nvidia-smi -L``."""
    env = os.environ if env is None else env
    if "CUDA_VISIBLE_DEVICES" in env:
        ids = [x.strip() for x in env["CUDA_VISIBLE_DEVICES"].split(",")]
        return [x for x in ids if x and x != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        res = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return []
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("GPU ")] if res.returncode == 0 else []
    return [str(i) for i in range(len(lines))]


@dataclass(frozen=True)
class DevicePlan:
    """How the notebooks of a run share the machine: at most ``jobs`` at once, each running notebook
    handed one GPU of ``gpus`` through ``CUDA_VISIBLE_DEVICES`` (empty: no pinning), ``notes`` to
    tell the user."""
    jobs: int
    gpus: list[str]
    notes: list[str]


def plan_devices(device: str, jobs: int, gpus: list[str]) -> DevicePlan:
    """Turn ``--device`` / ``--jobs`` and the visible GPUs into a :class:`DevicePlan`:

    - ``cpu`` (or ``mps``, or no GPU visible): GPUs are left alone and not counted;
    - ``auto`` / ``cuda``: one notebook per GPU at a time, each kernel seeing only its own GPU
      (as ``cuda:0``), so ``jobs`` is capped at the number of GPUs;
    - ``cuda:K``: every notebook on the K-th visible GPU, one at a time: a kernel restricted to one
      GPU could not address ``cuda:K``. A K the machine does not have is a ValueError.
    In every case N notebooks running at once split the CPU threads (:func:`child_env`)."""
    d, jobs, notes = str(device).lower(), max(1, int(jobs)), []
    if d.startswith("cpu") or d == "mps" or not gpus:
        return DevicePlan(jobs, [], notes)
    if d.startswith("cuda:"):
        k = d.split(":", 1)[1]
        if not k.isdigit() or int(k) >= len(gpus):
            raise ValueError(f"--device {device}: this machine shows {len(gpus)} GPU(s), "
                             f"cuda:0 to cuda:{len(gpus) - 1}")
        if jobs > 1:
            notes.append(f"--jobs {jobs} -> 1: --device {device} runs every notebook on that GPU, one at "
                         "a time (--device cuda --jobs N spreads the notebooks over the GPUs)")
        return DevicePlan(1, [], notes)
    if jobs > len(gpus):
        notes.append(f"--jobs {jobs} capped to {len(gpus)}: one notebook per GPU ({','.join(gpus)})")
        jobs = len(gpus)
    return DevicePlan(jobs, list(gpus) if jobs > 1 else [], notes)


def notebook_kernel(path: Path) -> str | None:
    meta = json.loads(Path(path).read_text()).get("metadata", {})
    return meta.get("kernelspec", {}).get("name")


# --- one notebook ---------------------------------------------------------------------------------
@dataclass
class Job:
    """One notebook of a run: its source, parameters, process and outcome. It writes the executed
    notebook to ``<run>/<stem>.ipynb`` and everything else under ``output_dir`` = ``<run>/<stem>/``."""

    path: Path
    run_dir: Path
    parameters: dict
    stem: str = ""
    status: str = "pending"            # pending | running | ok | failed | timeout | interrupted
    elapsed_s: float | None = None
    error: dict | None = None
    gpu: str | None = None
    proc: subprocess.Popen | None = field(default=None, repr=False)
    started: float | None = None
    log_file: object = field(default=None, repr=False)
    attempts: int = 0                  # launches so far (a kernel that never started is relaunched)
    standins: list = field(default_factory=list)  # datasets not under --data-root (stand-ins used)
    substitutes: dict = field(default_factory=dict)  # absent datasets replaced by other real data
    resumed: bool = False              # launched again by `defectlib run --resume` (continues its checkpoints)

    def __post_init__(self):
        self.stem = self.stem or self.path.stem

    @property
    def output_dir(self) -> Path:
        return self.run_dir / self.stem

    @property
    def executed(self) -> Path:
        return self.run_dir / f"{self.stem}.ipynb"

    @property
    def log(self) -> Path:
        return self.output_dir / "papermill.log"


def papermill_command(job: Job, kernel: str | None, cwd: Path, start_timeout: int = 120) -> list[str]:
    cmd = [sys.executable, "-m", "papermill", str(job.path), str(job.executed),
           "-y", json.dumps(job.parameters), "--cwd", str(cwd), "--progress-bar",
           "--start-timeout", str(start_timeout)]
    kernel = kernel or notebook_kernel(job.path) or "python3"
    return cmd + ["-k", kernel]


def no_cell_ran(executed: Path) -> bool:
    """True when papermill ended before its kernel executed any cell: the executed notebook is
    missing or has no ``execution_count``. That is a kernel that failed to start, most often the
    port race of two kernels launched at once (jupyter_client picks free ports, releases them, the
    kernel binds them later: nteract/papermill#511), which a relaunch fixes; nothing ran, so
    relaunching repeats no work."""
    try:
        nb = json.loads(Path(executed).read_text())
    except (OSError, ValueError):
        return True
    return not any(cell.get("execution_count") for cell in nb.get("cells", []))


def failure_from_notebook(executed: Path) -> dict | None:
    """The failing cell of a papermill-executed notebook: its index in the source notebook,
    ``In [n]``, first source lines, the exception and the last traceback lines (ANSI stripped)."""
    try:
        nb = json.loads(Path(executed).read_text())
    except (OSError, ValueError):
        return None
    index = 0
    for cell in nb.get("cells", []):
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags or "papermill-error-cell-tag" in tags:
            continue
        index += 1
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        failed = cell.get("metadata", {}).get("papermill", {}).get("exception")
        if not errors and not failed:
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        err = errors[0] if errors else {}
        tb = [_ANSI.sub("", line) for line in err.get("traceback", [])]
        return {"cell": index, "execution_count": cell.get("execution_count"),
                "source": "\n".join(source.splitlines()[:12]),
                "ename": err.get("ename", "Error"), "evalue": err.get("evalue", ""),
                "traceback": "\n".join("\n".join(tb).splitlines()[-25:])}
    return None


def log_failure(log: Path, timeout_msg: str | None = None) -> dict:
    """A failure outside any cell (kernel did not start, timeout...): the error from the log."""
    tail = _tail(log, 25)
    if timeout_msg:
        return {"cell": None, "ename": "Timeout", "evalue": timeout_msg, "traceback": tail}
    for line in reversed(tail.splitlines()):
        m = re.match(r"^([A-Za-z_][\w.]*(?:Error|Exception|Kernel|Exit)\w*): (.+)$", line.strip())
        if m:
            return {"cell": None, "ename": m.group(1).rsplit(".", 1)[-1], "evalue": m.group(2),
                    "traceback": tail}
    return {"cell": None, "ename": "papermill", "evalue": "failed before running a cell",
            "traceback": tail}


def check_kernel(name: str) -> None:
    """Raise ValueError naming the installed kernels if ``name`` is not one of them."""
    from jupyter_client.kernelspec import KernelSpecManager
    names = sorted(KernelSpecManager().find_kernel_specs())
    if name not in names:
        raise ValueError(f"no Jupyter kernel named {name!r}; installed: {', '.join(names)} "
                         "(see `jupyter kernelspec list`)")


def _tail(path: Path, n: int = 20) -> str:
    try:
        text = _ANSI.sub("", Path(path).read_text(errors="replace")).replace("\r", "\n")
    except OSError:
        return ""
    lines = [ln for ln in text.splitlines() if ln.strip() and not _PROGRESS.search(ln)]
    return "\n".join(lines[-n:])


def running_cell(executed: Path) -> str | None:
    """Where a papermill run is, from the output notebook papermill saves as it goes: ``"cell 14/29
    (4. Training the U-Net: BCE + Dice)"``, the running cell's position among all cells and the
    last Markdown heading above it; None while the notebook is not readable yet."""
    try:
        cells = json.loads(Path(executed).read_text()).get("cells", [])
    except (OSError, ValueError):
        return None
    heading = ""
    for i, cell in enumerate(cells):
        src = "".join(cell.get("source", []))
        if cell.get("cell_type") == "markdown":
            titles = [ln.lstrip("#").strip() for ln in src.splitlines() if ln.startswith("#")]
            heading = titles[-1] if titles else heading
        elif cell.get("metadata", {}).get("papermill", {}).get("status") == "running":
            where = f" ({heading[:48]})" if heading else ""
            return f"cell {i + 1}/{len(cells)}{where}"
    return None


def progress(job: "Job") -> str:
    """The runner's heartbeat for ``job``: the running cell and its section (:func:`running_cell`),
    else papermill's own progress bar in the job's log."""
    at = running_cell(job.executed)
    if at:
        return at
    try:
        with open(job.log, "rb") as fh:
            fh.seek(max(0, os.path.getsize(job.log) - 4000))
            text = fh.read().decode(errors="replace")
    except OSError:
        return ""
    hits = _PROGRESS.findall(text)
    return f"cell {hits[-1][0]}/{hits[-1][1]}" if hits else "starting kernel"


def fmt_time(seconds: float | None) -> str:
    """``75.2`` -> ``"1:15"``; under ten seconds keeps a decimal (``"3.4 s"``), under one second
    is in milliseconds (``"22 ms"``: a per-image time must not read ``"0.0 s"``)."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.3g} ms"
    if seconds < 10:
        return f"{seconds:.1f} s"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def kill(proc: subprocess.Popen) -> None:
    """Stop a papermill process we started, and its kernel (same process group)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired, PermissionError):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def child_env(jobs: int, cpu_parallel: bool = True, deterministic: bool | None = None) -> dict:
    """Environment for each papermill process (its kernel inherits it). With ``jobs > 1`` notebooks
    at once, each gets its share of the CPU threads (also on GPU nodes: data loading, metrics and
    the threshold searches run on the CPU). ``deterministic`` True / False: every notebook's
    kernels deterministic / fast (:func:`defectlib.runtime.deterministic_default`); None: the default."""
    env = dict(os.environ)
    if deterministic is not None:
        env["DEFECTLIB_DETERMINISTIC"] = "1" if deterministic else "0"   # runtime.DETERMINISTIC_ENV
    # Figures render inline in executed notebooks only if no other backend is forced.
    if not env.get("MPLBACKEND", "").startswith("module://matplotlib_inline"):
        env.pop("MPLBACKEND", None)
    # The notebook sees exactly the data_root the runner injects: make run = embedded default.
    env.pop("DEFECTLIB_DATA", None)
    if cpu_parallel and jobs > 1:  # N notebooks share the cores instead of each taking all
        threads = str(max(1, (os.cpu_count() or 1) // jobs))
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(var, threads)
    env.setdefault("PYTHONUNBUFFERED", "1")
    # A text progress bar in an executed notebook keeps every redraw as output: redraw rarely.
    env.setdefault("TQDM_MININTERVAL", "15")
    # text bars, not widgets, in batch runs (defectlib.progress)
    env.setdefault("DEFECTLIB_BATCH", "1")
    return env
