import os
import subprocess
import sys

import pytest

from app.components.warmup import WARMUP_ENV
from tests.conftest import REPO, open_page


def test_home_renders_with_links_and_no_exception(store):
    at = open_page("app/home.py")
    assert not at.exception
    assert at.title[0].value == "mnist-studio"
    assert "No models yet" in " ".join(i.value for i in at.info)


def test_every_page_renders_without_exception_on_an_empty_store(store):
    for page in ("train", "data", "evaluate", "predict", "compare", "experiments"):
        at = open_page(f"app/{page}.py")
        assert not at.exception, (page, at.exception)


# Runs the router and Home in a fresh interpreter, then prints which heavy modules that run imported.
FIRST_RUN = """
import sys
from streamlit.testing.v1 import AppTest
from app.components.warmup import warm_up_imports

at = AppTest.from_file("streamlit_app.py", default_timeout=120)
at.run()
assert not at.exception, at.exception
assert at.title[0].value == "mnist-studio" and len(at.dataframe) == 1  # the table of shipped models
imported_by_home = [m for m in ("torch", "torchvision") if m in sys.modules]
warm_up = warm_up_imports()  # the thread Home started (None when switched off)
if warm_up is not None:
    warm_up.join(timeout=300)
print(" ".join(imported_by_home) or "-", " ".join(m for m in ("torch", "torchvision") if m in sys.modules) or "-")
"""


@pytest.mark.parametrize("warm_up", ["0", "1"])
def test_the_router_and_home_import_no_torch_and_the_warm_up_imports_it_afterwards(store, warm_up):
    env = {**os.environ, WARMUP_ENV: warm_up, "MNIST_STUDIO_PRETRAINED": str(REPO / "checkpoints" / "pretrained")}
    done = subprocess.run([sys.executable, "-c", FIRST_RUN], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    by_home, after_warm_up = done.stdout.split("\n")[-2].split(" ", 1)
    if warm_up == "0":
        assert (by_home, after_warm_up) == ("-", "-")
    else:  # the thread may have begun before Home's run ended; it brings torch, never torchvision
        assert after_warm_up == "torch"
