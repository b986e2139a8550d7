"""The README's commands are ones a newcomer can paste: every curl body is valid JSON, and
every inference curl carries a key."""

from __future__ import annotations

import json
import re

from tests.support.data import ROOT

README = (ROOT / "README.md").read_text()


def test_every_curl_body_is_json() -> None:
    bodies = re.findall(r"-d '(\{.*?\})'", README, flags=re.S)
    assert bodies
    for body in bodies:
        json.loads(body)


def test_every_inference_curl_carries_a_key() -> None:
    curls = re.findall(r"curl [^`]*?/infer\b[^`]*?(?=\n\S|\n\n|```)", README, flags=re.S)
    assert curls
    assert all("Authorization: Bearer" in curl for curl in curls), curls
