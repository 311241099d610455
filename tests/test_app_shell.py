from tests.conftest import open_page


def test_home_renders_with_links_and_no_exception(store):
    at = open_page("app/home.py")
    assert not at.exception
    assert at.title[0].value == "mnist-studio"
    assert "No models yet" in " ".join(i.value for i in at.info)


def test_every_page_renders_without_exception_on_an_empty_store(store):
    for page in ("train", "data", "evaluate", "predict", "compare", "experiments"):
        at = open_page(f"app/{page}.py")
        assert not at.exception, (page, at.exception)
