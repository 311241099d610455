"""The Evaluate page's controls to take a model away and to import a run archive (real Streamlit, AppTest)."""

from core.store.archive import export_archive
from tests.conftest import open_page
from tests.share_runs import make_run


def labels(at, kind: str) -> list[str]:
    return [element.label for element in at.get(kind)]


def test_downloads_are_built_on_click_and_show_their_check(store):
    make_run(store, "digits-linear", model="linear")
    at = open_page("app/evaluate.py", timeout=300)  # the .pt2 check starts a Python process: slow when loaded
    assert not at.exception
    assert "Download model card (Markdown)" in labels(at, "download_button")
    assert "Download ONNX model" not in labels(at, "download_button")  # nothing is built before a click
    for fmt in ("onnx", "pt2", "zip"):
        at.button(key=f"eval_share_prepare_{fmt}").click().run()
    assert not at.exception and not at.error
    assert {"Download ONNX model", "Download torch.export program (.pt2)",
            "Download run archive (.zip)"} <= set(labels(at, "download_button"))
    checks = [c.value for c in at.caption if c.value.startswith("Check passed")]
    assert len(checks) == 2 and "ONNX Runtime vs PyTorch on 200 mnist test images" in checks[0]
    assert "torch.export.load in a fresh process" in checks[1]
    assert all("same class for 200 of 200" in check for check in checks)


def test_an_uploaded_archive_becomes_a_run_and_a_bad_one_is_refused_in_one_line(store, tmp_path):
    run = make_run(tmp_path / "other-machine", "shared-cnn2")
    data = export_archive(run, tmp_path / "shared-cnn2.zip").read_bytes()
    make_run(store, "mine")
    at = open_page("app/evaluate.py")
    at.file_uploader(key="eval_import").set_value(("junk.zip", b"PK\x03\x04 junk", "application/zip")).run()
    assert not at.exception
    assert [e.value for e in at.error] == ["Not imported: not a zip archive (File is not a zip file)"]
    assert sorted(p.name for p in store.iterdir()) == ["mine"]

    at.file_uploader(key="eval_import").set_value(("shared-cnn2.zip", data, "application/zip")).run()
    assert not at.exception and not at.error
    assert "Imported as run **shared-cnn2**" in at.success[0].value
    assert any(option.startswith("shared-cnn2 · cnn2 · mnist") for option in at.selectbox(key="eval_run").options)
    at.run()  # a rerun does not import the same upload again
    assert sorted(p.name for p in store.iterdir()) == ["mine", "shared-cnn2"]
