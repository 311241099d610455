"""Train: launch a run (any settings, or a preset in one click), watch it live, stop, resume or delete it.

Training runs in its own process (core.launcher); this page only reads the run store, so a rerun, a
refresh or a second tab never touches a run. The live view is a fragment that refreshes every second.
"""

from __future__ import annotations

import json
import time
from dataclasses import fields
from pathlib import Path

import streamlit as st

from app.components import live_run
from app.components.common import TRAIN_FORM_BASE
from app.components.datasets import data_missing_notice, dataset_picker
from app.components.visitor import current_actor
from core import hosting
from core.models.registry import list_models
from core.store import guest, launcher, runs
from core.store.paths import runs_root
from core.store.slots import MAX_CONCURRENT_ENV, max_concurrent
from core.training.config import OPTIMISER, ConfigError, TrainConfig, field_groups, field_help
from core.training.presets import PRESETS
from core.views.formats import format_duration
from core.views.progress import run_rows

FIELD = "train_f_"  # widget key prefix of every TrainConfig field
OPEN_GROUPS = (OPTIMISER,)
FLOAT_STEPS = {"lr": 1e-4, "weight_decay": 1e-4, "rotate": 1.0}
HELP = field_help()
FIELDS = {f.name: f for f in fields(TrainConfig)}
NEW_RUN, WATCH, ALL_RUNS = VIEWS = ("New run", "Watch", "All runs")
VIEW_KEY = "train_view"


@st.cache_data(show_spinner=False)
def models_by_name() -> dict[str, dict]:
    return {m["name"]: m for m in list_models()}


# ---- the form -------------------------------------------------------------------------------------

def widget_value(name: str, value):
    """A config value as its widget holds it (model_kwargs as JSON text)."""
    return json.dumps(value) if name == "model_kwargs" else value


def fill_form(values: dict) -> None:
    """Put a whole config into the form's widgets (before they are drawn)."""
    for name, value in values.items():
        if name != "dataset":
            st.session_state[FIELD + name] = widget_value(name, value)


def apply_preset() -> None:
    preset = st.session_state.get("train_preset")
    if preset:
        fill_form(PRESETS[preset].config(st.session_state["train_dataset"]).to_dict())


def form_values() -> dict:
    """The settings as the form holds them, ready for TrainConfig.from_dict."""
    values = {name: st.session_state.get(FIELD + name) for name in FIELDS if name != "dataset"}
    return {"dataset": st.session_state.get("train_dataset"), **values}


def build_config() -> tuple[TrainConfig | None, list[str]]:
    """The form's config, or the validation messages."""
    try:
        config = TrainConfig.from_dict(form_values())
    except ConfigError as err:
        return None, err.messages
    problems = launcher.model_kwargs_problems(config)
    return (None, problems) if problems else (config, [])


def field_widget(name: str) -> None:
    f, key, help_text = FIELDS[name], FIELD + name, HELP[name]
    label = name.replace("_", " ").capitalize()
    if "choices" in f.metadata:
        st.selectbox(label, f.metadata["choices"], key=key, help=help_text)
    elif f.type == "bool":
        st.checkbox(label, key=key, help=help_text)
    elif f.type == "int":  # value=None: an empty or non-finite entry reaches TrainConfig as None and is refused
        st.number_input(label, value=None, step=1, key=key, help=help_text)  # (not replaced by a silent 0)
    elif f.type == "float":
        st.number_input(label, value=None, step=FLOAT_STEPS.get(name, 0.05), format="%g", key=key, help=help_text)
    else:
        st.text_input(label, key=key, help=help_text)


def start() -> None:
    """Start button: launch the form's run and watch it (a callback, so it may reset widgets)."""
    st.session_state.pop("train_message", None)
    name = st.session_state.get("train_name") or None
    not_started = f"Not started ({name})" if name else "Not started"
    config, problems = build_config()
    if problems:
        st.session_state["train_message"] = ("error", f"{not_started}: " + "; ".join(problems))
        return
    try:
        path = launcher.start_run(config, name, int(st.session_state.get("train_nproc") or 1), actor=current_actor())
    except (ConfigError, ValueError, FileExistsError, OSError) as err:
        st.session_state["train_message"] = ("error", f"{not_started}: {err}")
        return
    st.session_state["train_watch"] = str(path)
    st.session_state[VIEW_KEY] = WATCH
    st.session_state["train_name"] = ""
    st.session_state["train_message"] = ("success", f"Started {path.name}.")


def hand_to_experiments() -> None:
    """'Use as an experiment's base': the form's config goes to the Experiments page (which checks it again)."""
    config, problems = build_config()
    if config is not None:
        st.session_state[TRAIN_FORM_BASE] = {"config": config.to_dict(), "at": time.time()}


def launch_form() -> None:
    for name, f in FIELDS.items():
        if name != "dataset":
            default = f.default_factory() if callable(f.default_factory) else f.default
            st.session_state.setdefault(FIELD + name, widget_value(name, default))
    dataset = dataset_picker("train_dataset")
    if st.session_state.get("train_form_dataset") != dataset:  # presets are tuned per dataset
        st.session_state["train_form_dataset"] = dataset
        apply_preset()
    data_missing_notice(dataset)
    st.pills("Preset", list(PRESETS), key="train_preset", on_change=apply_preset, width="stretch",
             help="Fill the whole form with a reference architecture's published settings, or ours.")
    if st.session_state.get("train_preset"):
        st.caption(f"Filled from preset **{PRESETS[st.session_state['train_preset']].title}**; edit anything.")
    models = models_by_name()
    model = st.selectbox("Model", list(models), key=FIELD + "model", help=HELP["model"],
                         format_func=lambda m: f"{m} · {models[m]['params']:,} parameters")
    if model in models:
        st.caption(f"{models[model]['description']} ({models[model]['reference']})")
    for title, names in field_groups().items():
        with st.expander(title, expanded=title in OPEN_GROUPS):
            cols = st.columns(2)
            for i, name in enumerate(names):
                with cols[i % 2]:
                    field_widget(name)
    cols = st.columns(2)
    cols[0].text_input("Run name (optional)", key="train_name", placeholder="time-dataset-model",
                       help="letters, digits, '.', '_' and '-'")
    cols[1].number_input("Processes", min_value=1, max_value=launcher.MAX_PROCESSES, value=1, step=1,
                         key="train_nproc", help="training processes: 1 runs `python -m core.train`; more run it "
                         "under torchrun (DistributedDataParallel, each process takes a share of every batch)")
    config, problems = build_config()
    for problem in problems:
        st.error(problem)
    st.button("Start training", type="primary", key="train_start", on_click=start, disabled=bool(problems))
    if st.button("Use as an experiment's base", key="train_to_experiment", disabled=bool(problems),
                 on_click=hand_to_experiments, help="open Experiments with these settings as the base config, "
                 "to vary one setting or several around them with repeats"):
        st.switch_page("app/experiments.py")
    n = max_concurrent()
    st.caption(f"At most {n} run{'s' if n > 1 else ''} train{'' if n > 1 else 's'} at once "
               f"(`{MAX_CONCURRENT_ENV}`); later starts wait in a queue.")


# ---- watching one run ----------------------------------------------------------------------------

def show_run(path: Path) -> None:
    """A run that is not training: status, its numbers and interactive charts, from its files."""
    info, p = live_run.read_progress(path)
    live_run.status_block(info, p)
    cols = st.columns(3)
    cols[0].metric("Best val. accuracy", f"{p.best_val_acc:.2%}" if p.best_val_acc is not None else "–")
    test_acc = p.test_acc if p.test_acc is not None else (info.summary or {}).get("test_acc")
    cols[1].metric("Test accuracy", f"{test_acc:.2%}" if isinstance(test_acc, (int, float)) else "–")
    cols[2].metric("Training time", format_duration(p.elapsed) or "–")
    if p.has_data:
        live_run.step_chart(live_run.step_figure(p), live=False, key=STEP_CHART)
        live_run.epoch_charts(p, live=False, key_prefix=EPOCH_CHARTS)


EPOCHS_DRAWN = "train_epochs_drawn"  # (run path, epochs) the page last drew the epoch charts for
STEP_CHART, EPOCH_CHARTS = "train_chart_steps", "train_chart"


@st.fragment(run_every=1)
def live_progress(path: str) -> None:
    """Status, progress, best accuracy and step-loss chart of a training run, every second; the whole page
    redraws when the run finishes an epoch (for the epoch charts) or ends."""
    info, p = live_run.read_progress(Path(path))
    state = live_run.status_block(info, p)
    if state not in runs.ACTIVE_STATES or st.session_state.get(EPOCHS_DRAWN) != (path, len(p.epochs)):
        st.rerun()
    live_run.progress_details(path, p, state, key=STEP_CHART)


def live_view(path: str) -> None:
    """A training run: its live progress and step chart, and its epoch charts as of the last finished epoch."""
    _, p = live_run.read_progress(Path(path))
    st.session_state[EPOCHS_DRAWN] = (path, len(p.epochs))  # before the fragment compares against it
    live_progress(path)
    if p.epochs:
        live_run.epoch_charts(p, live=True, key_prefix=EPOCH_CHARTS)


def stop(path: str) -> None:
    try:
        launcher.stop_run(Path(path), actor=current_actor())
    except OSError as err:  # e.g. a shipped pretrained run: read-only
        st.session_state["train_run_message"] = f"Cannot stop: {err}"


def resume(path: str) -> None:
    try:
        launcher.resume_run(Path(path), actor=current_actor())
    except (RuntimeError, ValueError, OSError) as err:
        st.session_state["train_run_message"] = f"Cannot resume: {err}"


def delete(path: str) -> None:
    st.session_state.pop("train_confirm_delete", None)
    try:
        launcher.delete_run(Path(path), actor=current_actor())
    except (RuntimeError, runs.RunNameError, OSError) as err:
        st.session_state["train_run_message"] = f"Cannot delete: {err}"
        return
    st.session_state.pop("train_watch", None)


def pruned_text(info: runs.RunInfo) -> str:
    """Why a trial of an experiment ended early, for the Watch view."""
    experiment = (info.config or {}).get("experiment")
    name = experiment.get("name") if isinstance(experiment, dict) else experiment
    epochs = (info.summary or {}).get("epochs")
    after = f" after {epochs} epoch{'s' if epochs != 1 else ''}" if isinstance(epochs, int) else ""
    return (f"Pruned{after}: experiment {name or '(unknown)'}'s pruner stopped this trial because its validation "
            "accuracy was below the median of earlier trials at the same epoch. Its history and weights are "
            "kept (with its test outputs once an epoch had finished), so Evaluate and Compare can use it.")


def action_buttons(info: runs.RunInfo) -> None:
    """Stop, Resume and Delete (with a confirmation) of a run this session may change."""
    cols = st.columns(3)
    active = info.state in runs.ACTIVE_STATES
    cols[0].button("Stop", key="train_stop", on_click=stop, args=(str(info.path),), disabled=not active,
                   help="save and end the run as `stopped` (a queued run leaves the queue)")
    resume_refusal = launcher.can_resume(info)
    cols[1].button("Resume", key="train_resume", on_click=resume, args=(str(info.path),),
                   disabled=resume_refusal is not None,
                   help=f"cannot resume: {resume_refusal}" if resume_refusal else
                   "continue from the last completed epoch to the configured epochs")
    cols[2].button("Delete", key="train_delete", disabled=active,
                   on_click=lambda: st.session_state.update(train_confirm_delete=str(info.path)),
                   help="stop the run first" if active else "delete the run directory and its weights")
    if st.session_state.get("train_confirm_delete") == str(info.path):
        st.warning(f"Delete **{info.name}** with its weights and metrics? This cannot be undone.")
        yes, no = st.columns(2)
        yes.button("Yes, delete", type="primary", key="train_delete_yes", on_click=delete, args=(str(info.path),))
        no.button("Cancel", key="train_delete_no", on_click=lambda: st.session_state.pop("train_confirm_delete"))


def run_actions(info: runs.RunInfo) -> None:
    actor = current_actor()
    not_yours = guest.refusal(actor, info.path) if actor is not None else None
    if not_yours:  # another visitor's run: watch only (the launcher refuses it too, whatever is clicked)
        st.caption(f"You can watch this run but not stop, resume or delete it: {not_yours}.")
    else:
        action_buttons(info)
    message = st.session_state.pop("train_run_message", None)
    if message:
        st.error(message)
    if info.state in ("failed", "diverged"):
        st.error(f"This run {info.state}: {info.status.get('error') or 'no error was recorded'}")
        if info.status.get("hint"):
            st.info(f"What to try: {info.status['hint']}")
        log = launcher.log_tail(info.path)
        if log is not None:
            with st.expander("Training log (last lines)"):
                st.code(log or "(empty)")
    elif info.state == "stopped" and info.status.get("hint"):
        st.info(info.status["hint"])
    elif info.state == "pruned":
        st.info(pruned_text(info))
    for problem in info.problems:
        st.warning(problem)


def watch(user_runs: list[runs.RunInfo]) -> None:
    if not user_runs:
        st.info("No runs yet: fill in the form under **New run** and press **Start training**.")
        return
    by_path = {str(r.path): r for r in user_runs}
    if st.session_state.get("train_watch") not in by_path:
        st.session_state["train_watch"] = next(iter(by_path))
    chosen = st.selectbox("Run", list(by_path), key="train_watch",
                          format_func=lambda p: by_path[p].name)
    info = by_path[chosen]
    config = info.config or {}
    st.caption(f"{info.dataset} · {info.model} · {config.get('epochs')} epochs · batch {config.get('batch_size')} · "
               f"{config.get('optimizer')} lr {config.get('lr')} · {config.get('schedule')}")
    run_actions(info)
    if info.state in runs.ACTIVE_STATES:
        live_view(chosen)
    else:
        show_run(info.path)


# ---- the run list ---------------------------------------------------------------------------------

def snapshot(user_runs: list[runs.RunInfo]) -> tuple:
    return tuple((r.name, r.state) for r in user_runs)


@st.fragment(run_every=2)
def watch_store() -> None:
    """Draws nothing: redraws the page when a run appears, disappears or changes state (from any tab or shell)."""
    if snapshot(runs.list_runs(include_pretrained=False)) != st.session_state.get("train_snapshot"):
        st.rerun()


def run_list(user_runs: list[runs.RunInfo]) -> None:
    """Every user run, newest first."""
    if not user_runs:
        st.caption("Runs you start appear here, newest first. Pretrained models are on the Home page.")
        return
    st.dataframe(run_rows(user_runs), hide_index=True, key="train_run_table", column_config={
        "best val acc": st.column_config.NumberColumn(format="percent"),
        "test acc": st.column_config.NumberColumn(format="percent"),
    })


st.html(live_run.NO_MOTION_CSS)  # a progress bar that jumps costs the browser one paint; one that glides, dozens
st.title("Train")
st.caption("Pick a dataset, a model and its settings (or a preset), start, and watch it learn. Each run trains "
           "in its own process: reloading or closing this page never interrupts it.")
if hosting.is_limited(current_actor()):
    st.info(hosting.budget_text(current_actor(), runs_root()))
all_user_runs = runs.list_runs(include_pretrained=False)
st.session_state["train_snapshot"] = snapshot(all_user_runs)
st.session_state.setdefault(VIEW_KEY, WATCH if all_user_runs else NEW_RUN)  # returning users see their latest run
kind, text = st.session_state.get("train_message", (None, None))
if kind:
    getattr(st, kind)(text)
# Lazy tabs: only the open tab is drawn, so while a run is watched the browser redraws a page without the form
# and the run table (together about a third of the browser's work per live update, measured by hand).
new_tab, watch_tab, list_tab = st.tabs(VIEWS, key=VIEW_KEY, on_change="rerun")
if new_tab.open:
    with new_tab:
        launch_form()
if watch_tab.open:
    with watch_tab:
        watch(all_user_runs)
if list_tab.open:
    with list_tab:
        run_list(all_user_runs)
watch_store()
