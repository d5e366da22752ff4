"""Running a run's notebooks: at most ``jobs`` papermill processes at once, a GPU each when there
are GPUs, a progress line every ``heartbeat`` seconds, the combined ``results.json`` rewritten
after every notebook. A fresh run (:mod:`defectlib.course.run`) and a resumed one
(:mod:`defectlib.course.resume`) hand their jobs to :func:`execute_jobs`.

A notebook whose kernel ran no cell (it did not start: most often two kernels launched at once
raced for a port) is relaunched, up to ``KERNEL_START_ATTEMPTS`` launches in all; Ctrl-C or SIGTERM
stops the running notebooks and writes what finished.
"""
from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Callable

from .execute import Job, failure_from_notebook, fmt_time, kill, log_failure, no_cell_ran, papermill_command, progress

KERNEL_START_ATTEMPTS = 3  # launches of a notebook whose kernel never ran a cell


def start(job: Job, env: dict, kernel: str | None, cwd: Path, gpu: str | None) -> None:
    """Launch ``job``'s papermill process (in a session of its own) with its log file (a
    relaunch or a resumed notebook appends to the log, so the earlier attempt stays readable)."""
    job.output_dir.mkdir(parents=True, exist_ok=True)
    job_env = dict(env)
    if gpu is not None:
        job.gpu = job_env["CUDA_VISIBLE_DEVICES"] = gpu
    job.attempts += 1
    job.log_file = open(job.log, "a" if job.attempts > 1 or job.resumed else "w")
    if job.attempts > 1:
        print(f"--- relaunch {job.attempts}: the kernel of the previous launch ran no cell ---",
              file=job.log_file, flush=True)
    elif job.resumed:
        print(f"--- resumed {time.strftime('%Y-%m-%d %H:%M:%S')}: from the checkpoints in "
              f"{job.output_dir / 'checkpoints'} ---", file=job.log_file, flush=True)
    job.proc = subprocess.Popen(papermill_command(job, kernel, cwd), env=job_env,
                                stdout=job.log_file, stderr=subprocess.STDOUT,
                                start_new_session=True)
    job.started, job.status = time.time(), "running"


def finished(job: Job, timeout: float | None) -> bool:
    """Poll ``job``; when it has ended (or overrun ``timeout``), set its status and error.
    A failure before any cell ran (the kernel did not start) leaves the job ``"restart"`` until
    it has had ``KERNEL_START_ATTEMPTS`` launches."""
    elapsed = time.time() - job.started
    rc = job.proc.poll()
    if rc is None and timeout and elapsed > timeout:
        kill(job.proc)
        rc = "timeout"
    if rc is None:
        return False
    job.log_file.close()
    job.elapsed_s = elapsed
    if rc == 0:
        job.status = "ok"
    elif rc != "timeout" and job.attempts < KERNEL_START_ATTEMPTS and no_cell_ran(job.executed):
        job.status = "restart"
    else:
        job.status = "timeout" if rc == "timeout" else "failed"
        job.error = failure_from_notebook(job.executed) or log_failure(
            job.log, f"stopped after {fmt_time(timeout)}" if rc == "timeout" else None)
    return True


def execute_jobs(run_dir: Path, meta: dict, all_jobs: list[Job], *, jobs: int, env: dict, kernel: str | None,
                 cwd: Path, gpus: list[str], timeout: float | None, heartbeat: float,
                 say: Callable[..., None]) -> None:
    """Run every ``"pending"`` job of ``all_jobs`` (the others, already finished, stay in the
    results as they are), ``jobs`` at a time, then write the run's ``results.json`` and ``report.md``."""
    from . import report
    todo = [j for j in all_jobs if j.status == "pending"]
    t0 = time.time()
    pending, running = list(todo), []
    free_gpus = list(gpus) if jobs > 1 else []
    last_beat = time.time()
    tag = {job.stem: f"[{i}/{len(all_jobs)}] {job.stem}" for i, job in enumerate(all_jobs, 1)}
    try:
        while pending or running:
            while pending and len(running) < jobs:
                job = pending.pop(0)
                start(job, env, kernel, cwd, free_gpus.pop(0) if free_gpus else None)
                say(f"{tag[job.stem]}: {'resumed' if job.resumed else 'started'}"
                    + (f" on GPU {job.gpu}" if job.gpu else "")
                    + (f"  (not in --data-root, generated stand-in used: {', '.join(job.standins)})"
                       if job.standins else "")
                    + "".join(f"  (no {name} in --data-root: real {' + '.join(real)} in its place)"
                              for name, real in job.substitutes.items()))
                running.append(job)
            time.sleep(0.2)
            for job in list(running):
                if not finished(job, timeout):
                    continue
                running.remove(job)
                if job.gpu:
                    free_gpus.append(job.gpu)
                if job.status == "restart":
                    say(f"{tag[job.stem]}: the kernel ran no cell (log: {job.log}); relaunching")
                    pending.insert(0, job)
                    continue
                line = f"{tag[job.stem]}: {job.status if job.status == 'ok' else job.status.upper()}"
                line += f" in {fmt_time(job.elapsed_s)}"
                if job.error:
                    where = f"cell {job.error['cell']}: " if job.error.get("cell") else ""
                    line += f"  ({where}{job.error['ename']}: {job.error['evalue'][:200]})"
                say(line)
                report.write_results(run_dir, meta, all_jobs)
            if running and time.time() - last_beat >= heartbeat:
                last_beat = time.time()
                say("  ... " + "; ".join(f"{j.stem} {progress(j)}, "
                                         f"{fmt_time(time.time() - j.started)}" for j in running)
                    + f"  (total {fmt_time(time.time() - t0)})")
    except KeyboardInterrupt:
        for job in running:
            kill(job.proc)
            job.log_file.close()
            job.status, job.elapsed_s = "interrupted", time.time() - job.started
        for job in pending:
            job.status = "interrupted"
        say("interrupted: writing what finished so far")
        report.write_results(run_dir, meta, all_jobs, finished=True)
        report.write_report(run_dir)
        raise
    report.write_results(run_dir, meta, all_jobs, finished=True)
    report_path = report.write_report(run_dir)
    failed = [j.stem for j in all_jobs if j.status != "ok"]
    say(f"done in {fmt_time(time.time() - t0)}: {len(all_jobs) - len(failed)} ok, "
        f"{len(failed)} failed"
        + (f" ({', '.join(failed)})" if failed else ""))
    say(f"executed notebooks: {run_dir}/NN_*.ipynb")
    say(f"results:            {run_dir / 'results.json'}")
    say(f"report:             {report_path}")
