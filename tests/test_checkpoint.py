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


class Exploit:
    def __reduce__(self):
        return (print, ("this would have run code",))


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"arch": "cnn2", "payload": Exploit()}, path)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)
    path.write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


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
