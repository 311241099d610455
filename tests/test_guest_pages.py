"""Guest mode in the real pages (AppTest): what a visitor is told and offered, and the owner's sign-in."""

import pytest
from streamlit.testing.v1 import AppTest

from core import hosting
from core.store import guest
from tests.conftest import REPO
from tests.test_hosting import finished_run

ALICE_TOKEN, BOB_TOKEN = "alice-token-" + "a" * 12, "bob-token-" + "b" * 14


@pytest.fixture
def guests(store, monkeypatch):
    monkeypatch.setenv(hosting.MODE_ENV, "guest")
    finished_run(store, "alices", guest.Actor.from_token(ALICE_TOKEN))
    finished_run(store, "bobs", guest.Actor.from_token(BOB_TOKEN))
    return store


def train_page(token: str | None = None, password_hash: str | None = None) -> AppTest:
    """The Train page as a visitor with `token` (None: a new visitor), on the Watch tab."""
    at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=60)
    if token:
        at.query_params["visitor"] = token
    if password_hash:
        at.secrets[hosting.SECRET_KEY] = password_hash
    at.run()
    at.switch_page("app/train.py")
    at.run()
    return at


def watch(at: AppTest, path) -> AppTest:
    """Watch the run at `path` (the Run selectbox holds run paths and shows their names)."""
    at.selectbox(key="train_watch").set_value(str(path)).run()
    return at


def button_labels(at: AppTest) -> set[str]:
    return {b.label for b in at.button}


def test_a_visitor_is_told_the_budget_and_offered_actions_only_on_their_runs(guests):
    at = train_page(ALICE_TOKEN)
    assert not at.exception
    budget = " ".join(i.value for i in at.info)
    assert "Guest mode" in budget and f"up to {hosting.GUEST_EPOCHS.value()} epochs" in budget
    assert "start **3** more" in budget
    assert any("Guest mode: explore, predict, and train" in c.value for c in at.sidebar.caption)
    watch(at, guests / "alices")
    assert {"Stop", "Resume", "Delete"} <= button_labels(at)
    watch(at, guests / "bobs")
    assert not {"Stop", "Resume", "Delete"} & button_labels(at)
    assert any("You can watch this run but not stop" in c.value for c in at.caption)


def test_a_new_visitor_gets_a_token_in_the_url(guests):
    at = train_page()
    assert not at.exception
    token = at.query_params["visitor"]
    assert guest.TOKEN_PATTERN.match(token if isinstance(token, str) else token[0])


def test_the_owner_signs_in_with_the_password_and_may_act_on_every_run(guests):
    at = train_page(BOB_TOKEN, password_hash=hosting.hash_password("let me in"))
    at.text_input(key="owner_password").set_value("not it")
    at.button(key="owner_sign_in").click().run()
    assert "Wrong password." in [e.value for e in at.sidebar.error]
    at.text_input(key="owner_password").set_value("let me in")
    at.button(key="owner_sign_in").click().run()
    assert any("Signed in as the owner" in c.value for c in at.sidebar.caption)
    assert not any("Guest mode." in i.value for i in at.info)  # the owner has no guest budget
    watch(at, guests / "alices")
    assert {"Stop", "Resume", "Delete"} <= button_labels(at)


def test_single_user_mode_shows_no_guest_notices(store):
    finished_run(store, "mine")
    at = train_page()
    assert not at.exception and "visitor" not in at.query_params
    assert not any("Guest mode" in i.value for i in at.info) and not at.sidebar.expander
