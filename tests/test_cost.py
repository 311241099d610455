"""Model size before any memory: parameter and multiply-add counts on the meta device, and the bounds on them."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.models import cost
from core.models.cost import MAX_MACS_ENV, MAX_PARAMS_ENV, estimate_cost, model_problems
from core.models.registry import count_macs, count_parameters, create_model, model_names
from core.store.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint, save_checkpoint
from tests.conftest import REPO

HUGE = {"widths": [20000, 20000, 20000], "whiten": False}  # about 7.2 billion parameters: 29 GB of float32


def test_linear_counts_by_hand():
    assert estimate_cost("linear") == cost.ModelCost(params=784 * 10 + 10, macs=784 * 10) \
        == cost.ModelCost(7_850, 7_840)


def test_mlp_with_small_hidden_layers_counts_by_hand():
    # 784 -> 8 -> 4 -> 10, each with a bias
    params = (784 * 8 + 8) + (8 * 4 + 4) + (4 * 10 + 10)
    macs = 784 * 8 + 8 * 4 + 4 * 10
    assert estimate_cost("mlp", hidden1=8, hidden2=4) == cost.ModelCost(params, macs) == cost.ModelCost(6_366, 6_344)


def test_cnn2_counts_by_hand():
    # conv 1->16 5x5 at 28x28, conv 16->32 5x5 at 14x14, linear 32*7*7 -> 10; every layer has a bias
    params = (16 * 25 + 16) + (32 * 16 * 25 + 32) + (32 * 7 * 7 * 10 + 10)
    macs = 16 * 28 * 28 * 25 + 32 * 14 * 14 * 16 * 25 + 32 * 7 * 7 * 10
    assert estimate_cost("cnn2") == cost.ModelCost(params, macs) == cost.ModelCost(28_938, 2_838_080)


def test_a_narrow_fast_net_counts_by_hand():
    # stem 1->2 4x4 stride 2 to 14x14; conv 2->4 3x3 at 14x14, pool; conv 4->8 3x3 at 7x7, pool; head 8->10;
    # no conv or head bias, a batch norm (weight and bias) after every conv
    params = (2 * 16 + 2 * 2) + (4 * 2 * 9 + 2 * 4) + (8 * 4 * 9 + 2 * 8) + 8 * 10
    macs = 2 * 14 * 14 * 16 + 4 * 14 * 14 * 2 * 9 + 8 * 7 * 7 * 4 * 9 + 8 * 10
    assert estimate_cost("fast", widths=[2, 4, 8], whiten=False) == cost.ModelCost(params, macs) \
        == cost.ModelCost(500, 34_576)


@pytest.mark.parametrize("name", model_names())
def test_the_meta_count_equals_the_count_of_the_real_model(name):
    model = create_model(name)
    assert estimate_cost(name) == cost.ModelCost(count_parameters(model), count_macs(model))


def test_every_shipped_model_and_a_4x_wider_best_are_within_the_default_bounds(monkeypatch):
    monkeypatch.delenv(MAX_PARAMS_ENV, raising=False)
    monkeypatch.delenv(MAX_MACS_ENV, raising=False)
    configs = [json.loads(p.read_text()) for p in sorted((REPO / "checkpoints" / "pretrained").glob("*/config.json"))]
    assert len(configs) >= 14
    for config in configs:
        assert model_problems(config["model"], config["model_kwargs"]) == [], config["model"]
    wide_best = {"widths": [4 * 48, 4 * 96, 4 * 192]}  # fast_wide, the `best` preset's model, each width x4
    assert model_problems("fast_wide", wide_best) == []
    assert estimate_cost("fast_wide", **wide_best).params > 9_000_000  # really 4x wider: 16x the weights
    assert model_problems("resnet18", {}) == []
    # and the defaults are far from a machine's memory: 50M float32 weights are 200 MB
    assert cost.max_params() * 4 <= 256 * 2**20


def test_a_size_above_a_bound_is_one_line_with_the_figure_and_the_bound(monkeypatch):
    monkeypatch.setenv(MAX_PARAMS_ENV, "7849")
    assert model_problems("linear", {}) == ["model_kwargs: linear with these arguments has 7,850 parameters, above "
                                            f"the bound of 7,849 (${MAX_PARAMS_ENV})"]
    monkeypatch.setenv(MAX_PARAMS_ENV, "7_850")
    monkeypatch.setenv(MAX_MACS_ENV, "7839")
    assert model_problems("linear", {}) == ["model_kwargs: linear with these arguments needs 7,840 multiply-adds "
                                            f"per image, above the bound of 7,839 (${MAX_MACS_ENV})"]
    monkeypatch.setenv(MAX_MACS_ENV, "7840")
    assert model_problems("linear", {}) == []
    monkeypatch.setenv(MAX_MACS_ENV, "lots")
    assert model_problems("linear", {}) == [f"${MAX_MACS_ENV} must be a positive whole number, got 'lots'"]


@pytest.mark.parametrize("name,kwargs,message", [
    ("resnet18", {"widths": 9}, "resnet18 does not take these arguments"),
    ("fast", {"widths": 9}, "fast cannot be built with these arguments"),
    ("fast", {"widths": [-1, 4, 8], "whiten": False}, "negative dimension"),
    ("fast", {"widths": [48, 64, 128]}, "whiten=false"),
    ("mlp", {"dropout": 5}, "dropout probability"),
    ("mlp", {"hidden1": 10**30}, "mlp cannot be built"),
    ("fast", {"depth": [1, 2, 3]}, "depth must be a whole number of at least 1, or two of them"),
    ("fast", {"depth": [0, 2]}, "depth must be a whole number"),
    ("fast", {"depth": 10**12}, f"more than {cost.MAX_TENSORS:,} weight and buffer tensors"),  # stops building early
    ("fast", {"widths": [6000, 6000, 6000], "whiten": False}, "648,192,000 parameters, above the bound"),
    ("vgg", {}, "unknown model 'vgg'"),
])
def test_arguments_a_model_cannot_be_built_with_are_one_line(name, kwargs, message):
    problems = model_problems(name, kwargs)
    assert problems and message in problems[0]
    assert all("\n" not in p for p in problems)


def test_a_checkpoint_that_describes_a_huge_model_is_refused_before_it_is_built(tmp_path):
    save_checkpoint(tmp_path / "best.pt", create_model("linear"), arch="fast", model_kwargs=HUGE, dataset="mnist",
                    class_names=[str(d) for d in range(10)], mean=0.13, std=0.31)
    with pytest.raises(CheckpointError, match="7,200,640,000 parameters, above the bound"):
        model_from_checkpoint(load_checkpoint(tmp_path / "best.pt"), "small.pt")


CHECK_IN_A_FRESH_PROCESS = """
import json, resource, sys, time
from core.models.cost import model_problems
model_problems("linear", {})  # the first meta-device forward imports parts of torch once per process: not timed
start = time.process_time()  # CPU seconds: a loaded machine's waiting is not the check's work
problems = model_problems(sys.argv[1], json.loads(sys.argv[2]))
seconds = time.process_time() - start
print(json.dumps({"problems": problems, "seconds": seconds,
                  "peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def peak_limit(name: str, kwargs: dict) -> int:
    """'Far below the model's size': a tenth of its float32 weights."""
    return estimate_cost(name, **kwargs).params * 4 // 10


def test_the_huge_model_is_refused_within_a_second_without_allocating_it():
    out = subprocess.run([sys.executable, "-c", CHECK_IN_A_FRESH_PROCESS, "fast", json.dumps(HUGE)], cwd=REPO,
                         capture_output=True, text=True, timeout=300)  # a loaded 2-core machine imports torch slowly
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert "7,200,640,000 parameters, above the bound of 50,000,000" in result["problems"][0]
    assert result["seconds"] < 1.0
    assert result["peak_bytes"] < peak_limit("fast", HUGE)  # under 2.9 GB; the weights alone are 28.8 GB


CLI_WITH_PEAK = """
import resource, sys, time
from core.models.cost import model_problems
from core.train import main
model_problems("linear", {})  # the first meta-device forward imports parts of torch once per process: not timed
start = time.process_time()  # CPU seconds: a loaded machine's waiting is not the check's work
code = main(sys.argv[1:])
print(f"PEAK {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024} {time.process_time() - start}",
      file=sys.stderr)
sys.exit(code)
"""


def test_the_cli_refuses_the_huge_model_in_one_line_within_a_second_and_creates_nothing(store):
    out = subprocess.run([sys.executable, "-c", CLI_WITH_PEAK, "--dataset", "mnist", "--model", "fast",
                          "--model-kwargs", json.dumps(HUGE), "--name", "huge", "--quiet"], cwd=REPO,
                         capture_output=True, text=True, timeout=300)  # a loaded 2-core machine imports torch slowly
    assert out.returncode == 2
    *lines, peak = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "7,200,640,000 parameters, above the bound of 50,000,000" in lines[0], out.stderr
    peak_bytes, seconds = peak.split()[1:]
    assert int(peak_bytes) < peak_limit("fast", HUGE) and float(seconds) < 1.0
    assert not store.exists() or not any(store.iterdir())


@pytest.mark.parametrize("kwargs,message", [
    ({"widths": 9}, "resnet18 does not take these arguments (got an unexpected keyword argument 'widths')"),
])
def test_the_cli_refuses_bad_model_arguments_in_one_line_without_a_traceback(store, kwargs, message):
    out = subprocess.run([sys.executable, "-m", "core.train", "--dataset", "mnist", "--model", "resnet18",
                          "--model-kwargs", json.dumps(kwargs), "--quiet"], cwd=REPO, capture_output=True,
                         text=True, timeout=300)  # a loaded 2-core machine imports torch slowly
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip().splitlines() == [f"python -m core.train: error: model_kwargs: {message}"]
    assert not store.exists() or not any(store.iterdir())


FORM_WITH_PEAK = """
import json, resource, sys, time
from tests.conftest import open_page
from tests.test_train_page import FIELD, widget
at = open_page("app/train.py")
widget(at, FIELD + "model").set_value("fast")
widget(at, FIELD + "model_kwargs").set_value("{}").run()


def rerun_with(kwargs_text):
    start = time.perf_counter()
    widget(at, FIELD + "model_kwargs").set_value(kwargs_text).run()
    return {"seconds": time.perf_counter() - start, "errors": [e.value for e in at.error],
            "exception": bool(at.exception), "start_disabled": widget(at, "train_start").disabled}


huge = rerun_with(sys.argv[1])
# the same rerun with small models, for comparison (the quickest of three: the machine is shared)
small = min((rerun_with(json.dumps({"widths": [w, 8, 8], "whiten": False})) for w in (2, 3, 4)),
            key=lambda r: r["seconds"])
print(json.dumps({"huge": huge, "small": small,
                  "peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def test_the_form_refuses_the_huge_model_within_a_second_without_allocating_it(store):
    out = subprocess.run([sys.executable, "-c", FORM_WITH_PEAK, json.dumps(HUGE)], cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    huge, small = result["huge"], result["small"]
    assert not huge["exception"] and huge["start_disabled"]
    assert any("7,200,640,000 parameters, above the bound of 50,000,000" in e for e in huge["errors"])
    assert small["errors"] == [] and not small["start_disabled"]
    assert huge["seconds"] - small["seconds"] < 1.0  # the check adds under a second to the page's rerun
    assert result["peak_bytes"] < peak_limit("fast", HUGE)
    assert not store.exists() or not any(Path(store).iterdir())
