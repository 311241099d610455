"""Who is using the app: in guest mode a visitor (a random token kept in the URL's `visitor` query parameter, so a
reload keeps it) or the owner (signed in with the password whose hash is in .streamlit/secrets.toml, or through
st.login where an identity provider is configured). The policy itself is core.hosting and core.store.guest."""

from __future__ import annotations

import secrets

import streamlit as st

from core import hosting
from core.store import guest

TOKEN_PARAM = "visitor"
TOKEN_KEY = "visitor_token"
OWNER_KEY = "owner_signed_in"


def _secret(name: str, default=None):
    """A value from .streamlit/secrets.toml, `default` when there is no such file or key."""
    try:
        return st.secrets.get(name, default)
    except (FileNotFoundError, KeyError, ValueError):
        return default
    except Exception:  # noqa: BLE001  Streamlit raises its own error when no secrets file exists
        return default


def _identity_provider() -> bool:
    """True when st.login is configured ([auth] in secrets.toml)."""
    return bool(_secret("auth"))


def _owner_by_login() -> bool:
    """Signed in through st.login with an e-mail listed in secrets.toml's `owner_emails`."""
    if not _identity_provider() or not getattr(st.user, "is_logged_in", False):
        return False
    return st.user.get("email") in (_secret("owner_emails") or [])


def visitor_token() -> str:
    """This browser session's visitor token: from the URL, else this session's, else a new one (put in the URL)."""
    token = st.query_params.get(TOKEN_PARAM) or st.session_state.get(TOKEN_KEY)
    if not token or not guest.TOKEN_PATTERN.match(token):
        token = secrets.token_urlsafe(18)
    st.session_state[TOKEN_KEY] = token
    if st.query_params.get(TOKEN_PARAM) != token:
        st.query_params[TOKEN_PARAM] = token
    return token


def current_actor() -> guest.Actor | None:
    """None in single-user mode (every right); in guest mode the owner when signed in, else this visitor."""
    if not hosting.guest_mode():
        return None
    if st.session_state.get(OWNER_KEY) or _owner_by_login():
        return guest.Actor.owner()
    return guest.Actor.from_token(visitor_token())


def _sign_in() -> None:
    stored = _secret(hosting.SECRET_KEY)
    if stored and hosting.verify_password(st.session_state.get("owner_password", ""), stored):
        st.session_state[OWNER_KEY] = True
        st.session_state.pop("owner_message", None)
    else:
        st.session_state["owner_message"] = "Wrong password." if stored else (
            f"No owner password is set: put `{hosting.SECRET_KEY}` in .streamlit/secrets.toml "
            "(`python -m core.hosting hash-password`).")
    st.session_state["owner_password"] = ""


def sidebar_access() -> None:
    """In guest mode: what a guest may do, and the owner's sign-in (or sign-out) in the sidebar."""
    try:
        hosting.mode()
    except ValueError as err:  # a malformed $MNIST_STUDIO_MODE: guest mode, and say why
        st.sidebar.error(f"{err}; running in guest mode.")
    if not hosting.guest_mode():
        return
    actor = current_actor()
    with st.sidebar:
        if actor.is_owner:
            st.caption("Signed in as the owner: you may stop, resume and delete any run.")
            if st.session_state.get(OWNER_KEY) and st.button("Sign out", key="owner_sign_out"):
                st.session_state.pop(OWNER_KEY)
                st.rerun()
            return
        st.caption("Guest mode: explore, predict, and train within a budget (see Train). You can change only "
                   "the runs you started.")
        with st.expander("Owner sign-in"):
            st.text_input("Owner password", type="password", key="owner_password")
            st.button("Sign in", key="owner_sign_in", on_click=_sign_in)
            if _identity_provider():
                st.button("Sign in with your account", key="owner_login", on_click=st.login)
            message = st.session_state.get("owner_message")
            if message:
                st.error(message)
