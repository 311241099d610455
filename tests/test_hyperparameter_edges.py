"""Every hyperparameter at and past its edges, generated from TrainConfig's field metadata (bounds, choices, type).

For each of the config's fields: the bounds (or every choice) are accepted; just past a bound, NaN, infinity and a
wrong type are refused with a message naming the field, by TrainConfig, on the command line (`core.train.main`,
in-process: exit status 2, the message on stderr, nothing created) and in the Train form (the message shown,
Start disabled). No training starts: accepted values are checked by the same parsing and validation paths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import pytest

from core import train
from core.models.registry import model_names
from core.training.config import ConfigError, TrainConfig
from tests.test_train_page import FIELD, widget

FIELDS = {f.name: f for f in fields(TrainConfig)}


@dataclass(frozen=True)
class Case:
    """One value for one field: accepted, or refused with a message that contains `message`."""

    field: str
    value: object
    accepted: bool
    message: str = ""
    in_form: bool = True  # the form's widget can hold this value (a number box cannot hold text, ...)
    cli_message: str | None = None  # when the command line (where every value is text) says it otherwise

    @property
    def id(self) -> str:
        return f"{self.field}={self.value!r}"

    def flags(self) -> list[str]:
        """The command line that gives this value (bools as --flag / --no-flag)."""
        flag = "--" + self.field.replace("_", "-")
        if isinstance(self.value, bool) and FIELDS[self.field].type == "bool":
            return [flag if self.value else "--no-" + flag[2:]]
        text = self.value if isinstance(self.value, str) else repr(self.value)  # True -> "True", nan -> "nan"
        return [f"{flag}={'{}' if self.value == {} else text}"]


def numeric_cases(name: str, kind: str, meta: dict) -> list[Case]:
    low, high, open_low = meta["low"], meta["high"], meta.get("low_open", False)
    if kind == "int":
        wrong = f"{name}: expected a whole number"
        return [Case(name, low, True), Case(name, high, True),
                Case(name, low - 1, False, f"{name} must be >= {low}, got "),
                Case(name, high + 1, False, f"{name} must be <= {high}, got "),
                Case(name, math.nan, False, wrong, in_form=False), Case(name, math.inf, False, wrong, in_form=False),
                Case(name, low + 0.5, False, wrong, in_form=False), Case(name, "ten", False, wrong, in_form=False),
                Case(name, True, False, wrong, in_form=False)]
    below = low if open_low else math.nextafter(low, -math.inf)
    return [Case(name, math.nextafter(low, math.inf) if open_low else float(low), True),
            Case(name, float(high), True),
            Case(name, below, False, f"{name} must be {'>' if open_low else '>='} {low:g}, got "),
            Case(name, math.nextafter(high, math.inf), False, f"{name} must be <= {high:g}, got "),
            *[Case(name, v, False, f"{name} must be a finite number") for v in (math.nan, math.inf, -math.inf)],
            Case(name, "abc", False, f"{name}: expected a number", in_form=False),
            Case(name, True, False, f"{name}: expected a number", in_form=False)]


def field_cases(name: str) -> list[Case]:
    """The edge cases of one field, from its metadata."""
    f = FIELDS[name]
    meta = f.metadata
    if "low" in meta:
        return numeric_cases(name, f.type, meta)
    choices = meta.get("choices") or (tuple(model_names()) if name == "model" else None)
    if choices:
        return [*[Case(name, c, True) for c in choices],
                Case(name, "nope", False, f"{name} must be one of {', '.join(choices)}", in_form=False),
                Case(name, 3, False, f"{name}: expected text", in_form=False, cli_message=f"{name} must be one of")]
    if f.type == "bool":
        wrong = f"{name}: expected true or false"
        return [Case(name, True, True), Case(name, False, True),
                Case(name, "maybe", False, wrong, in_form=False), Case(name, 2, False, wrong, in_form=False)]
    if f.type == "dict":
        return [Case(name, {}, True), Case(name, '{"depth": 2}', True),
                Case(name, "[1]", False, f"{name}: expected a JSON object"),
                Case(name, '{"dropout": ', False, f"{name}: "),
                Case(name, 5, False, f"{name}: expected a JSON object", in_form=False)]
    raise AssertionError(f"no edge cases for field {name!r}: give its metadata bounds or choices")


CASES = [case for name in FIELDS for case in field_cases(name)]
REFUSED = [c for c in CASES if not c.accepted]


def test_every_field_has_edge_cases_both_ways():
    assert len(FIELDS) == 36
    for name in FIELDS:
        kinds = {c.accepted for c in CASES if c.field == name}
        assert kinds == {True, False}, name


# ---- TrainConfig -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_config_accepts_the_edges_and_refuses_past_them(case):
    if case.accepted:
        config = TrainConfig.from_dict({case.field: case.value})
        expected = {"depth": 2} if case.value == '{"depth": 2}' else case.value
        assert getattr(config, case.field) == expected
        return
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_dict({case.field: case.value})
    matching = [m for m in err.value.messages if case.message in m]
    assert matching, err.value.messages
    if case.message.endswith(", got "):  # past a bound: the value shown exactly, not rounded onto the bound
        assert float(matching[0].rsplit("got ", 1)[1]) == case.value, matching


# ---- the command line --------------------------------------------------------------------------------------

# On the command line a bool is a switch (--hflip / --no-hflip): a value given to it is the refusal to test.
CLI_REFUSED = [c for c in REFUSED if FIELDS[c.field].type != "bool"] + [
    Case(name, "maybe", False, f"--{name.replace('_', '-')}/--no-{name.replace('_', '-')}: ignored explicit "
         "argument 'maybe'") for name, f in FIELDS.items() if f.type == "bool"]


def cli_args(case: Case) -> list[str]:
    return ["--dataset", "mnist", *case.flags()] if case.field != "dataset" else case.flags()


@pytest.mark.parametrize("case", [c for c in CASES if c.accepted], ids=lambda c: c.id)
def test_cli_accepts_the_edges(case, store):
    """Parsed and validated as main() does it (main would then train)."""
    args = train.build_parser().parse_args(cli_args(case))
    config = train.config_from_args(args)
    expected = {"depth": 2} if case.value == '{"depth": 2}' else case.value
    assert getattr(config, case.field) == expected


@pytest.mark.parametrize("case", CLI_REFUSED, ids=lambda c: c.id)
def test_cli_refuses_past_the_edges_with_one_line_and_creates_nothing(case, store, capsys):
    try:  # argparse exits for what it checks itself; the config's own checks return the status
        code = train.main(cli_args(case))
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2 and (case.cli_message or case.message) in err, err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("python -m core.train: error:")
    assert not store.exists() or not any(store.iterdir())


# ---- the Train form ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def form(tmp_path_factory, tiny_data_root):
    """One Train page for the whole module (each case sets one field, checks, and puts the default back)."""
    from tests.conftest import open_page

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MNIST_STUDIO_RUNS", str(tmp_path_factory.mktemp("runs")))
        mp.setenv("MNIST_STUDIO_DATA", str(tiny_data_root))
        mp.setenv("MNIST_STUDIO_PRETRAINED", str(tmp_path_factory.mktemp("pretrained")))
        at = open_page("app/train.py")
        assert not at.exception and not at.error
        yield at


def form_widget(at, name: str):
    return widget(at, "train_dataset" if name == "dataset" else FIELD + name)


def start_disabled(at) -> bool:
    return next(b for b in at.button if b.key == "train_start").disabled


def form_value(case: Case):
    import json

    return json.dumps(case.value) if isinstance(case.value, dict) else case.value


@pytest.mark.parametrize("case", [c for c in CASES if c.in_form], ids=lambda c: c.id)
def test_form_accepts_the_edges_and_refuses_past_them(form, case):
    widget = form_widget(form, case.field)
    default = widget.value
    widget.set_value(form_value(case)).run()  # (with the previous case's field put back)
    assert not form.exception
    errors = [e.value for e in form.error]
    form_widget(form, case.field).set_value(default)  # put back on the next run
    if case.accepted:
        assert not errors and not start_disabled(form), errors
        return
    message = case.message
    if isinstance(case.value, float) and not math.isfinite(case.value):
        message = f"{case.field}: expected a number"  # the number box holds nothing, not NaN
    assert [e for e in errors if message in e] and start_disabled(form), errors
    assert all(case.field in e for e in errors), errors  # no other field is blamed


def test_form_widgets_hold_only_values_of_their_field_type(form):
    """What the form cannot be given: text in a number box, a choice not offered, a bool as anything else."""
    for name, f in FIELDS.items():
        widget = form_widget(form, name)
        meta = f.metadata
        choices = meta.get("choices") or (tuple(model_names()) if name == "model" else None)
        if choices:
            assert list(widget.options) == [widget.format_func(c) for c in choices], name
        elif f.type == "bool":
            assert type(widget).__name__ == "Checkbox", name
        elif f.type in ("int", "float"):
            assert type(widget).__name__ == "NumberInput", name
            assert (widget.proto.data_type == widget.proto.INT) == (f.type == "int"), name
        else:
            assert type(widget).__name__ == "TextInput", name
