"""Experiments: vary one thing (or several), run every configuration with repeats, and read each effect
with its error bar. Ready-made experiments reproduce the reference projects in one click.

The page is a view: specs are built and checked by core.views.experiments, experiments are created and
run by core.experiments (workers are processes of `python -m core.sweep`), and everything shown comes from
the experiment's report, so a rerun, a refresh or a second tab never touches a running experiment.
"""

from __future__ import annotations

import json
import time

import plotly.graph_objects as go
import streamlit as st

from app.components import live_run
from app.components.common import TRAIN_FORM_BASE
from app.components.datasets import data_missing_notice, dataset_picker
from app.components.visitor import current_actor
from core.experiments import report as reports
from core.experiments import store, worker
from core.experiments.ready import READY
from core.experiments.spec import SAMPLERS, ExperimentError, ExperimentSpec
from core.store import runs
from core.store.slots import MAX_CONCURRENT_ENV, max_concurrent
from core.training.presets import PRESETS
from core.views import experiments as xv
from core.views.formats import format_duration

NEW, WATCH = VIEWS = ("New experiment", "Watch and results")
VIEW_KEY = "exp_view"
SHOWN = "exp_name"  # the experiment the Watch tab shows
GUEST_NOTE = "on this shared server only its owner starts, stops or resumes experiments (sign in from the sidebar)"
LEADERBOARD_ROWS = 10
GRID_HELP = ("One field per line, FIELD=V1,V2,...: any Train setting (lr=0.001,0.01) or a model argument "
             "(model.dropout=0,0.25). Every combination is one run.")
SPACE_HELP = "One field per line, FIELD=LOW:HIGH, or FIELD=LOW:HIGH:log for rates (lr=0.0001:0.1:log)."
PRESET, TRAIN_FORM = BASE_SOURCES = ("a preset", "the Train form")
SETTINGS_HELP = "Changes to the base, one per line: FIELD=VALUE (epochs=3, subset=5000, model.dropout=0.1)."


@st.cache_data(ttl=60, max_entries=64, show_spinner=False)
def cached_estimate(spec_without_name: str) -> tuple[dict, list[str]]:
    """The estimate of a spec, and the models it had no measured speed for (it reads every finished run's
    speed, so the ready-mades share it for a minute)."""
    spec = ExperimentSpec.from_dict({**json.loads(spec_without_name), "name": "estimate"})
    guess = reports.estimate(spec)
    return guess, guess["unmeasured"]


def estimate_text(spec: ExperimentSpec) -> str:
    """'16 runs · about 5m 20s' (from measured images per second)."""
    data = spec.to_dict()
    data.pop("name")
    guess, unmeasured = cached_estimate(json.dumps(data, sort_keys=True))
    runs_count = int(guess["runs"])
    text = f"**{runs_count} run{'s' if runs_count != 1 else ''}** · about " \
           f"**{format_duration(guess['seconds']) or '0s'}** with one worker"
    if unmeasured:
        text += (f" (a first guess: no run of {', '.join(unmeasured)} has been timed yet, so its speed is scaled "
                 "from a shipped model's by multiply-adds)")
    return text


def may_run_experiments() -> bool:
    """Experiments start many runs at once: in guest mode only the signed-in owner starts, stops or resumes them."""
    actor = current_actor()
    return actor is None or actor.is_owner


def refused(action: str) -> bool:
    """Refuse a forced callback of a visitor who may not run experiments (the buttons are disabled too)."""
    if may_run_experiments():
        return False
    st.session_state["exp_message"] = ("error", f"Not {action}: {GUEST_NOTE}")
    return True


def launch(spec: ExperimentSpec, workers: int) -> None:
    """Create the experiment, start its workers and show it (a button callback)."""
    if refused("started"):
        return
    try:
        store.create_experiment(spec)
        worker.start_workers(spec.name, workers)
    except (ExperimentError, ValueError, OSError) as err:
        st.session_state["exp_message"] = ("error", f"Not started: {err}")
        return
    st.session_state[SHOWN] = spec.name
    st.session_state[VIEW_KEY] = WATCH
    st.session_state["exp_message"] = ("success", f"Started experiment {spec.name}.")


def workers_field(key: str) -> int:
    slots = max_concurrent()
    return int(st.number_input("Workers", min_value=1, max_value=slots, value=1, step=1, key=key,
                               help=f"processes that train trials side by side; at most the training slots "
                               f"({slots}, set by `{MAX_CONCURRENT_ENV}`)"))


# ---- starting ----------------------------------------------------------------------------------------

def ready_made() -> None:
    st.subheader("Ready-made experiments")
    st.caption("Each reproduces a reference project. **Quick** trains on a subset for two epochs (minutes); "
               "**full** uses all the data and the published epochs. Every configuration is repeated with "
               "other seeds, so every effect gets an error bar.")
    if not may_run_experiments():
        st.info(f"You can watch every experiment here, but {GUEST_NOTE}.")
    st.session_state.setdefault("exp_ready_dataset", "fashion-mnist")  # where the reference projects' gaps lie
    dataset = dataset_picker("exp_ready_dataset")
    data_missing_notice(dataset)
    for key, ready in READY.items():
        with st.container(border=True):
            st.markdown(f"**{ready.title}**")
            st.caption(ready.question)
            cols = st.columns(2)
            for col, quick in zip(cols, (True, False), strict=True):
                variant = "quick" if quick else "full"
                spec = ready.spec(dataset, quick=quick)
                col.markdown(estimate_text(spec))
                col.button(f"Start {ready.title} ({variant})", key=f"exp_ready_{key}_{variant}",
                           disabled=not may_run_experiments(),
                           type="primary" if quick else "secondary", on_click=launch,
                           args=(spec, int(st.session_state.get("exp_ready_workers") or 1)))
    workers_field("exp_ready_workers")


def train_form_base() -> dict | None:
    """The config the Train page handed over with 'Use as an experiment's base', or None."""
    handed = st.session_state.get(TRAIN_FORM_BASE)
    return handed["config"] if isinstance(handed, dict) and isinstance(handed.get("config"), dict) else None


def open_a_new_train_form_base() -> None:
    """The first time this page sees a config handed over by the Train page, it opens the New tab with it as the
    starting point (before the tabs are drawn)."""
    handed = st.session_state.get(TRAIN_FORM_BASE)
    if train_form_base() is not None and st.session_state.get("exp_train_base_seen") != handed.get("at"):
        st.session_state["exp_train_base_seen"] = handed.get("at")
        st.session_state[VIEW_KEY] = NEW
        st.session_state["exp_base_source"] = TRAIN_FORM


def base_choice() -> tuple[str, str | None, dict | None]:
    """Where the base config comes from: (dataset, preset, None) or (dataset, None, the Train form's config)."""
    start = train_form_base()
    source = st.radio("Start from", BASE_SOURCES, key="exp_base_source", horizontal=True,
                      disabled=start is None, help="a preset for a dataset, or the settings of the Train page's "
                      "New-run form (its button *Use as an experiment's base* brings them here)")
    if source == TRAIN_FORM and start is not None:
        dataset = str(start.get("dataset"))
        st.caption(f"The Train form's settings on **{dataset}** (change them there and press *Use as an "
                   "experiment's base* again, or change them below):")
        st.code("\n".join(xv.config_lines(start)), language=None)
        return dataset, None, start
    if start is None:
        st.caption("To start from your own settings, fill the Train page's New-run form and press *Use as an "
                   "experiment's base*.")
    dataset = dataset_picker("exp_dataset")
    preset = st.selectbox("Preset", list(PRESETS), key="exp_preset", format_func=lambda p: PRESETS[p].title)
    return dataset, preset, None


def custom_form() -> None:
    st.subheader("Your own experiment")
    dataset, preset, start = base_choice()
    name = st.text_input("Experiment name", key="exp_custom_name", value=f"exp-{time.strftime('%Y%m%d-%H%M')}",
                         help="letters, digits, '.', '_' and '-'; trials are the runs NAME-t000, NAME-t001, ...")
    settings = st.text_area("Base settings (optional)", key="exp_settings", help=SETTINGS_HELP, height=80,
                            placeholder="epochs=3\nsubset=5000")
    sampler = st.radio("Vary", SAMPLERS, key="exp_sampler", horizontal=True,
                       format_func={"grid": "a list of values (grid)", "random": "a range (random search)",
                                    "tpe": "a range (TPE search)"}.get)
    if sampler == "grid":
        grid = st.text_area("Values to try", key="exp_grid", help=GRID_HELP, placeholder="lr=0.001,0.003,0.01")
        repeats = int(st.number_input("Repeats (seeds)", min_value=1, max_value=20, value=2, key="exp_repeats",
                                      help="every configuration trained with seeds 0..K-1 (folds when the base "
                                      "cross-validates), so each effect has an error bar"))
        space, trials = "", None
    else:
        space = st.text_area("Ranges to search", key="exp_space", help=SPACE_HELP, placeholder="lr=0.0001:0.1:log")
        trials = int(st.number_input("Trials", min_value=1, max_value=200, value=10, key="exp_trials"))
        grid, repeats = "", 1
    prune = st.checkbox("Prune weak trials", key="exp_prune",
                        help="Optuna's median pruner: a trial whose validation accuracy after an epoch is below "
                        "the median of earlier trials at that epoch stops early, as `pruned`")
    workers = workers_field("exp_workers")
    try:
        spec = xv.build_spec(name, dataset, preset, settings, grid, space, sampler, trials, repeats, prune,
                             start=start)
    except ExperimentError as err:
        st.error(str(err))
        spec = None
    if spec is not None:
        st.markdown(estimate_text(spec))
    st.button("Start experiment", type="primary", key="exp_start", on_click=launch,
              disabled=spec is None or not may_run_experiments(),
              args=(spec, workers))


# ---- watching --------------------------------------------------------------------------------------

def safe_report(name: str) -> dict | None:
    try:
        return reports.report(name)
    except (FileNotFoundError, ExperimentError, ValueError, KeyError, OSError) as err:
        st.error(f"Experiment {name} cannot be read: {err}")
        return None


def live_trials(report: dict) -> int:
    """How many trials the study calls running have a live training process (a killed worker's trial has none
    until a worker recovers it)."""
    alive = 0
    for trial in report["trials"]:
        if trial["state"] == "running" and trial.get("run"):
            try:
                alive += runs.read_run(runs.run_dir_for(trial["run"])).state in runs.ACTIVE_STATES
            except runs.RunNameError:
                continue
    return alive


def current_runs(report: dict) -> None:
    """Each running trial's progress, drawn by the Train page's live view (app/components/live_run.py)."""
    for trial in report["trials"]:
        if trial["state"] != "running" or not trial.get("run"):
            continue
        try:
            path = runs.run_dir_for(trial["run"])
        except runs.RunNameError:
            continue
        params = ", ".join(f"{xv.field_label(k)} = {xv.format_value(v)}" for k, v in trial["params"].items())
        with st.container(border=True):
            info, p = live_run.read_progress(path)
            state = live_run.status_block(info, p, text=f"trial {trial['number']} ({params})")
            live_run.progress_details(str(path), p, state, key=f"exp_trial_steps_{trial['number']}")


def leaderboard_table(report: dict, key: str, limit: int | None = LEADERBOARD_ROWS) -> None:
    rows = xv.leaderboard(report, limit)
    if not rows:
        return
    st.dataframe(rows, hide_index=True, key=key, column_config={
        "val acc": st.column_config.NumberColumn(format="percent"),
        "test acc": st.column_config.NumberColumn(format="percent", help="for information; never used to choose"),
    })


def overview(name: str, report: dict) -> None:
    """Counts, the running trials' progress and the leaderboard."""
    counts = report["counts"]
    st.progress(xv.finished_fraction(counts), text=xv.count_text(counts))
    if store.stop_requested(name) and (counts.get("running") or counts.get("queued")):
        st.info("Stopping: the running trials stop and save; no queued trial starts. **Resume** continues.")
    elif counts.get("queued") and not counts.get("running") and store.stop_requested(name):
        st.info("Stopped. **Resume** runs the queued trials.")
    current_runs(report)
    st.markdown("**Leaderboard** (by validation accuracy)")
    leaderboard_table(report, "exp_leaderboard")


@st.fragment(run_every=2)
def live(name: str) -> None:
    """The overview every two seconds; the whole page redraws when a trial changes state (for the results and
    the buttons)."""
    report = safe_report(name)
    if report is None:
        return
    if st.session_state.get("exp_drawn") != (name, report["counts"]):
        st.rerun()
    overview(name, report)


def stop(name: str) -> None:
    if not refused("stopped"):
        store.request_stop(name)


def resume(name: str, workers: int) -> None:
    if refused("resumed"):
        return
    try:
        store.clear_stop(name)
        worker.start_workers(name, workers)
    except (ExperimentError, ValueError, OSError) as err:
        st.session_state["exp_message"] = ("error", f"Cannot resume: {err}")


def confirm(name: str) -> None:
    if refused("started"):
        return
    try:
        follow_up = reports.confirm_top(name, k=3, seeds=3)
        worker.start_workers(follow_up, 1)
    except (ExperimentError, ValueError, OSError) as err:
        st.session_state["exp_message"] = ("error", f"Cannot confirm: {err}")
        return
    st.session_state[SHOWN] = follow_up
    st.session_state["exp_message"] = ("success", f"Started {follow_up}: the top 3 configurations with 3 seeds.")


def open_in_compare(dataset: str, run_names: list[str]) -> None:
    st.session_state["compare_request"] = {"dataset": dataset, "runs": run_names}


def parallel_plot(report: dict) -> None:
    dims, accs = xv.parallel_dimensions(report)
    if len(accs) < 2:
        return
    fig = go.Figure(go.Parcoords(dimensions=dims, line={"color": accs, "colorscale": "Viridis", "showscale": True}))
    fig.update_layout(height=360, margin={"l": 60, "r": 60, "t": 40, "b": 20})
    st.plotly_chart(fig, key="exp_parallel")


def results(name: str, report: dict, spec: ExperimentSpec) -> None:
    """Effects with error bars, the plot of all trials, importances, the best configuration, exports."""
    if not report["counts"].get("complete"):
        return
    st.subheader("Results")
    if report.get("sentences"):
        st.markdown("\n".join(f"- {line}" for line in report["sentences"]))
    effect_rows = xv.effect_rows(report)
    if effect_rows:
        st.markdown("**Effects** on validation accuracy: mean ± std per value, and the difference to the base "
                    "value with its 95% interval (an interval that holds 0 is within seed-to-seed noise)")
        st.dataframe(effect_rows, hide_index=True, key="exp_effects", column_config={
            "mean val acc": st.column_config.NumberColumn(format="percent"),
            "std (points)": st.column_config.NumberColumn(format="%.2f"),
            "vs base (points)": st.column_config.NumberColumn(format="%+.2f"),
        })
    importances = xv.importance_rows(report)
    if importances:
        st.markdown("**Parameter importances** (Optuna, fANOVA): how much of the spread in validation "
                    "accuracy each field explains")
        st.dataframe(importances, hide_index=True, key="exp_importances",
                     column_config={"importance": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0)})
    parallel_plot(report)
    st.markdown(xv.best_text(report))
    if spec.sampler != "grid":
        st.button("Confirm the top 3 with 3 seeds", key="exp_confirm", on_click=confirm, args=(name,),
                  disabled=not may_run_experiments(),
                  help="a new grid experiment: the three best configurations, each trained with seeds 0, 1, 2")
    with st.expander("All trials, Compare and export"):
        leaderboard_table(report, "exp_all_trials", limit=None)
        ranked = [row["trial"] for row in xv.leaderboard(report) if row["state"] in ("complete", "pruned")]
        chosen = st.multiselect("Trials to compare", ranked, default=ranked[:2], key=f"exp_compare_{name}",
                                format_func=lambda n: f"trial {n}")
        picked = xv.runs_for_compare(report, chosen)
        if st.button("Open in Compare", key="exp_open_compare", disabled=len(picked) < 2,
                     on_click=open_in_compare, args=(spec.dataset, picked)):
            st.switch_page("app/compare.py")
        st.download_button("Download trials (CSV)", xv.trials_csv(report), file_name=f"{name}.csv",
                           mime="text/csv", key="exp_csv")


def newest_first(names: list[str]) -> list[str]:
    """Experiment names, the most recently created first."""
    def created(name: str) -> float:
        data = runs.read_json(store.experiment_dir(name) / store.SPEC_FILE) or {}
        return float(data.get("created") or 0) if isinstance(data.get("created"), (int, float)) else 0.0
    return sorted(names, key=lambda n: (-created(n), n))


def watch() -> None:
    names = newest_first(store.list_experiments())
    if not names:
        st.info("No experiments yet: start a ready-made one or your own under **New experiment**.")
        return
    if st.session_state.get(SHOWN) not in names:
        st.session_state[SHOWN] = names[0]
    name = st.selectbox("Experiment", names, key=SHOWN)
    try:
        spec = store.load_spec(name)
    except (FileNotFoundError, ExperimentError, ValueError, TypeError) as err:
        st.error(f"Experiment {name} cannot be read: {err}")
        return
    st.caption(f"{spec.title or name} · {spec.dataset} · {spec.base.get('model')} · {spec.n_trials()} trials "
               f"({spec.sampler}{', pruned by the median' if spec.prune else ''})")
    report = safe_report(name)
    if report is None:
        return
    counts = report["counts"]
    unfinished = bool(counts.get("running") or counts.get("queued"))
    training = live_trials(report)
    cols = st.columns(3)
    cols[0].button("Stop", key="exp_stop", on_click=stop, args=(name,),
                   disabled=not unfinished or store.stop_requested(name) or not may_run_experiments(),
                   help="the running trials stop as `stopped`; nothing queued starts")
    resume_workers = cols[2].number_input("Workers", min_value=1, max_value=max_concurrent(), value=1,
                                          key="exp_resume_workers")
    cols[1].button("Resume", key="exp_resume", on_click=resume, args=(name, int(resume_workers)),
                   disabled=not unfinished or training > 0 or not may_run_experiments(),
                   help="start workers again: queued trials run, an interrupted trial is queued again")
    st.session_state["exp_drawn"] = (name, counts)  # before the live view compares against it
    if training or unfinished and not store.stop_requested(name):
        live(name)
    else:
        overview(name, report)
    results(name, report, spec)


st.html(live_run.NO_MOTION_CSS)  # as on Train: a progress bar that jumps costs the browser one paint
st.title("Experiments")
st.caption("Vary one setting or several, train every configuration with repeats, and read each effect with "
           "its error bar. Every trial is a normal run: Train, Evaluate and Compare see it too.")
kind, text = st.session_state.pop("exp_message", (None, None))
if kind:
    getattr(st, kind)(text)
open_a_new_train_form_base()
st.session_state.setdefault(VIEW_KEY, WATCH if store.list_experiments() else NEW)
new_tab, watch_tab = st.tabs(VIEWS, key=VIEW_KEY, on_change="rerun")
if new_tab.open:
    with new_tab:
        ready_made()
        st.divider()
        custom_form()
if watch_tab.open:
    with watch_tab:
        watch()
