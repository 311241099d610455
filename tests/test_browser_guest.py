"""Guest mode in real browsers: two visitors and the owner on one server, over the tiny data."""

import re

import pytest

from core import hosting
from core.store import guest, runs
from tests.browser import chromium_browser, new_page, streamlit_server
from tests.test_hosting import finished_run
from tests.test_launcher import no_orphans, state, wait_for  # noqa: F401  (no_orphans is a fixture)

pytestmark = pytest.mark.browser

ALICE_TOKEN, BOB_TOKEN = "alice-token-" + "a" * 12, "bob-token-" + "b" * 14
PASSWORD = "owner pass phrase"


def open_train(browser, url: str, token: str | None = None):
    page = new_page(browser)
    page.goto(f"{url}/train" + (f"?visitor={token}" if token else ""))
    page.get_by_role("heading", name="Train").wait_for()
    return page


def press_start(page, name: str) -> str:
    """Open New run, name the run and press Start; returns the message the press got."""
    page.get_by_role("tab", name="New run").click()
    field = page.get_by_role("textbox", name="Run name (optional)")
    field.fill(name)
    field.press("Enter")
    page.get_by_role("button", name="Start training", exact=True).click()
    message = page.get_by_text(re.compile(rf"^(Started {name}\.|Not started \({name}\): .*)$"))
    message.wait_for(timeout=60_000)
    return message.inner_text()


# True when a selectbox shows `name` as its choice (in its input's value or as its text).
SELECTED = """name => [...document.querySelectorAll('[data-testid="stSelectbox"]')].some(
    box => box.innerText.split('\\n').includes(name)
        || [...box.querySelectorAll('input')].some(i => i.value === name))"""


def watch(page, name: str) -> None:
    """Open the Watch tab on run `name`."""
    page.get_by_role("tab", name="Watch").click()
    page.get_by_role("combobox", name="Run").click()
    page.get_by_role("option", name=name, exact=True).click()
    page.wait_for_function(SELECTED, arg=name)


def test_visitors_change_only_their_runs_within_the_budget_and_the_owner_changes_all(store, tmp_path):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f'{hosting.SECRET_KEY} = "{hosting.hash_password(PASSWORD)}"\n')
    old_guest = finished_run(store, "old-guest", guest.Actor.from_token(BOB_TOKEN), payload=2_200_000,
                             created=1.0)
    owners = finished_run(store, "owners-run", payload=2_200_000, created=0.5)
    env = {"MNIST_STUDIO_RUNS": str(store), hosting.MODE_ENV: "guest", hosting.GUEST_QUEUED.env: "1",
           hosting.GUEST_EPOCHS.env: "1000", hosting.GUEST_DISK_MB.env: "2"}
    with streamlit_server(env, options=("--secrets.files", str(secrets))) as url, chromium_browser() as browser:
        alice = open_train(browser, url, ALICE_TOKEN)
        alice.get_by_text("Guest mode.").first.wait_for()
        epochs = alice.get_by_label("Epochs", exact=True)
        alice.get_by_role("tab", name="New run").click()
        epochs.fill("1000")  # the tiny data: it trains until stopped
        epochs.press("Enter")
        messages = [press_start(alice, f"press-{i}") for i in range(20)]
        started = [m for m in messages if m.startswith("Started")]
        assert started == ["Started press-0.", "Started press-1."]
        assert all("runs training or waiting" in m for m in messages if m.startswith("Not started"))
        assert sorted(p.name for p in store.iterdir() if not p.name.startswith(".")) == [
            "owners-run", "press-0", "press-1"]  # the disk cap removed the oldest guest run, not the owner's
        assert not old_guest.exists() and owners.exists()

        bob = open_train(browser, url, BOB_TOKEN)
        for name in ("press-0", "owners-run"):
            watch(bob, name)
            bob.get_by_text("You can watch this run but not stop, resume or delete it").wait_for()
            for button in ("Stop", "Resume", "Delete"):
                assert bob.get_by_role("button", name=button, exact=True).count() == 0
        assert state(store / "press-0") in runs.ACTIVE_STATES

        watch(alice, "press-0")  # her own run: she may stop it
        alice.get_by_role("button", name="Stop", exact=True).click()
        wait_for("press-0 to stop", lambda: state(store / "press-0") == "stopped", timeout=90)

        owner = open_train(browser, url)
        owner.get_by_text("Owner sign-in").click()
        owner.get_by_label("Owner password").fill("wrong")
        owner.get_by_role("button", name="Sign in", exact=True).click()
        owner.get_by_text("Wrong password.").wait_for()
        owner.get_by_label("Owner password").fill(PASSWORD)
        owner.get_by_role("button", name="Sign in", exact=True).click()
        owner.get_by_text("Signed in as the owner").wait_for()
        watch(owner, "press-1")
        owner.get_by_role("button", name="Stop", exact=True).click()
        wait_for("press-1 to stop", lambda: state(store / "press-1") == "stopped", timeout=90)
        watch(owner, "press-0")  # Alice's run
        owner.get_by_role("button", name="Delete", exact=True).click()
        owner.get_by_role("button", name="Yes, delete").click()
        wait_for("press-0 to be deleted", lambda: not (store / "press-0").exists(), timeout=30)
        assert (store / "press-1").exists() and owners.exists()
