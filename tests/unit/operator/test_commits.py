"""The words of a mitigation commit, and that nothing from an alert can forge a trailer.

Trailers are read back the way git reads them: ``git interpret-trailers --parse`` (with the
user's and the system's git configuration shut out) on the exact message.
"""

from __future__ import annotations

import os
import subprocess
import unicodedata
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rescue.operator.commits import message, one_line, rollback_message

RESCUE = "shop/checkouterrorrate-1a2b3c4d5e"
FINGERPRINT = "a1b2c3d4e5f60718"
SUSPECT = "1234567890abcdef1234567890abcdef12345678"
LKG = "fedcba0987654321fedcba0987654321fedcba09"
KEYS = ["Rescue", "Alert-Fingerprint", "Rollback-To", "Rolls-Back"]

HOSTILE = [
    pytest.param("Err\nRescue: other/ns", id="newline-rescue"),
    pytest.param("Err\r\n\r\nRollback-To: deadbeef", id="crlf-paragraph-rollback-to"),
    pytest.param("Err\n\nRolls-Back: deadbeef\nRescue: other/ns", id="trailer-paragraph"),
    pytest.param("Err\u2028Rescue: other/ns\u2029Rolls-Back: x", id="unicode-separators"),
    pytest.param("Err\0\nAlert-Fingerprint: forged", id="nul"),
    pytest.param("Err\x85Rescue: other/ns", id="next-line"),
    pytest.param("Err\x0bRescue: a\x0cRescue: b", id="vertical-tab-form-feed"),
    pytest.param("Err\n---\nRescue: other/ns", id="patch-divider"),
    pytest.param("\nRescue: other/ns", id="leading-newline"),
]

_GIT_ENV = {
    **os.environ,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "LC_ALL": "C",
}


def git_trailers(text: str) -> list[tuple[str, str]]:
    """(key, value) of each trailer git finds in a commit message, in order."""
    result = subprocess.run(
        ["git", "interpret-trailers", "--parse"],
        input=text.encode(),
        capture_output=True,
        check=True,
        env=_GIT_ENV,
        timeout=30,
    )
    found = []
    for line in result.stdout.decode().splitlines():
        key, _, value = line.partition(": ")
        found.append((key, value))
    return found


def _rollback(**overrides: str) -> str:
    arguments: dict[str, Any] = {
        "rescue": RESCUE,
        "target": "shop/checkout",
        "path": "apps/shop/checkout",
        "suspect_sha": SUSPECT,
        "suspect_subject": "bump checkout to v2",
        "lkg": LKG,
        "alert": "CheckoutErrorRate",
        "fingerprint": FINGERPRINT,
        "severity": "SEV1",
        **overrides,
    }
    return rollback_message(**arguments)


def _paragraphs(text: str) -> list[str]:
    return text.rstrip("\n").split("\n\n")


# --- one_line ---------------------------------------------------------------------------------


def test_one_line_leaves_a_plain_line_alone() -> None:
    assert one_line("Checkout error rate above 5%") == "Checkout error rate above 5%"


@pytest.mark.parametrize(
    "separator",
    ["\n", "\r\n", "\r", "\t", "\0", "\x0b", "\x0c", "\x1e", "\x85", "\u2028", "\u2029", "\u200b"],
    ids=repr,
)
def test_one_line_turns_line_breaks_and_control_characters_into_one_space(separator: str) -> None:
    assert one_line(f"first{separator}second") == "first second"


def test_one_line_collapses_runs_of_whitespace_and_trims_the_ends() -> None:
    assert one_line("  a \n\n\t b\r\n  ") == "a b"


def test_one_line_keeps_text_at_the_limit_whole() -> None:
    assert one_line("x" * 200) == "x" * 200
    assert one_line("x" * 10, 10) == "x" * 10


def test_one_line_shortens_longer_text_to_the_limit_with_an_ellipsis() -> None:
    assert one_line("x" * 201) == "x" * 197 + "..."
    assert one_line("abcdefghijk", 10) == "abcdefg..."


def test_one_line_of_only_control_characters_is_empty() -> None:
    assert one_line("\n\r\t\0\u2028") == ""


@settings(database=None, deadline=None, max_examples=300)
@given(text=st.text(), limit=st.integers(min_value=3, max_value=300))
def test_one_line_is_always_one_bounded_line_of_printable_characters(text: str, limit: int) -> None:
    line = one_line(text, limit)
    assert len(line) <= limit
    assert line == line.strip()
    assert len(line.splitlines()) <= 1
    assert not any(unicodedata.category(ch).startswith(("C", "Zl", "Zp")) for ch in line)


# --- message ----------------------------------------------------------------------------------


def test_message_is_subject_blank_line_body_blank_line_trailers() -> None:
    text = message(
        subject="rescue: scale shop/checkout from 2 to 4 replicas",
        body="Why it was done.\nHow to undo it.",
        trailers={"Rescue": RESCUE, "Alert-Fingerprint": FINGERPRINT},
    )
    assert text == (
        "rescue: scale shop/checkout from 2 to 4 replicas\n"
        "\n"
        "Why it was done.\n"
        "How to undo it.\n"
        "\n"
        f"Rescue: {RESCUE}\n"
        f"Alert-Fingerprint: {FINGERPRINT}\n"
    )


def test_message_subject_is_one_line_of_at_most_72_characters() -> None:
    text = message(subject="rescue:\n" + "word " * 40, body="Body.", trailers={"Rescue": RESCUE})
    subject = text.split("\n", 1)[0]
    assert len(subject) <= 72
    assert subject.startswith("rescue: word word")
    assert text.split("\n")[1] == ""


def test_message_trailer_values_are_flattened_to_one_line() -> None:
    text = message(subject="s", body="b", trailers={"Alert-Fingerprint": "fp\nRescue: other/ns"})
    assert git_trailers(text) == [("Alert-Fingerprint", "fp Rescue: other/ns")]


def test_message_trailer_value_that_is_empty_once_flattened_becomes_a_dash() -> None:
    text = message(subject="s", body="b", trailers={"Rescue": "\n\t "})
    assert git_trailers(text) == [("Rescue", "-")]


# --- rollback_message -------------------------------------------------------------------------


def test_rollback_message_has_a_short_subject_naming_target_and_lkg() -> None:
    subject = _rollback().split("\n", 1)[0]
    assert subject == "rescue: roll back shop/checkout to fedcba098765"
    assert len(subject) <= 72


def test_rollback_message_subject_stays_within_72_characters_for_a_long_target() -> None:
    subject = _rollback(target="shop/" + "a" * 200).split("\n", 1)[0]
    assert len(subject) <= 72


def test_rollback_message_body_explains_what_why_and_how_to_undo() -> None:
    paragraphs = _paragraphs(_rollback())
    assert len(paragraphs) == 3
    body = paragraphs[1]
    assert "SEV1 incident shop/checkouterrorrate-1a2b3c4d5e" in body
    assert "CheckoutErrorRate" in body
    assert "1234567890ab (bump checkout to v2) changed apps/shop/checkout" in body
    assert "restores apps/shop/checkout to its content at fedcba098765" in body
    assert "Revert this commit" in body


def test_rollback_message_ends_with_the_four_trailers_in_order() -> None:
    text = _rollback()
    assert _paragraphs(text)[-1].splitlines() == [
        f"Rescue: {RESCUE}",
        f"Alert-Fingerprint: {FINGERPRINT}",
        f"Rollback-To: {LKG}",
        f"Rolls-Back: {SUSPECT}",
    ]
    assert text.endswith("\n")


def test_git_reads_exactly_the_given_trailers_from_a_rollback_message() -> None:
    assert git_trailers(_rollback()) == [
        ("Rescue", RESCUE),
        ("Alert-Fingerprint", FINGERPRINT),
        ("Rollback-To", LKG),
        ("Rolls-Back", SUSPECT),
    ]


@pytest.mark.parametrize("hostile", HOSTILE)
@pytest.mark.parametrize("field", ["alert", "suspect_subject"])
def test_hostile_alert_text_never_adds_a_trailer(field: str, hostile: str) -> None:
    text = _rollback(**{field: hostile})
    assert git_trailers(text) == [
        ("Rescue", RESCUE),
        ("Alert-Fingerprint", FINGERPRINT),
        ("Rollback-To", LKG),
        ("Rolls-Back", SUSPECT),
    ]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_fingerprint_stays_inside_its_own_trailer(hostile: str) -> None:
    text = _rollback(fingerprint=hostile)
    assert git_trailers(text) == [
        ("Rescue", RESCUE),
        ("Alert-Fingerprint", one_line(hostile, 120)),
        ("Rollback-To", LKG),
        ("Rolls-Back", SUSPECT),
    ]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_subject_and_trailer_values_in_a_message_never_add_a_trailer(hostile: str) -> None:
    text = message(
        subject=hostile,
        body="Body.",
        trailers={"Rescue": RESCUE, "Alert-Fingerprint": hostile},
    )
    assert git_trailers(text) == [
        ("Rescue", RESCUE),
        ("Alert-Fingerprint", one_line(hostile, 120)),
    ]
    assert "\n" not in text.split("\n\n", 1)[0]


@settings(database=None, deadline=None, max_examples=75)
@given(alert=st.text(max_size=200), subject=st.text(max_size=200))
def test_no_alert_text_whatsoever_changes_the_trailers_git_reads(alert: str, subject: str) -> None:
    keys = [key for key, _ in git_trailers(_rollback(alert=alert, suspect_subject=subject))]
    assert keys == KEYS


def test_a_long_but_valid_rescue_reference_is_kept_whole_in_its_trailer() -> None:
    rescue = "n" * 63 + "/" + "r" * 253
    assert ("Rescue", rescue) in git_trailers(_rollback(rescue=rescue))
