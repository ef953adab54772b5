"""The signature verifiers docs/webhooks.md gives receivers, run as they are written there (and the server's
own ``verify_signature``, which the tests' receiver uses): real signatures made by the server's signing code
are valid, also among several ``v1`` entries; every malformed, stale or forged header is False, never an
exception.

The snippets are the fenced blocks right after ``<!-- verifier: python -->`` and ``<!-- verifier: bash -->``.
The bash one runs when bash and openssl are installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tokengate.core import webhook_events
from tokengate.core.webhook_events import cloud_event, new_signing_secret, signature, signature_header

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"
SECRET = new_signing_secret()
OTHER_SECRET = new_signing_secret()
BODY = cloud_event(
    event_id="audit-1",
    event_type="service_token.rotated",
    account_id="acc_fogmRnIpg34DNS1X",
    subject="stk_rdqggRJ2CZErzJMd",
    time=datetime(2026, 12, 1, tzinfo=UTC),
    data={"actor": "user:usr_0Sh9GqzdEsnnHGm4", "details": {"new_token_id": "stk_5vTET0rBDeqoUMQB", "name": "é"}},
)


def snippet(language: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    match = re.search(rf"<!-- verifier: {language} -->\n```{language}\n(.*?)\n```", text, re.DOTALL)
    assert match, f"docs/webhooks.md has no {language} verifier"
    return match.group(1)


def python_verifier() -> Callable[[Any, bytes, str], bool]:
    namespace: dict[str, Any] = {}
    exec(snippet("python"), namespace)  # noqa: S102 - the doc's own code, as a receiver would paste it
    return namespace["verify"]


def sig(timestamp: int, secret: str = SECRET, body: bytes = BODY) -> str:
    return signature(secret, timestamp, body)


# (header made from now, valid?) — every header is checked against BODY under SECRET.
CASES: list[tuple[str, Callable[[int], str | None], bool]] = [
    ("the server's own header", lambda now: signature_header(SECRET, now, BODY), True),
    ("two v1, the second matching", lambda now: f"t={now},v1={'0' * 64},v1={sig(now)}", True),
    ("two v1, the first matching", lambda now: f"t={now},v1={sig(now)},v1={sig(now, OTHER_SECRET)}", True),
    ("spaces after the commas", lambda now: f"t={now}, v1={sig(now)}", True),
    ("v1 before t", lambda now: f"v1={sig(now)},t={now}", True),
    ("an unknown scheme beside", lambda now: f"t={now},v0=abc,v1={sig(now)}", True),
    ("made 200 s ago", lambda now: f"t={now - 200},v1={sig(now - 200)}", True),
    ("missing header", lambda now: None, False),
    ("empty header", lambda now: "", False),
    ("no field at all", lambda now: "garbage", False),
    ("only commas", lambda now: ",,,", False),
    ("t without a value sign", lambda now: f"t,v1={sig(now)}", False),
    ("no t", lambda now: f"v1={sig(now)}", False),
    ("empty t", lambda now: f"t=,v1={sig(now)}", False),
    ("t not a number", lambda now: f"t=abc,v1={sig(now)}", False),
    ("t a superscript digit", lambda now: f"t=\u00b2,v1={sig(now)}", False),
    (
        "t an Arabic-Indic number",
        lambda now: "t=" + str(now).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")),
        False,
    ),
    ("negative t", lambda now: f"t=-{now},v1={sig(now)}", False),
    ("t with a plus sign", lambda now: f"t=+{now},v1={sig(now)}", False),
    ("t with a fraction", lambda now: f"t={now}.0,v1={sig(now)}", False),
    ("t in exponent form", lambda now: f"t=1.7e9,v1={sig(now)}", False),
    ("t of 5000 digits", lambda now: f"t={'9' * 5000},v1={sig(now)}", False),
    ("two t", lambda now: f"t={now},t={now},v1={sig(now)}", False),
    ("an empty t before a good one", lambda now: f"t=,t={now},v1={sig(now)}", False),
    ("no v1", lambda now: f"t={now}", False),
    ("v1 under another scheme name", lambda now: f"t={now},v2={sig(now)}", False),
    ("empty v1", lambda now: f"t={now},v1=", False),
    ("v1 one digit short", lambda now: f"t={now},v1={sig(now)[:-1]}", False),
    ("v1 one digit long", lambda now: f"t={now},v1={sig(now)}0", False),
    ("v1 not hex", lambda now: f"t={now},v1={'z' * 64}", False),
    ("v1 in capitals", lambda now: f"t={now},v1={sig(now).upper()}", False),
    ("v1 with a non-ASCII letter", lambda now: f"t={now},v1=é{sig(now)[1:]}", False),
    ("v1 with an equals sign inside", lambda now: f"t={now},v1={sig(now)}=", False),
    ("stale: 400 s ago", lambda now: f"t={now - 400},v1={sig(now - 400)}", False),
    ("from the future: in 400 s", lambda now: f"t={now + 400},v1={sig(now + 400)}", False),
    ("another body's signature", lambda now: f"t={now},v1={sig(now, body=BODY + b' ')}", False),
    ("another secret's signature", lambda now: f"t={now},v1={sig(now, OTHER_SECRET)}", False),
    ("signed for another t", lambda now: f"t={now},v1={sig(now - 1)}", False),
]
PYTHON_ONLY = [  # not something a shell receives as an argument
    ("a lone surrogate in v1", lambda now: f"t={now},v1=\udc80{sig(now)[1:]}", False),
    ("a NUL in v1", lambda now: f"t={now},v1=\x00{sig(now)[1:]}", False),
]
IDS = [case[0] for case in CASES]


def test_the_cases_are_real_signatures_and_real_forgeries():
    # Precondition: the table's valid headers are what the server sends, and its forgeries fail the server's
    # own reference check (the HMAC over "<t>.<body>") for the reason they claim.
    now = int(time.time())
    assert signature_header(SECRET, now, BODY) == f"t={now},v1={sig(now)}"
    assert sig(now) != sig(now, OTHER_SECRET) != sig(now, body=BODY + b" ")
    assert re.fullmatch(r"[0-9a-f]{64}", sig(now))


@pytest.mark.parametrize("name, header, valid", CASES + PYTHON_ONLY, ids=IDS + [c[0] for c in PYTHON_ONLY])
def test_the_documented_python_verifier(name, header, valid):
    verify = python_verifier()
    assert verify(header(int(time.time())), BODY, SECRET) is valid


@pytest.mark.parametrize("name, header, valid", CASES + PYTHON_ONLY, ids=IDS + [c[0] for c in PYTHON_ONLY])
def test_the_servers_reference_verifier(name, header, valid):
    assert webhook_events.verify_signature(header(int(time.time())), SECRET, BODY, time.time()) is valid


@pytest.mark.skipif(not (shutil.which("bash") and shutil.which("openssl")), reason="needs bash and openssl")
@pytest.mark.parametrize("name, header, valid", CASES, ids=IDS)
def test_the_documented_bash_verifier(name, header, valid, tmp_path):
    body = tmp_path / "body.json"
    body.write_bytes(BODY)
    script = tmp_path / "verify.sh"
    script.write_text(snippet("bash") + '\ntokengate_verify "$1" "$2" "$3" && echo valid\n', encoding="utf-8")
    given = header(int(time.time()))
    result = subprocess.run(
        ["bash", str(script), given or "", str(body), SECRET], capture_output=True, text=True, timeout=30
    )
    assert result.stderr == ""
    assert (result.stdout == "valid\n") is valid and (result.returncode == 0) is valid
