"""``defectlib run --resume RUN``: finish a run that died (a lost GPU node, a killed job, a timeout).

A run folder knows everything it was started with: its ``results.json`` lists every notebook with
its parameters and status from the first moment on. Resuming re-executes, in the same folder, each
notebook that did not end ``ok``, with ``resume=True`` among its papermill parameters: every
trained model then goes on from its ``<run>/<notebook>/checkpoints/<model>/last.pt`` (a model that
had finished is loaded, not trained again; :func:`defectlib.experiments.registry.checkpointing`),
so a paper run killed at hour 5 loses at most the epochs since its last checkpoint. Notebooks
that finished are left as they are. Nothing is overwritten silently: the executed notebook of the
earlier attempt moves to ``<run>/<notebook>/attempt-<k>.ipynb`` and the log grows, and the run's
``results.json`` records when it was resumed (and by which code, when the commit changed).
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from ..record import git_commit
from .execute import Job, child_env, detect_gpus, plan_devices
from .runs import default_notebooks_dir


def load_jobs(run_dir: Path, notebooks_dir: Path | None = None) -> tuple[dict, list[Job]]:
    """The run's metadata and its notebooks as jobs: the ``ok`` ones as they ended, the others
    ``pending`` again with ``resume=True``. A folder that is not a run, or whose notebooks are gone,
    is an error naming it."""
    run_dir = Path(run_dir)
    path = run_dir / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run folder: it has no results.json (defectlib run writes one "
                                "when it starts)")
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"{path} cannot be read ({exc}); it is the run's record, resume needs it") from None
    records = data.get("notebooks") or []
    if not records:
        raise ValueError(f"{path} lists no notebooks: nothing to resume")
    jobs = []
    for rec in records:
        source = Path(rec.get("path") or (notebooks_dir or default_notebooks_dir()) / f"{rec['source']}.ipynb")
        if not source.is_file():
            raise FileNotFoundError(f"{rec['notebook']} of {run_dir.name}: its notebook {source} does not exist")
        job = Job(source, run_dir, dict(rec["parameters"]), stem=rec["notebook"], status=rec["status"],
                  elapsed_s=rec.get("elapsed_s"), error=rec.get("error"), gpu=rec.get("gpu"),
                  standins=list(rec.get("standins") or []))
        if job.status != "ok":
            job.status, job.error, job.elapsed_s, job.gpu, job.resumed = "pending", None, None, None, True
            job.parameters["resume"] = True
        jobs.append(job)
    meta = {k: v for k, v in data.items() if k not in ("notebooks", "failed", "summary", "finished")}
    return meta, jobs


def _keep_attempt(job: Job) -> None:
    """Move the executed notebook of the earlier attempt to ``<output_dir>/attempt-<k>.ipynb``."""
    if not job.executed.is_file():
        return
    job.output_dir.mkdir(parents=True, exist_ok=True)
    k = 1
    while (job.output_dir / f"attempt-{k}.ipynb").exists():
        k += 1
    job.executed.replace(job.output_dir / f"attempt-{k}.ipynb")


def resume(run_dir: Path, *, jobs: int | None = None, kernel: str | None = None, timeout: float | None = None,
           heartbeat: float = 30.0, quiet: bool = False, notebooks_dir: Path | None = None) -> Path:
    """Re-execute the notebooks of ``run_dir`` that did not finish (see the module docstring) with the
    run's own profile, seeds, data, device and kernel; ``jobs``: notebooks at once (default: the
    run's). Returns ``run_dir``; its ``results.json`` and ``report.md`` are rewritten at the end."""
    from .schedule import execute_jobs
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    run_dir = Path(run_dir)
    meta, all_jobs = load_jobs(run_dir, notebooks_dir)
    todo = [j for j in all_jobs if j.status == "pending"]
    if not todo:
        say(f"{run_dir}: every notebook finished; nothing to resume")
        return run_dir
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    commit = git_commit()
    meta["resumed"] = list(meta.get("resumed") or []) + [{"at": now, "git_commit": commit,
                                                          "notebooks": [j.stem for j in todo]}]
    if commit != meta.get("git_commit"):
        say(f"note: the run started at commit {meta.get('git_commit')}, the code is now at {commit}")
    for job in todo:
        _keep_attempt(job)
    gpus = detect_gpus()
    plan = plan_devices(meta.get("device") or "auto", int(jobs or meta.get("jobs") or 1), gpus)
    n = min(plan.jobs, len(todo))
    say(f"defectlib run --resume: {run_dir}: {len(todo)} of {len(all_jobs)} notebook(s) to finish "
        f"({', '.join(j.stem for j in todo)}), profile {meta.get('profile')}, jobs {n}")
    execute_jobs(run_dir, meta, all_jobs, jobs=n, env=child_env(n, deterministic=meta.get("deterministic")),
                 kernel=kernel or meta.get("kernel"), cwd=todo[0].path.parent, gpus=plan.gpus, timeout=timeout,
                 heartbeat=heartbeat, say=say)
    return run_dir
