"""A worker: pulls queued trials of one experiment from its Optuna study and trains each as a normal run.

Trials run in this process (torch is imported once). Each is the run `NAME-tNNN` in the run store, its
config.json carrying `"experiment": {"name", "trial"}`. A monitor thread per trial reads the run's epoch
events: it reports validation accuracy to Optuna for the median pruner (and asks the run to stop when the
pruner says so, the run then ending as `pruned`), and passes an experiment stop on to the run.
A worker that dies leaves its trial RUNNING in the study; the next worker to look finds its process gone
(on the same machine) or the trial's heartbeat in the study stale (another machine: the monitor refreshes it),
marks the trial failed (interrupted) and queues the same parameters again.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import optuna
from optuna.trial import TrialState

from core.experiments import store
from core.experiments.spec import ExperimentSpec, _field_kind
from core.store import events, runs
from core.store.slots import max_concurrent
from core.store.spawn import spawn_detached
from core.training.session import run

# The monitor wakes this often: a stop request reaches the run within it (the run itself then stops within its own
# STOP_CHECK_SECONDS), and the pruner hears of an epoch within it; epochs take seconds to minutes, so waking five
# times a second (as before) only took CPU from the training beside it.
MONITOR_SECONDS = 0.25  # how soon a Stop or the pruner reaches a running trial (each look reads only new lines)
HEARTBEAT_SECONDS = 10.0  # a worker refreshes its trial's heartbeat in the study this often
ORPHAN_AFTER_SECONDS = 60.0  # a trial of another machine whose heartbeat is this old lost its worker
WORKER_LOG = "workers.log"


def make_sampler(spec: ExperimentSpec) -> optuna.samplers.BaseSampler:
    """The spec's sampler (grid points are queued as fixed parameters, so any sampler serves them)."""
    if spec.sampler == "tpe":
        return optuna.samplers.TPESampler(n_startup_trials=max(1, min(10, (spec.trials or 2) // 2)))
    return optuna.samplers.RandomSampler()


def make_pruner(spec: ExperimentSpec) -> optuna.pruners.BasePruner:
    """Optuna's median pruner on per-epoch validation accuracy (after two finished trials), or none."""
    if spec.prune:
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    return optuna.pruners.NopPruner()


@dataclass
class OpenStudy:
    """An experiment's spec, its study, and the storage the study was loaded from (kept for the storage's public
    per-trial API: claiming a waiting trial and marking a lost one)."""

    spec: ExperimentSpec
    study: optuna.Study
    storage: optuna.storages.BaseStorage

    @cached_property
    def study_id(self) -> int:
        return self.storage.get_study_id_from_name(self.spec.name)

    def trial_id(self, number: int) -> int:
        return self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)

    def frozen(self, number: int) -> optuna.trial.FrozenTrial:
        """Trial `number` as the storage holds it now."""
        return self.storage.get_trial(self.trial_id(number))


def open_study(name: str) -> OpenStudy:
    spec = store.load_spec(name)
    storage = store.open_storage(spec)
    study = optuna.load_study(study_name=spec.name, storage=storage, sampler=make_sampler(spec),
                              pruner=make_pruner(spec))
    return OpenStudy(spec, study, storage)


def run_name(spec: ExperimentSpec, number: int) -> str:
    return f"{spec.name}-t{number:03d}"


def trial_params(frozen: optuna.trial.FrozenTrial) -> dict:
    """The parameters a trial was queued or sampled with."""
    return {**(frozen.system_attrs.get("fixed_params") or {}), **frozen.params}


# ---- claiming and recovering trials ------------------------------------------------------------
def claim_trial(opened: OpenStudy) -> optuna.Trial | None:
    """Atomically move one waiting trial to RUNNING for this worker; None when none is left.

    The storage's compare-and-set (set_trial_state_values returns False to all but one) means two workers
    never claim the same trial; unlike Study.ask, this never creates a trial beyond those queued."""
    for frozen in opened.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        trial_id = opened.trial_id(frozen.number)
        try:
            if not opened.storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
        trial = optuna.Trial(opened.study, trial_id)
        trial.set_user_attr("worker_host", socket.gethostname())
        trial.set_user_attr("worker_pid", os.getpid())
        return trial
    return None


def _orphaned(frozen: optuna.trial.FrozenTrial, now: float) -> bool:
    """True when a RUNNING trial's worker is gone: its process (on this host), else its heartbeat in the study
    (another machine, whose runs this one may not see) older than ORPHAN_AFTER_SECONDS."""
    host, pid = frozen.user_attrs.get("worker_host"), frozen.user_attrs.get("worker_pid")
    if host == socket.gethostname() and pid:
        return not runs.pid_alive(int(pid))
    started = frozen.datetime_start.timestamp() if frozen.datetime_start else now
    return now - float(frozen.user_attrs.get("heartbeat") or started) > ORPHAN_AFTER_SECONDS


def recover_interrupted(opened: OpenStudy) -> list[int]:
    """Fail (interrupted) every RUNNING trial whose worker is gone and queue its parameters again.

    Returns the numbers of the trials recovered here (another worker may have taken some first)."""
    recovered, now, study = [], time.time(), opened.study
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not _orphaned(frozen, now):
            continue
        try:
            opened.storage.set_trial_user_attr(opened.trial_id(frozen.number), "state", "interrupted")
            study.tell(frozen.number, state=TrialState.FAIL)
        except (ValueError, RuntimeError, optuna.exceptions.UpdateFinishedTrialError):
            continue  # another worker recovered it first
        name = frozen.user_attrs.get("run")
        if name:
            path = runs.run_dir_for(name)
            status = runs.read_json(path / "status.json") or {}
            if status.get("state") in runs.ACTIVE_STATES:
                runs.RunWriter(path).set_status(
                    "failed", error="interrupted: the experiment's worker ended during this trial",
                    hint="The experiment queued this trial again.", interrupted=True)
        study.enqueue_trial(trial_params(frozen), user_attrs={"requeued_from": frozen.number})
        recovered.append(frozen.number)
    return recovered


# ---- one trial ---------------------------------------------------------------------------------
class TrialMonitor(threading.Thread):
    """Watches a running trial: beats its heartbeat in the study, reports epochs to the pruner, stops the run on
    prune or experiment stop."""

    def __init__(self, experiment: str, trial: optuna.Trial, run_dir: Path, prune: bool):
        super().__init__(name=f"trial-monitor-{trial.number}", daemon=True)
        self.experiment, self.trial, self.run_dir, self.prune = experiment, trial, run_dir, prune
        self.pruned = self.stopped_by_experiment = False
        self._done = threading.Event()
        self._reported = 0
        self._beat = 0.0
        self._metrics = events.MetricsTail(run_dir)  # parses only the lines added since the last look

    def run(self) -> None:
        while not self._done.wait(MONITOR_SECONDS):
            if time.time() - self._beat > HEARTBEAT_SECONDS:
                self._beat = time.time()
                self.trial.set_user_attr("heartbeat", self._beat)
            self.check()

    def check(self) -> None:
        if self.pruned or self.stopped_by_experiment:
            return
        if store.stop_requested(self.experiment):
            self.stopped_by_experiment = True
            runs.request_stop(self.run_dir)
            return
        if not self.prune:
            return
        for event in self._metrics.read():
            epoch = event.get("epoch") or 0
            if event["type"] != "epoch" or epoch <= self._reported or event.get("val_acc") is None:
                continue
            self._reported = epoch
            self.trial.report(float(event["val_acc"]), epoch)
            if self.trial.should_prune():
                self.pruned = True
                runs.request_stop(self.run_dir)
                return

    def finish(self) -> None:
        self._done.set()
        self.join(timeout=5)
        runs.clear_stop_request(self.run_dir)  # a request sent as the run ended must not stop a later Resume


def suggest_params(spec: ExperimentSpec, trial: optuna.Trial) -> dict:
    """The trial's parameters: its queued grid point, or values the sampler draws from the space."""
    if spec.sampler == "grid":
        for name, values in spec.varied().items():
            trial.suggest_categorical(name, values)
    else:
        for name, (low, high, log) in spec.space.items():
            if _field_kind(name) == "int":
                trial.suggest_int(name, int(low), int(high), log=log)
            else:
                trial.suggest_float(name, low, high, log=log)
    return dict(trial.params)


def run_trial(spec: ExperimentSpec, study: optuna.Study, trial: optuna.Trial) -> str:
    """Train one claimed trial as a run and tell the study how it ended; returns the run's final state."""
    name = run_name(spec, trial.number)
    trial.set_user_attr("run", name)
    params = suggest_params(spec, trial)
    run_dir = runs.run_dir_for(name)
    try:
        config = spec.trial_config(params)
        runs.RunWriter.create(run_dir, {**config.to_dict(), "experiment": {"name": spec.name, "trial": trial.number}},
                              state="queued")
    except (ValueError, OSError) as err:
        trial.set_user_attr("state", "failed")
        trial.set_user_attr("error", str(err))
        study.tell(trial, state=TrialState.FAIL)
        return "failed"
    monitor = TrialMonitor(spec.name, trial, run_dir, spec.prune)
    monitor.start()
    try:
        state, summary = run(config, run_dir, queue=True)
    except Exception as err:  # run() marked the run failed; the experiment goes on
        monitor.finish()
        trial.set_user_attr("state", "failed")
        trial.set_user_attr("error", f"{type(err).__name__}: {err}")
        study.tell(trial, state=TrialState.FAIL)
        return "failed"
    except BaseException:  # Ctrl-C: the trial is queued again for a later worker
        monitor.finish()
        trial.set_user_attr("state", "interrupted")
        study.tell(trial, state=TrialState.FAIL)
        study.enqueue_trial(params, user_attrs={"requeued_from": trial.number})
        raise
    monitor.finish()
    if summary:
        trial.set_user_attr("test_acc", summary.get("test_acc"))
        trial.set_user_attr("val_acc", summary.get("best_val_acc"))
    if state == "completed" and summary and summary.get("best_val_acc") is not None:
        trial.set_user_attr("state", "complete")
        study.tell(trial, float(summary["best_val_acc"]))
        return state
    if state == "stopped" and monitor.pruned:
        writer = runs.RunWriter(run_dir)
        writer.log({"type": "end", "state": "pruned", "epoch": summary.get("epochs") if summary else None})
        writer.set_status("pruned", hint="The experiment's median pruner stopped this trial: its validation "
                                         "accuracy trailed the median of earlier trials at the same epoch.")
        trial.set_user_attr("state", "pruned")
        study.tell(trial, state=TrialState.PRUNED)
        return "pruned"
    trial.set_user_attr("state", "stopped" if state == "stopped" else "failed")
    study.tell(trial, state=TrialState.FAIL)
    if state == "stopped" and monitor.stopped_by_experiment:  # resuming the experiment runs it again
        study.enqueue_trial(params, user_attrs={"requeued_from": trial.number})
    return state


# ---- the worker --------------------------------------------------------------------------------
def run_worker(name: str, log=None) -> int:
    """Train queued trials of experiment `name` until none is left or a stop is requested; returns how many."""
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    opened = open_study(name)
    done = 0
    while not store.stop_requested(name):
        for number in recover_interrupted(opened):
            log(f"trial {number}: its worker ended mid-trial; marked interrupted and queued again")
        trial = claim_trial(opened)
        if trial is None:
            break
        state = run_trial(opened.spec, opened.study, trial)
        frozen = opened.frozen(trial.number)
        value = f" val_acc {frozen.value:.4f}" if frozen.value is not None else ""
        log(f"trial {trial.number} {trial_params(frozen)}: {state}{value}")
        done += 1
    return done


def start_workers(name: str, n: int = 1) -> list[int]:
    """Start `n` worker processes (`python -m core.sweep --name NAME --join`) in their own sessions; their pids.

    `n` is bounded by the training slots ($MNIST_STUDIO_MAX_CONCURRENT); output goes to the folder's workers.log."""
    limit = max_concurrent()
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= limit:
        raise ValueError(f"workers: a whole number from 1 to {limit} (the training slots), got {n!r}")
    folder = store.experiment_dir(name)
    store.load_spec(name)  # refuse an unknown experiment before starting anything
    pids = []
    for _ in range(n):
        pids.append(spawn_detached([sys.executable, "-m", "core.sweep", "--name", name, "--join"],
                                   folder / WORKER_LOG))
    return pids
