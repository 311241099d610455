"""An invisible element that asks for a rerun once the browser has painted everything drawn before it.

Heavy parts of a page (saliency, feature maps, the robustness probe) can wait for it inside an `st.fragment`:
the first run sends the quick answer and this element; the browser paints the answer, then the element's
trigger reruns only the fragment, which draws the rest. Without it the server's Python work on the rest held
the answer back (the deltas wait for the GIL, and the browser renders the rest while painting the answer):
bench/draw_latency.py measured it.
"""

from __future__ import annotations

import streamlit as st

# Two animation frames: the first runs before the paint of what came before this element, the second after it.
# A hidden tab runs no frames, so a timer stands in (browsers slow hidden tabs' timers to about one a second).
_JS = """
export default function ({ data, setTriggerValue }) {
  let sent = false;
  const send = () => { if (!sent) { sent = true; setTriggerValue("painted", data); } };
  requestAnimationFrame(() => requestAnimationFrame(send));
  const timer = setTimeout(send, 1000);
  return () => { sent = true; clearTimeout(timer); };
}
"""

_after_paint = st.components.v2.component("mnist_studio_after_paint", js=_JS)


def painted(token: str, key: str) -> bool:
    """True in the rerun the browser asks for once it has painted what came before this call for `token`."""
    result = _after_paint(data=token, key=f"{key}_{token}", on_painted_change=lambda: None)
    return getattr(result, "painted", None) == token
