import pytest

from tests.browser import chromium_page, streamlit_server

pytestmark = pytest.mark.browser


def test_home_page_loads_in_a_real_browser(store):
    with streamlit_server({"MNIST_STUDIO_RUNS": str(store)}) as url, chromium_page() as page:
        page.goto(url)
        page.get_by_text("A workbench for small image classifiers").wait_for()
        page.get_by_role("link", name="Train a model").click()
        page.wait_for_url("**/train")
        assert page.locator("h1").first.inner_text().startswith("Train")
