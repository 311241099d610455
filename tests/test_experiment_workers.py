"""Experiments with real worker processes: two workers share a study, a killed worker loses nothing, stop and
resume, the median pruner; and the same two-worker test against a real PostgreSQL server."""

import os
import signal
import subprocess
import sys

from core import sweep
from core.experiments import report
from core.experiments import store as experiment_store
from core.experiments import worker as worker_module
from core.experiments.spec import ExperimentSpec
from core.experiments.store import experiments_root
from core.store import launcher, runs
from tests.conftest import REPO, tiny_config, wait_for


def create(name, grid, repeats=1, storage=None, prune=False, **base):
    spec = ExperimentSpec(name=name, dataset="mnist", base=tiny_config(**base).to_dict(), grid=grid,
                          repeats=repeats, storage=storage, prune=prune)
    return experiment_store.create_experiment(spec)


def worker(name):
    return subprocess.Popen([sys.executable, "-m", "core.sweep", "--name", name, "--join"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def run_names(root):
    return sorted(p.name for p in root.iterdir() if not p.name.startswith("."))


def starts(run_dir):
    return sum(e["type"] == "start" for e in runs.read_metrics(run_dir)[0])


def two_workers_finish_together(name, runs_root, storage=None):
    """Start two `--join` workers as the page does (start_workers) and check the six trials ran once each."""
    create(name, {"lr": ["0.003", "0.002", "0.001"]}, repeats=2, storage=storage, epochs=2, limit_batches=4)
    pids = worker_module.start_workers(name, 2)
    wait_for("both workers to finish", lambda: not any(runs.pid_alive(p) for p in pids), timeout=300)
    outputs = (experiments_root() / name / "workers.log").read_text()
    result = report.report(name)
    assert result["counts"]["complete"] == 6 and len(result["trials"]) == 6, outputs  # no trial beyond the six
    assert run_names(runs_root) == [f"{name}-t00{i}" for i in range(6)]
    assert all(starts(runs_root / t["run"]) == 1 for t in result["trials"])  # each trained once
    assert sorted((t["params"]["lr"], t["params"]["seed"]) for t in result["trials"]) == \
        sorted((lr, s) for lr in (0.003, 0.002, 0.001) for s in (0, 1))
    study = report.open_study(name).study
    assert {t.user_attrs["worker_pid"] for t in study.get_trials()} <= set(pids)


def test_two_workers_on_the_journal_file_finish_the_trials_together(experiments, store, monkeypatch):
    monkeypatch.setenv("MNIST_STUDIO_MAX_CONCURRENT", "2")
    two_workers_finish_together("pair", store)
    assert (experiments / "pair" / "study.journal").is_file()


def first_epoch_of(run_dir):
    wait_for(f"the first epoch of {run_dir.name}",
             lambda: any(e["type"] == "epoch" for e in runs.read_metrics(run_dir)[0]))


def test_a_killed_worker_loses_nothing_and_join_finishes_the_study(experiments, store, capsys):
    create("crash", {"epochs": ["15", "1"]}, limit_batches=1)
    proc = worker("crash")
    first_epoch_of(store / "crash-t000")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert report.report("crash")["counts"]["running"] == 1  # the study still thinks it runs
    assert sweep.main(["--name", "crash", "--join"]) == 0
    result = report.report("crash")
    assert {t["number"]: t["state"] for t in result["trials"]} == {0: "failed", 1: "complete", 2: "complete"}
    assert result["trials"][2]["params"] == result["trials"][0]["params"] == {"epochs": 15}  # queued again
    killed = runs.read_run(store / "crash-t000")
    assert killed.state == "failed" and killed.status.get("interrupted")
    assert runs.read_run(store / "crash-t002").summary["epochs"] == 15
    assert "marked interrupted and queued again" in capsys.readouterr().err


def test_stop_ends_the_running_trial_as_stopped_and_join_resumes(experiments, store):
    create("halt", {"epochs": ["40", "1"]}, limit_batches=1)
    proc = worker("halt")
    first_epoch_of(store / "halt-t000")
    experiment_store.request_stop("halt")
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 0, out
    assert run_names(store) == ["halt-t000"]  # nothing queued started
    assert runs.read_run(store / "halt-t000").state == "stopped"
    counts = report.report("halt")["counts"]
    assert (counts["stopped"], counts["queued"], counts["complete"]) == (1, 2, 0)
    assert report.report("halt")["state"] == "stopped"
    assert sweep.main(["--name", "halt", "--join"]) == 0  # resumes: the stop is cleared
    result = report.report("halt")
    assert [t["state"] for t in result["trials"]] == ["stopped", "complete", "complete"]
    assert result["state"] == "finished" and not result["stop_requested"]
    assert result["trials"][2]["params"] == result["trials"][0]["params"]  # the stopped trial, queued again


def test_the_median_pruner_ends_a_weak_trial_as_pruned(experiments, store):
    create("prune", {"lr": ["0.003", "0.002", "0.000001"]}, prune=True, epochs=20, limit_batches=2)
    assert sweep.main(["--name", "prune", "--join"]) == 0
    result = report.report("prune")
    assert [t["state"] for t in result["trials"]] == ["complete", "complete", "pruned"]
    pruned = runs.read_run(store / "prune-t002")
    epochs = [e for e in runs.read_metrics(pruned.path)[0] if e["type"] == "epoch"]
    assert pruned.state == "pruned" and 1 <= len(epochs) < 20 and pruned.has_weights
    assert [e["state"] for e in runs.read_metrics(pruned.path)[0] if e["type"] == "end"][-1] == "pruned"
    assert "pruned" in launcher.can_resume(pruned)
    assert result["counts"]["pruned"] == 1 and result["best"]["number"] in (0, 1)


def test_two_workers_on_a_real_postgresql_server_finish_the_trials_together(experiments, store, monkeypatch,
                                                                             postgres_url):
    monkeypatch.setenv("MNIST_STUDIO_MAX_CONCURRENT", "2")
    two_workers_finish_together("pgpair", store, storage=postgres_url)
    assert not (experiments / "pgpair" / "study.journal").exists()  # the study lives in the database
    import optuna

    assert [s.study_name for s in optuna.get_all_study_summaries(postgres_url)] == ["pgpair"]
    # a worker on another machine joins from the database alone: its own (empty) experiment store
    monkeypatch.setenv("MNIST_STUDIO_EXPERIMENTS", str(experiments.parent / "elsewhere"))
    assert sweep.main(["--name", "pgpair", "--join", "--storage", postgres_url]) == 0
    assert experiment_store.load_spec("pgpair").storage == postgres_url
    assert report.report("pgpair")["counts"]["complete"] == 6
