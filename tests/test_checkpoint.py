import os
import pickle

import pytest
import torch

from core.models.registry import create_model
from core.store.checkpoint import CheckpointError, load_checkpoint, load_model, model_from_checkpoint, save_checkpoint


def _save(path, arch="cnn2", **kw):
    save_checkpoint(path, create_model(arch), arch=arch, model_kwargs={}, dataset="mnist",
                    class_names=[str(i) for i in range(10)], mean=0.13, std=0.31, **kw)


def test_round_trip_rebuilds_the_same_model(tmp_path):
    torch.manual_seed(0)
    model = create_model("cnn2")
    save_checkpoint(tmp_path / "best.pt", model, arch="cnn2", model_kwargs={}, dataset="mnist",
                    class_names=list("0123456789"), mean=0.1, std=0.3)
    loaded = load_model(tmp_path)
    x = torch.randn(3, 1, 28, 28)
    assert torch.allclose(loaded.model(x), model.eval()(x)) and loaded.mean == pytest.approx(0.1)


def test_half_precision_weights_load_as_float32(tmp_path):
    _save(tmp_path / "best.pt", half=True)
    payload = load_checkpoint(tmp_path / "best.pt")
    assert payload["state_dict"]["0.weight"].dtype == torch.float16
    assert next(model_from_checkpoint(payload).parameters()).dtype == torch.float32


class CreatesFile:
    """Unpickling this runs `touch target`: what a hostile checkpoint would do with plain torch.load."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (os.system, (f"touch '{self.target}'",))


REFUSED = "refused, it holds objects that are not plain weights"


def test_the_hostile_payload_creates_a_file_when_unpickled_unsafely(tmp_path):
    """The control: without weights_only this payload really runs code, so the refusals below mean something."""
    target = tmp_path / "pwned"
    pickle.loads(pickle.dumps(CreatesFile(target), protocol=2))
    assert target.is_file()


@pytest.mark.parametrize("which", ["best", "last"])
def test_a_checkpoint_that_would_run_code_is_refused_and_runs_nothing(tmp_path, which):
    target = tmp_path / "pwned"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    _save(run_dir / f"{which}.pt")
    payload = load_checkpoint(run_dir / f"{which}.pt")
    torch.save({**payload, "optimizer": CreatesFile(target)}, run_dir / f"{which}.pt")  # a torch zip file
    with pytest.raises(CheckpointError, match=f"{which}.pt: {REFUSED}"):
        load_model(run_dir, which)
    assert not target.exists()


@pytest.mark.parametrize("which", ["best", "last"])
def test_a_bare_pickle_that_would_run_code_is_refused_and_runs_nothing(tmp_path, which):
    target = tmp_path / "pwned"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / f"{which}.pt").write_bytes(pickle.dumps({"arch": "cnn2", "x": CreatesFile(target)}, protocol=2))
    with pytest.raises(CheckpointError, match=f"{which}.pt: {REFUSED}"):
        load_model(run_dir, which)
    assert not target.exists()


def test_unknown_architecture_is_named(tmp_path):
    _save(tmp_path / "x.pt")
    payload = load_checkpoint(tmp_path / "x.pt")
    payload["arch"] = "vgg99"
    torch.save(payload, tmp_path / "y.pt")
    with pytest.raises(CheckpointError, match="unknown architecture 'vgg99'"):
        load_checkpoint(tmp_path / "y.pt")


def test_mismatched_shapes_are_explained(tmp_path):
    _save(tmp_path / "x.pt")
    payload = load_checkpoint(tmp_path / "x.pt")
    payload["arch"] = "cnn_basic"
    with pytest.raises(CheckpointError, match="do not fit architecture 'cnn_basic'"):
        model_from_checkpoint(payload)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", b"PK\x03\x04truncated"])
def test_garbage_files_are_refused(tmp_path, content):
    (tmp_path / "bad.pt").write_bytes(content)
    with pytest.raises(CheckpointError, match="bad.pt"):
        load_checkpoint(tmp_path / "bad.pt")


def test_a_bare_state_dict_is_refused_with_a_reason(tmp_path):
    torch.save(create_model("cnn2").state_dict(), tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match="missing arch"):
        load_checkpoint(tmp_path / "model.pt")


def test_resume_refuses_a_last_pt_that_would_run_code(store, capsys):
    """The training loop's own load of last.pt (on --resume) goes through the same refusal."""
    from core import train
    from core.store import runs
    from tests.conftest import tiny_config

    target = store.parent / "pwned"
    run_dir = store / "hostile"
    runs.RunWriter.create(run_dir, tiny_config().to_dict(), state="stopped")
    torch.save({"arch": "cnn2", "state_dict": {}, "x": CreatesFile(target)}, run_dir / "last.pt")
    assert train.main(["--resume", str(run_dir), "--quiet"]) == 2
    assert f"last.pt: {REFUSED}" in capsys.readouterr().err
    assert not target.exists()
    assert runs.read_run(run_dir).state == "failed"
