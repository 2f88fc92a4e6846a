"""Log lines: a sentence by default, JSON on request, the rescue named on every line about it."""

from __future__ import annotations

import contextvars
import json
import logging

from rescue.core import logcontext
from rescue.logs import JsonFormatter, TextFormatter


def _record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("rescue.operator", logging.WARNING, __file__, 1, message, args, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def _in_context(fn: object) -> str:
    return contextvars.copy_context().run(fn)  # type: ignore[arg-type]


def test_text_names_the_rescue_when_the_sentence_does_not() -> None:
    def run() -> str:
        logcontext.about("shop/checkout-1")
        return TextFormatter().format(_record("The forge is away; trying again in %d s.", 60))

    line = _in_context(run)
    assert line.endswith("The forge is away; trying again in 60 s. [rescue shop/checkout-1]")


def test_text_does_not_repeat_a_name_the_sentence_already_has() -> None:
    def run() -> str:
        logcontext.about("shop/checkout-1")
        return TextFormatter().format(_record("Rescue %s: opened.", "shop/checkout-1"))

    assert "[rescue" not in _in_context(run)


def test_json_is_one_object_per_line_with_the_rescue() -> None:
    def run() -> str:
        logcontext.about("shop/checkout-1")
        return JsonFormatter().format(_record("Pushed\nthe rollback."))

    line = _in_context(run)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "warning"
    assert entry["logger"] == "rescue.operator"
    assert entry["message"] == "Pushed\nthe rollback."
    assert entry["rescue"] == "shop/checkout-1"


def test_kopf_object_lines_are_attributed_by_their_reference() -> None:
    record = _record("Handler succeeded.", k8s_ref={"namespace": "shop", "name": "r1"})
    assert json.loads(_in_context(lambda: JsonFormatter().format(record)))["rescue"] == "shop/r1"


def test_lines_about_no_rescue_carry_none() -> None:
    entry = json.loads(_in_context(lambda: JsonFormatter().format(_record("Starting."))))
    assert "rescue" not in entry
