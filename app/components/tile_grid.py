"""Image tiles in rows: small grey images enlarged with crisp pixels, each with a caption under it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import streamlit as st

from core.data.stats import enlarge

TILE_SIZE = 112  # pixels; a 28 px image is shown four times as large


def tile_grid(tiles: Sequence[tuple[np.ndarray | None, str]], per_row: int, empty: str = "No images.") -> None:
    """One tile per (image, markdown caption), `per_row` to a row; a tile whose image is None shows its caption
    alone (e.g. when the dataset is not on this machine); `empty` is shown when there are no tiles."""
    if not tiles:
        st.info(empty)
        return
    for start in range(0, len(tiles), per_row):
        for column, (image, caption) in zip(st.columns(per_row), tiles[start:start + per_row], strict=False):
            with column:
                if image is not None:
                    st.image(enlarge(image, TILE_SIZE), output_format="PNG")
                st.caption(caption)
