import pytest

from tests.browser import chromium_page, first_paint, streamlit_server, watch_first_paint

pytestmark = pytest.mark.browser

PAGE_TITLES = ["Home", "Train", "Data", "Evaluate", "Predict", "Compare", "Experiments"]


def test_the_first_visit_on_a_fresh_server_shows_the_home_title_and_only_page_titles_in_the_navigation(store):
    """Streamlit's legacy multipage mode would first list file names ("streamlit app", "home", "shared")."""
    with streamlit_server({"MNIST_STUDIO_RUNS": str(store)}) as url, chromium_page() as page:
        watch_first_paint(page)  # records every navigation text the sidebar shows, from the first paint on
        page.goto(url)  # the first visit this server gets
        page.get_by_text("Models available now").wait_for(timeout=60_000)  # Home ran to its end
        seen = first_paint(page)
        assert seen["h1"] == "mnist-studio"  # the first title anyone saw is Home's
        assert seen["nav_texts"] == PAGE_TITLES, seen["nav_texts"]
        nav = page.get_by_test_id("stSidebarNav")
        assert [link.inner_text().split()[-1] for link in nav.get_by_role("link").all()] == PAGE_TITLES


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
