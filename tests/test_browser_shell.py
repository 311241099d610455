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


def test_a_page_url_opened_first_on_a_fresh_server_gets_the_app_router(store):
    """Streamlit's old multipage mode would serve pages/train.py alone, with file names in the sidebar."""
    with streamlit_server({"MNIST_STUDIO_RUNS": str(store)}) as url, chromium_page() as page:
        page.goto(f"{url}/train")  # nobody has opened the main page of this server yet
        page.get_by_role("tab", name="New run").wait_for()
        nav = page.get_by_test_id("stSidebarNav")
        nav.get_by_role("link", name="Compare").wait_for()
        assert "shared" not in nav.inner_text() and "streamlit app" not in nav.inner_text()
