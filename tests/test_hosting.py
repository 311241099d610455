"""Hosting for others: the limits, guest mode's budget and ownership checks, the disk cap, the owner password."""

import subprocess
import sys
import time

import pytest

from core import hosting
from core.data.datasets import DataUnavailableError
from core.data.stats import download_dataset, one_download_at_a_time
from core.inference.predictor import predict_files
from core.store import guest, launcher, runs, slots
from core.training.config import ConfigError
from core.training.sink import RunSink
from tests.conftest import REPO, tiny_config
from tests.test_launcher import endless, no_orphans, state, wait_for  # noqa: F401  (no_orphans is a fixture)

ALICE, BOB = guest.Actor.from_token("a" * 22), guest.Actor.from_token("b" * 22)


@pytest.fixture
def guests(store, monkeypatch):
    """Guest mode over the `store` fixture's empty run store."""
    monkeypatch.setenv(hosting.MODE_ENV, "guest")
    return store


def finished_run(root, name, actor=None, payload=0, created=None):
    """A stopped run directory (no process), started by `actor`'s visitor when given, with `payload` bytes."""
    path = root / name
    runs.RunWriter.create(path, tiny_config().to_dict(), state="queued")
    runs.RunWriter(path).set_status("stopped", created=created or time.time())
    if actor is not None:
        guest.record_owner(path, actor, 60)
    if payload:
        (path / "last.pt").write_bytes(b"\0" * payload)
    return path


def active_run(root, name, actor):
    """A run that reads as queued (our own live pid and a fresh heartbeat), started by `actor`."""
    path = root / name
    runs.RunWriter.create(path, tiny_config().to_dict(), state="queued")
    guest.record_owner(path, actor, 60)
    return path


def test_limits_come_from_the_environment_with_defaults(monkeypatch):
    monkeypatch.delenv(hosting.GUEST_EPOCHS.env, raising=False)
    assert hosting.GUEST_EPOCHS.value() == hosting.GUEST_EPOCHS.default
    monkeypatch.setenv(hosting.GUEST_EPOCHS.env, "3")
    assert hosting.GUEST_EPOCHS.value() == 3
    for bad in ("0", "-2", "many"):
        monkeypatch.setenv(hosting.GUEST_EPOCHS.env, bad)
        with pytest.raises(ValueError, match=hosting.GUEST_EPOCHS.env):
            hosting.GUEST_EPOCHS.value()
    assert len({limit.env for limit in hosting.LIMITS}) == len(hosting.LIMITS)


def test_mode_defaults_to_single_user(monkeypatch):
    monkeypatch.delenv(hosting.MODE_ENV, raising=False)
    assert hosting.mode() == "single" and not hosting.is_limited(ALICE)
    monkeypatch.setenv(hosting.MODE_ENV, "Guest")
    assert hosting.guest_mode() and hosting.is_limited(ALICE) and not hosting.is_limited(guest.Actor.owner())
    monkeypatch.setenv(hosting.MODE_ENV, "public")
    with pytest.raises(ValueError, match="single, guest"):
        hosting.mode()
    assert hosting.guest_mode()  # a typo fails closed


def test_owner_password_is_a_salted_scrypt_hash():
    stored = hosting.hash_password("correct horse")
    assert "correct horse" not in stored and stored.startswith("scrypt$")
    assert stored != hosting.hash_password("correct horse")  # a new salt every time
    assert hosting.verify_password("correct horse", stored)
    assert not hosting.verify_password("correct hors", stored)
    assert not hosting.verify_password("correct horse", "scrypt$junk")
    assert not hosting.verify_password("correct horse", "")
    assert not hosting.verify_password("x" * 5000, stored)


def test_hash_password_command_prints_a_line_for_secrets_toml():
    out = subprocess.run([sys.executable, "-m", "core.hosting", "hash-password"], input="s3cret\n", cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    key, value = out.stdout.strip().split(" = ")
    assert key == hosting.SECRET_KEY and hosting.verify_password("s3cret", value.strip('"'))


def test_visitor_tokens_are_checked_and_stored_hashed(guests):
    with pytest.raises(ValueError):
        guest.Actor.from_token("short")
    with pytest.raises(ValueError):
        guest.Actor.from_token("../../etc/passwd-xxxxxxxx")
    path = finished_run(guests, "alices", ALICE)
    assert "a" * 22 not in (path / guest.OWNER_FILE).read_text()
    assert guest.ownership(path)["visitor"] == ALICE.visitor


def test_a_visitor_may_change_only_their_own_runs(guests, monkeypatch, tmp_path):
    alices, bobs = finished_run(guests, "alices", ALICE), finished_run(guests, "bobs", BOB)
    owners = finished_run(guests, "owners")  # started by the owner: no owner.json
    for victim in (bobs, owners):
        with pytest.raises(guest.NotYourRunError, match="someone else"):
            launcher.delete_run(victim, actor=ALICE)
        with pytest.raises(guest.NotYourRunError):
            launcher.resume_run(victim, actor=ALICE)
        with pytest.raises(guest.NotYourRunError):
            launcher.stop_run(victim, actor=ALICE)
        assert (victim / "config.json").is_file() and state(victim) == "stopped"
    assert guest.refusal(ALICE, alices) is None and guest.refusal(BOB, alices)
    launcher.delete_run(alices, actor=ALICE)
    assert not alices.exists()
    launcher.delete_run(bobs, actor=guest.Actor.owner())  # the signed-in owner may delete anything
    assert not bobs.exists()

    shipped = tmp_path / "pretrained" / "mnist-fast"
    shipped.mkdir(parents=True)
    (shipped / "config.json").write_text("{}")
    for actor in (ALICE, guest.Actor.owner(), None):
        with pytest.raises(runs.ReadOnlyRunError):
            launcher.delete_run(shipped, actor=actor)
    assert (shipped / "config.json").is_file()

    monkeypatch.setenv(hosting.MODE_ENV, "single")  # single-user mode: no ownership
    launcher.delete_run(owners, actor=ALICE)
    assert not owners.exists()


def test_a_guest_run_stays_within_the_budget_and_is_refused_before_anything_is_made(guests, monkeypatch):
    monkeypatch.setenv(hosting.GUEST_EPOCHS.env, "3")
    monkeypatch.setenv(hosting.GUEST_PARAMS.env, "50000")
    with pytest.raises(ConfigError, match="at most 3 epochs") as err:
        launcher.start_run(tiny_config(epochs=4, model="fast"), name="too-long", actor=ALICE)
    assert "94,400" in str(err.value) and "MNIST_STUDIO_GUEST_MAX_PARAMS" in str(err.value)
    with pytest.raises(ConfigError, match="one process"):
        launcher.start_run(tiny_config(epochs=1), name="wide", nproc=2, actor=ALICE)
    assert not (guests / "too-long").exists() and not (guests / "wide").exists()

    monkeypatch.setenv(hosting.GUEST_QUEUED.env, "1")
    active_run(guests, "busy-1", ALICE)
    active_run(guests, "busy-2", ALICE)
    active_run(guests, "bobs-busy", BOB)
    assert hosting.runs_left(ALICE, guests) == 0 and hosting.runs_left(BOB, guests) == 1
    with pytest.raises(ConfigError, match="2 runs training or waiting"):
        launcher.start_run(tiny_config(epochs=1), name="third", actor=ALICE)
    assert not (guests / "third").exists()
    assert "start **0** more" in hosting.budget_text(ALICE, guests)


def test_the_queue_of_runs_is_bounded_in_every_mode(store, monkeypatch):
    monkeypatch.setenv(hosting.QUEUED_RUNS.env, "2")
    active_run(store, "waiting-1", ALICE)
    active_run(store, "waiting-2", BOB)
    with pytest.raises(ConfigError, match="2 runs are already waiting.*MNIST_STUDIO_MAX_QUEUED"):
        launcher.start_run(tiny_config(), name="one-too-many")
    assert not (store / "one-too-many").exists()


def test_pressing_start_twenty_times_gets_exactly_the_allowed_runs(guests, monkeypatch):
    monkeypatch.setenv(hosting.GUEST_QUEUED.env, "1")
    monkeypatch.setenv(hosting.GUEST_EPOCHS.env, "1000")  # runs that train until stopped
    started, refused = [], []
    for i in range(20):
        try:
            started.append(launcher.start_run(endless(), name=f"press-{i}", actor=ALICE))
        except ConfigError as err:
            refused.append(str(err))
    assert [p.name for p in started] == ["press-0", "press-1"] and len(refused) == 18
    assert all("runs training or waiting" in message for message in refused)
    assert sorted(p.name for p in guests.iterdir() if not p.name.startswith(".")) == ["press-0", "press-1"]
    assert launcher.start_run(endless(), name="bobs", actor=BOB)  # another visitor's budget is their own
    for path in (*started, guests / "bobs"):
        launcher.stop_run(path, actor=guest.Actor.owner())
    wait_for("the runs to stop", lambda: all(state(p) == "stopped" for p in (*started, guests / "bobs")))


def test_the_disk_cap_removes_the_oldest_finished_guest_runs_first(guests, monkeypatch):
    now = time.time()
    oldest = finished_run(guests, "oldest", ALICE, payload=400_000, created=now - 300)
    active = active_run(guests, "active", BOB)
    (active / "last.pt").write_bytes(b"\0" * 400_000)
    middle = finished_run(guests, "middle", BOB, payload=400_000, created=now - 200)
    owners = finished_run(guests, "owners", payload=3_000_000, created=now - 900)  # not a guest run
    newest = finished_run(guests, "newest", ALICE, payload=400_000, created=now - 100)
    assert guest.enforce_disk_cap(guests, 1_300_000) == ["oldest"]
    assert not oldest.exists() and middle.exists() and newest.exists() and active.exists() and owners.exists()
    assert guest.enforce_disk_cap(guests, 10) == ["middle", "newest"]  # never the active run, nor the owner's
    assert active.exists() and owners.exists()

    monkeypatch.setenv(hosting.GUEST_DISK_MB.env, "1")  # a guest start makes room under the cap
    finished_run(guests, "old-again", ALICE, payload=900_000, created=now - 50)
    path = launcher.start_run(tiny_config(epochs=1), name="fresh", actor=ALICE)
    assert path.exists() and not (guests / "old-again").exists() and active.exists()
    launcher.stop_run(path)
    wait_for("the fresh run to end", lambda: state(path) not in runs.ACTIVE_STATES)


def test_a_guest_run_stops_at_its_time_limit(guests):
    path = finished_run(guests, "timed", ALICE)
    guest.record_owner(path, ALICE, max_seconds=0.3)
    sink = RunSink(runs.RunWriter(path))
    assert sink.time_limit == 0.3 and not sink.stop_requested()
    time.sleep(0.5)
    assert sink.stop_requested()
    unbounded = RunSink(runs.RunWriter(finished_run(guests, "owners")))
    assert unbounded.time_limit is None and not unbounded.stop_requested()


def test_predict_requests_are_bounded_before_any_file_is_decoded(monkeypatch):
    monkeypatch.setenv(hosting.PREDICT_IMAGES.env, "3")
    files = [(f"f{i}.png", b"not an image") for i in range(4)]
    with pytest.raises(ValueError, match="4 images in one request is more than the limit of 3"):
        predict_files({}, files, "digits")
    assert [r.error is not None for r in predict_files({}, files[:3], "digits")] == [True] * 3


def test_one_dataset_download_at_a_time(tmp_path):
    (tmp_path / "MNIST" / "raw").mkdir(parents=True)
    with one_download_at_a_time(tmp_path):
        with pytest.raises(DataUnavailableError, match="another dataset download is in progress"):
            download_dataset("mnist", tmp_path, mirrors=[])
    with pytest.raises(DataUnavailableError, match="no mirrors are known"):  # free again: it tries (and fails)
        download_dataset("mnist", tmp_path, mirrors=[])


def test_a_visitor_trains_one_run_at_a_time_and_others_go_ahead_of_their_second(guests):
    running = active_run(guests, "alices-first", ALICE)
    runs.RunWriter(running).set_status("running")
    second = active_run(guests, "alices-second", ALICE)
    runs.RunWriter(second).set_status("queued", queued_at=time.time() - 10)
    bobs = active_run(guests, "bobs", BOB)
    runs.RunWriter(bobs).set_status("queued", queued_at=time.time())
    assert slots.queue_state(second) == (0, True)  # held back while her first run trains
    assert slots.queue_state(bobs) == (0, False)  # queued later, but next to start
    runs.RunWriter(running).set_status("stopped")
    assert slots.queue_state(second) == (0, False) and slots.queue_state(bobs) == (1, False)
