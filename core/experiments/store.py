"""The experiment store: a folder per experiment holding experiment.json, the Optuna study and a stop request.

Layout of checkpoints/experiments/NAME/ ($MNIST_STUDIO_EXPERIMENTS moves the root):
  experiment.json    the ExperimentSpec (base config, grid or search space, sampler, storage URL)
  study.journal      the Optuna study (JournalStorage), unless the spec names a database (--storage URL)
  stop.request       present while a stop has been asked for; workers finish no new trial

Every trial is queued in the study when the experiment is created (grid points, or empty slots a sampler
fills), so workers only ever claim a waiting trial: N trials, each run once, however many workers pull.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import optuna

from core.experiments.spec import ExperimentError, ExperimentSpec
from core.store import atomic, runs
from core.store.paths import REPO_ROOT

EXPERIMENTS_ENV = "MNIST_STUDIO_EXPERIMENTS"
SPEC_FILE = "experiment.json"
JOURNAL_FILE = "study.journal"
STOP_FILE = "stop.request"

optuna.logging.set_verbosity(optuna.logging.WARNING)


def experiments_root() -> Path:
    """Experiments: $MNIST_STUDIO_EXPERIMENTS, else checkpoints/experiments in the repository (git-ignored)."""
    return Path(os.environ.get(EXPERIMENTS_ENV) or REPO_ROOT / "checkpoints" / "experiments").expanduser().resolve()


def experiment_dir(name: str) -> Path:
    """The folder of experiment `name`, validated like a run name to stay inside the root."""
    try:
        return runs.run_dir_for(name, experiments_root())
    except runs.RunNameError as err:
        raise ExperimentError(f"name: {err}".replace("run name", "experiment name")) from None


def open_storage(spec: ExperimentSpec, folder: Path | None = None) -> optuna.storages.BaseStorage:
    """The study's storage: the spec's database URL, else the journal file in the experiment's folder."""
    if spec.storage:
        return optuna.storages.RDBStorage(spec.storage)
    from optuna.storages.journal import JournalFileBackend

    path = Path(folder or experiment_dir(spec.name)) / JOURNAL_FILE
    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def create_experiment(spec: ExperimentSpec) -> Path:
    """Validate `spec`, create its folder and study with every trial queued; returns the folder.

    Built in a hidden folder and renamed into place, so a failure leaves nothing behind."""
    spec.validate()
    folder = experiment_dir(spec.name)
    if folder.exists():
        raise ExperimentError(f"name: experiment {spec.name!r} already exists (use --join to add a worker)")
    if any(runs.runs_root().glob(f"{spec.name}-t[0-9][0-9][0-9]")):
        raise ExperimentError(f"name: runs named {spec.name}-tNNN already exist; choose another name")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.parent / f".{spec.name}.creating-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    study = None
    try:
        storage = open_storage(spec, staging)
        study = optuna.create_study(storage=storage, study_name=spec.name, direction="maximize")
        study.set_user_attr("spec", spec.to_dict())  # so a worker elsewhere can join from the storage alone
        # A grid is queued point by point rather than run by optuna.samplers.GridSampler (with the repeats as one
        # more axis): GridSampler's own documentation (Optuna 5.0) says that "during distributed optimization where
        # trials run concurrently, different workers will occasionally suggest the same parameter configuration.
        # The total number of actual trials may therefore exceed the size of the grid", and this feature promises
        # each point run once however many workers pull. Queued trials are claimed with the storage's
        # compare-and-set (worker.claim_trial), so N points are N trials. It also keeps the grid's order (the
        # last factor alternates first, so its effect shows early) and serves explicit points (confirm_top), which
        # are no cross product.
        points = spec.grid_points() if spec.sampler == "grid" else [{} for _ in range(spec.n_trials())]
        for point in points:
            study.enqueue_trial(point, skip_if_exists=False)
        atomic.write_json(staging / SPEC_FILE, {**spec.to_dict(), "created": time.time()})
        os.rename(staging, folder)
    except optuna.exceptions.DuplicatedStudyError:
        shutil.rmtree(staging, ignore_errors=True)
        raise ExperimentError(f"name: the storage already holds a study named {spec.name!r}") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if study is not None and spec.storage:  # a database keeps the half-made study otherwise
            optuna.delete_study(study_name=spec.name, storage=spec.storage)
        if folder.exists():
            raise ExperimentError(f"name: experiment {spec.name!r} already exists") from None
        raise
    return folder


def adopt_from_storage(name: str, storage: str) -> Path:
    """Make the local folder of experiment `name` whose study lives in database `storage` (a worker on another
    machine joining with --storage URL); an existing folder is kept. Returns the folder."""
    folder = experiment_dir(name)
    if (folder / SPEC_FILE).is_file():
        return folder
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise ExperimentError(f"name: no study named {name!r} in that storage") from None
    data = dict(study.user_attrs.get("spec") or {})
    if not data:
        raise ExperimentError(f"name: the study {name!r} was not made by an experiment")
    spec = ExperimentSpec.from_dict({**data, "storage": storage}).validate()
    folder.mkdir(parents=True, exist_ok=True)
    atomic.write_json(folder / SPEC_FILE, {**spec.to_dict(), "created": time.time()})
    return folder


def list_experiments() -> list[str]:
    """Names of the experiments in the store, sorted."""
    root = experiments_root()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir()
                  if p.is_dir() and runs.NAME_PATTERN.match(p.name) and (p / SPEC_FILE).is_file())


def load_spec(name: str) -> ExperimentSpec:
    """The spec of experiment `name`; FileNotFoundError when there is none."""
    data = runs.read_json(experiment_dir(name) / SPEC_FILE)
    if data is None:
        raise FileNotFoundError(f"no experiment named {name!r} in {experiments_root()}")
    data.pop("created", None)
    return ExperimentSpec.from_dict(data)


def request_stop(name: str) -> None:
    """Ask every worker of `name` to stop: the running trials stop as `stopped`, no queued trial starts."""
    atomic.write_bytes(experiment_dir(name) / STOP_FILE, b"stop\n")


def clear_stop(name: str) -> None:
    (experiment_dir(name) / STOP_FILE).unlink(missing_ok=True)


def stop_requested(name: str) -> bool:
    return (experiment_dir(name) / STOP_FILE).exists()
