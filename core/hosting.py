"""Hosting the app for others: the mode, every per-request and guest limit (declared once here), the guest
training budget, and the owner's password hash.

`MNIST_STUDIO_MODE=guest` turns guest mode on; the default (`single`) is one trusted user who may do
everything. Each limit is an environment variable with a default; `LIMITS` lists them (README and the
pages read it). `python -m core.hosting hash-password` prints the salted hash to put in
`.streamlit/secrets.toml` as `owner_password_hash`.
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import hmac
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

from core.store import guest, runs

MODE_ENV = "MNIST_STUDIO_MODE"
MODES = ("single", "guest")
SECRET_KEY = "owner_password_hash"


@dataclass(frozen=True)
class Limit:
    """A whole-number bound read from $env, else `default`."""

    env: str
    default: int
    help: str

    def value(self) -> int:
        """The bound; a malformed or non-positive $env is a clear ValueError."""
        text = os.environ.get(self.env, "").strip()
        if not text:
            return self.default
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise ValueError(f"${self.env} must be a positive whole number, got {text!r}")
        return value


PREDICT_IMAGES = Limit("MNIST_STUDIO_MAX_PREDICT_IMAGES", 64, "images one Predict request decodes and predicts")
PREDICT_MODELS = Limit("MNIST_STUDIO_MAX_PREDICT_MODELS", 6, "models one Predict request runs, explains (saliency) "
                       "and probes for robustness")
QUEUED_RUNS = Limit("MNIST_STUDIO_MAX_QUEUED", 16, "runs waiting for a training slot, everyone's together")
GUEST_EPOCHS = Limit("MNIST_STUDIO_GUEST_MAX_EPOCHS", 20, "guest mode: epochs of one run")
GUEST_PARAMS = Limit("MNIST_STUDIO_GUEST_MAX_PARAMS", 2_000_000, "guest mode: parameters of one run's model")
GUEST_SECONDS = Limit("MNIST_STUDIO_GUEST_MAX_SECONDS", 900, "guest mode: seconds one run trains per start")
GUEST_QUEUED = Limit("MNIST_STUDIO_GUEST_MAX_QUEUED", 2, "guest mode: runs one visitor may have waiting, besides "
                     "the one training")
GUEST_DISK_MB = Limit("MNIST_STUDIO_GUEST_DISK_MB", 1024, "guest mode: MB all guest runs may use (the oldest "
                      "finished guest runs are removed first)")
LIMITS = (PREDICT_IMAGES, PREDICT_MODELS, QUEUED_RUNS, GUEST_EPOCHS, GUEST_PARAMS, GUEST_SECONDS, GUEST_QUEUED,
          GUEST_DISK_MB)


def mode() -> str:
    """`single` (default) or `guest`, from $MNIST_STUDIO_MODE; anything else is a ValueError."""
    value = os.environ.get(MODE_ENV, "").strip().lower() or "single"
    if value not in MODES:
        raise ValueError(f"${MODE_ENV} must be one of {', '.join(MODES)}, got {value!r}")
    return value


def guest_mode() -> bool:
    """True in guest mode, and for a malformed $MNIST_STUDIO_MODE (a typo must not open everything up)."""
    try:
        return mode() == "guest"
    except ValueError:
        return True


def is_limited(actor: guest.Actor | None) -> bool:
    """True when `actor` trains within the guest budget (a visitor in guest mode)."""
    return actor is not None and not actor.is_owner and guest_mode()


def over_limit(what: str, count: int, limit: Limit) -> str | None:
    """A one-line refusal when `count` of `what` exceeds `limit`, else None."""
    bound = limit.value()
    return f"{count:,} {what} is more than the limit of {bound:,} (${limit.env})" if count > bound else None


def queue_problem(root: Path) -> str | None:
    """A refusal when the queue of runs waiting for a slot is full."""
    queued = sum(1 for info in runs.scan(root) if info.state == "queued")
    bound = QUEUED_RUNS.value()
    if queued >= bound:
        return f"{queued} runs are already waiting for a training slot, the limit (${QUEUED_RUNS.env}); try later"
    return None


def guest_start_problems(actor: guest.Actor, config, nproc: int, root: Path) -> list[str]:
    """One line per way a visitor's new run would exceed the guest budget; empty when it may start."""
    from core.models.cost import estimate_cost

    problems = []
    if config.epochs > GUEST_EPOCHS.value():
        problems.append(f"a guest run trains at most {GUEST_EPOCHS.value()} epochs (${GUEST_EPOCHS.env}), "
                        f"not {config.epochs}")
    try:
        params = estimate_cost(config.model, **config.model_kwargs).params
    except Exception:  # noqa: BLE001  the model check (core.models.cost) reports why it cannot be built
        params = 0
    if params > GUEST_PARAMS.value():
        problems.append(f"a guest run's model has at most {GUEST_PARAMS.value():,} parameters "
                        f"(${GUEST_PARAMS.env}); {config.model} with these arguments has {params:,}")
    if nproc != 1:
        problems.append("a guest run trains in one process")
    left = runs_left(actor, root)
    if left <= 0:
        problems.append(f"you already have {active_runs(actor, root)} runs training or waiting, the most a visitor "
                        f"may have (1 training and {GUEST_QUEUED.value()} waiting); stop one or wait for it to end")
    return problems


def active_runs(actor: guest.Actor, root: Path) -> int:
    return sum(1 for info in guest.visitor_runs(actor, root) if info.state in runs.ACTIVE_STATES)


def runs_left(actor: guest.Actor, root: Path) -> int:
    """How many more runs the visitor may start now (one training plus GUEST_QUEUED waiting, at most)."""
    return 1 + GUEST_QUEUED.value() - active_runs(actor, root)


def budget_text(actor: guest.Actor, root: Path) -> str:
    """What a guest may do and how much of the budget is left, in one paragraph for the pages."""
    used_mb = guest.guest_bytes(root) / 2**20
    seconds = GUEST_SECONDS.value()
    wall = f"{seconds // 60} minutes" if seconds >= 120 else f"{seconds} seconds"
    return (f"**Guest mode.** You may explore, predict and train: up to {GUEST_EPOCHS.value()} epochs, "
            f"{GUEST_PARAMS.value():,} parameters and {wall} of training per run, "
            f"1 run training and {GUEST_QUEUED.value()} waiting at a time; you can stop, resume and delete only "
            f"the runs you started. You may start **{max(0, runs_left(actor, root))}** more now. Guest runs use "
            f"{used_mb:,.0f} of {GUEST_DISK_MB.value():,} MB; the oldest finished ones are removed to make room.")


# ---- the owner's password ------------------------------------------------------------------------

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
MAX_PASSWORD_CHARS = 1024


def hash_password(password: str, salt: bytes | None = None) -> str:
    """`scrypt$N$r$p$salt$hash` (hex) of `password`, for secrets.toml."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """True when `password` matches `stored` (from hash_password); False for anything malformed."""
    if not isinstance(password, str) or not password or len(password) > MAX_PASSWORD_CHARS:
        return False
    try:
        scheme, n, r, p, salt, expected = str(stored).strip().split("$")
        n, r, p = int(n), int(r), int(p)
        if scheme != "scrypt" or not (2 <= n <= 2**20 and 1 <= r <= 32 and 1 <= p <= 16):
            return False
        digest = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=n, r=r, p=p,
                                dklen=len(bytes.fromhex(expected)), maxmem=256 * 2**20)
    except ValueError:
        return False
    return hmac.compare_digest(digest.hex(), expected.lower())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.hosting", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("hash-password", help="read a password (prompted, or one line on stdin) and print the line "
                                         "to put in .streamlit/secrets.toml")
    sub.add_parser("limits", help="print every limit, its environment variable and its value")
    args = parser.parse_args(argv)
    if args.command == "limits":
        for limit in LIMITS:
            print(f"{limit.env}={limit.value()}  # {limit.help} (default {limit.default})")
        return 0
    password = getpass.getpass("Owner password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    if not password or len(password) > MAX_PASSWORD_CHARS:
        print(f"error: the password must have 1 to {MAX_PASSWORD_CHARS} characters", file=sys.stderr)
        return 2
    print(f'{SECRET_KEY} = "{hash_password(password)}"')
    return 0


if __name__ == "__main__":
    sys.exit(main())
