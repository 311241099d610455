"""Evaluate page controls to take a model away (ONNX, .pt2, run archive, model card) and to import an archive."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core import share
from core.store import runs
from core.store.archive import MAX_ARCHIVE_BYTES, ArchiveError, import_archive

DOWNLOADS = {  # format: (label, MIME type)
    "onnx": ("ONNX model", "application/octet-stream"),
    "pt2": ("torch.export program (.pt2)", "application/octet-stream"),
    "zip": ("run archive (.zip)", "application/zip"),
}


def run_version(run_dir: Path) -> tuple:
    """Modification times of the run's files: a new version builds new downloads."""
    times = []
    for name in ("best.pt", "last.pt", "config.json", "summary.json", "test_outputs.npz"):
        try:
            times.append((run_dir / name).stat().st_mtime)
        except OSError:
            times.append(0.0)
    return tuple(times)


@st.cache_data(max_entries=4, show_spinner=False)  # a ResNet-18 file is ~45 MB
def _built(path: str, fmt: str, version: tuple) -> tuple[bytes, str | None, str | None]:
    """(file bytes, check summary, model card) of one export of one run version."""
    data, result = share.export_bytes(Path(path), fmt)
    return data, result.check.summary() if result.check else None, result.card


@st.cache_data(max_entries=16, show_spinner=False)
def _card(path: str, version: tuple) -> str:
    card, problem = share.build_card(Path(path), share.file_name(Path(path), "onnx"), [])
    return card or f"# {Path(path).name}\n\n{problem}\n"


def export_controls(info: runs.RunInfo) -> None:
    """One column per download: a button builds and checks the file, then its download and check figures show."""
    version = run_version(info.path)
    columns = st.columns(len(DOWNLOADS) + 1)
    for col, (fmt, (label, mime)) in zip(columns, DOWNLOADS.items(), strict=False):
        key = (str(info.path), fmt, version)
        with col:
            if st.button(f"Prepare {label}", key=f"eval_share_prepare_{fmt}"):
                st.session_state[f"eval_share_{fmt}"] = key
            if st.session_state.get(f"eval_share_{fmt}") != key:
                continue
            try:
                with st.spinner(f"Building and checking the {label}..."):
                    data, check, _ = _built(*key)
            except share.SHARE_ERRORS as err:
                st.error(" ".join(str(err).split()))
                continue
            st.download_button(f"Download {label}", data, file_name=share.file_name(info.path, fmt), mime=mime,
                               key=f"eval_share_download_{fmt}", on_click="ignore")
            if check:
                st.caption(check)
    columns[-1].download_button("Download model card (Markdown)", lambda: _card(str(info.path), version),
                                file_name=f"{info.name}.md", mime="text/markdown", key="eval_share_download_card",
                                on_click="ignore")


def import_box() -> None:
    """An upload box for a run archive; each uploaded file is imported once, with one line of outcome."""
    uploaded = st.file_uploader("Import a run archive (.zip) made by mnist-studio", type=["zip"],
                                key="eval_import", max_upload_size=MAX_ARCHIVE_BYTES >> 20)
    if uploaded is None:
        return
    done = st.session_state.setdefault("eval_imported", {})
    if uploaded.file_id not in done:
        try:
            done[uploaded.file_id] = ("ok", import_archive(uploaded, uploaded.name).name)
        except ArchiveError as err:
            done[uploaded.file_id] = ("error", " ".join(str(err).split()))
    outcome, text = done[uploaded.file_id]
    if outcome == "ok":
        st.success(f"Imported as run **{text}**: pick it in the list below (and on every page).")
    else:
        st.error(f"Not imported: {text}")
