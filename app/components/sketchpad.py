"""A drawing pad, white ink on black, that sends its picture the moment a stroke ends.

Hand-written (a Streamlit v2 component, inline JavaScript, no build step) rather than streamlit-drawable-canvas,
for a measured reason: that canvas waits 200 ms after each stroke before it sends it (its sender's debounce, `Bc =
200` in 0.13's bundle), two thirds of the 293 ms p50 a bare app round trip took in `bench/draw_latency.py`. This pad
sends on `pointerup`, with pointer capture (mouse, pen and touch), an undo and a clear, and nothing else.
"""

from __future__ import annotations

import functools

import numpy as np
import streamlit as st

from core.inference.images import ImageError, decode_data_url

HTML = """
<div class="pad">
  <div class="pad-tools">
    <button type="button" class="pad-undo" aria-label="Undo the last stroke">↶ Undo</button>
    <button type="button" class="pad-clear" aria-label="Clear the drawing">🗑 Clear</button>
  </div>
  <canvas class="pad-canvas" aria-label="Drawing pad"></canvas>
</div>
"""

CSS = """
.pad { display: inline-flex; flex-direction: column; gap: 0.35rem; }
.pad-tools { display: flex; gap: 0.4rem; }
.pad-tools button {
  font: inherit; font-size: 0.85rem; padding: 0.15rem 0.6rem; cursor: pointer; border-radius: 0.4rem;
  color: var(--st-text-color); background: var(--st-secondary-background-color);
  border: 1px solid var(--st-border-color, rgba(49, 51, 63, 0.2));
}
.pad-tools button:disabled { opacity: 0.45; cursor: default; }
.pad-canvas { touch-action: none; cursor: crosshair; background: #000; border-radius: 0.25rem; display: block; }
"""

# One pad per mount (WeakMap on the host element): a rerun calls the function again with new data (the stroke
# width) and the drawing stays; `setStateValue` sends the PNG at once, and only when the picture changed.
JS = """
const pads = new WeakMap();

function drawStroke(ctx, stroke) {
  const [x0, y0] = stroke.points[0];
  ctx.strokeStyle = ctx.fillStyle = "#fff";
  ctx.lineWidth = stroke.width; ctx.lineCap = "round"; ctx.lineJoin = "round";
  if (stroke.points.length === 1) {
    ctx.beginPath(); ctx.arc(x0, y0, stroke.width / 2, 0, 2 * Math.PI); ctx.fill();
    return;
  }
  ctx.beginPath(); ctx.moveTo(x0, y0);
  for (const [x, y] of stroke.points.slice(1)) ctx.lineTo(x, y);
  ctx.stroke();
}

function repaint(pad) {
  pad.ctx.fillStyle = "#000";
  pad.ctx.fillRect(0, 0, pad.canvas.width, pad.canvas.height);
  for (const stroke of pad.strokes) drawStroke(pad.ctx, stroke);
}

function enableButtons(pad) {
  pad.undo.disabled = pad.clear.disabled = pad.strokes.length === 0;
}

function send(pad) {
  enableButtons(pad);
  pad.setStateValue("drawing", pad.strokes.length ? pad.canvas.toDataURL("image/png") : null);
}

function mount(root) {
  const canvas = root.querySelector(".pad-canvas");
  const pad = {canvas, ctx: canvas.getContext("2d"), strokes: [], current: null, width: 18,
               undo: root.querySelector(".pad-undo"), clear: root.querySelector(".pad-clear"),
               setStateValue: () => {}};
  const at = (e) => {
    const box = canvas.getBoundingClientRect();
    return [(e.clientX - box.left) * canvas.width / box.width, (e.clientY - box.top) * canvas.height / box.height];
  };
  canvas.addEventListener("pointerdown", (e) => {
    if (e.button !== 0 || pad.current) return;  // one stroke at a time: a second finger is ignored
    canvas.setPointerCapture(e.pointerId);
    pad.current = {pointer: e.pointerId, width: pad.width, points: [at(e)]};
    drawStroke(pad.ctx, pad.current);
    e.preventDefault();
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!pad.current || e.pointerId !== pad.current.pointer) return;
    const coalesced = e.getCoalescedEvents?.() ?? [];
    for (const ev of coalesced.length ? coalesced : [e]) {
      const last = pad.current.points[pad.current.points.length - 1];
      const next = at(ev);
      pad.current.points.push(next);
      drawStroke(pad.ctx, {width: pad.current.width, points: [last, next]});
    }
  });
  const end = (e) => {
    if (!pad.current || e.pointerId !== pad.current.pointer) return;
    pad.strokes.push(pad.current);
    pad.current = null;
    send(pad);
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  pad.undo.addEventListener("click", () => { pad.strokes.pop(); repaint(pad); send(pad); });
  pad.clear.addEventListener("click", () => { pad.strokes = []; repaint(pad); send(pad); });
  return pad;
}

export default function (component) {
  const {data, parentElement, setStateValue} = component;
  let pad = pads.get(parentElement);
  if (!pad) {
    pad = mount(parentElement);
    pads.set(parentElement, pad);
  }
  pad.setStateValue = setStateValue;
  pad.width = data.stroke;
  if (pad.canvas.width !== data.side || pad.canvas.height !== data.side) {
    pad.canvas.width = pad.canvas.height = data.side;
    pad.canvas.style.width = pad.canvas.style.height = `${data.side}px`;
    repaint(pad);
  }
  enableButtons(pad);
  return () => pads.delete(parentElement);
}
"""


@functools.cache
def _component():
    """The registered component (registered once per process, on first use inside a running app)."""
    return st.components.v2.component("mnist_studio.sketchpad", html=HTML, css=CSS, js=JS)


def sketchpad(side: int, stroke_width: int, key: str) -> np.ndarray | None:
    """A `side`-pixel square pad; the drawing as RGBA pixels [side, side, 4], or None while it is empty.

    A picture that is not a `side`-pixel PNG (only a doctored browser sends one) gets a one-line warning and
    counts as empty."""
    result = _component()(key=key, data={"side": side, "stroke": stroke_width}, default={"drawing": None},
                          on_drawing_change=lambda: None)
    url = result.get("drawing")
    if not url:
        return None
    try:
        return decode_data_url(url, "the drawing", side)
    except ImageError as err:
        st.warning(str(err))
        return None
