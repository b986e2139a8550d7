"""The API key format: `gwk_<id>_<secret><checksum>`.

    gwk_   fixed prefix, so a leaked key is recognisable by secret scanners
    id     12 base62 characters (~71 bits): names the key record; not secret
    secret 32 base62 characters (~190 bits) from `secrets`
    check  6 base62 characters: CRC32 of everything before it

The checksum lets a malformed or mistyped key be refused without a store lookup (in the
spirit of GitHub's `ghp_` tokens). Only a keyed hash of the secret is ever stored.
"""

from __future__ import annotations

import re
import secrets
import zlib
from dataclasses import dataclass

from auth.errors import MalformedKey

PREFIX = "gwk_"
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
ID_LENGTH = 12
SECRET_LENGTH = 32
CHECK_LENGTH = 6

_SHAPE = re.compile(
    rf"^{PREFIX}(?P<id>[0-9A-Za-z]{{{ID_LENGTH}}})_"
    rf"(?P<secret>[0-9A-Za-z]{{{SECRET_LENGTH}}})(?P<check>[0-9A-Za-z]{{{CHECK_LENGTH}}})$"
)


def _random(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def _checksum(body: str) -> str:
    value = zlib.crc32(body.encode("ascii"))
    digits = []
    for _ in range(CHECK_LENGTH):
        value, digit = divmod(value, len(ALPHABET))
        digits.append(ALPHABET[digit])
    return "".join(reversed(digits))


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A parsed key. `str(key)` gives the full key; `repr` never shows the secret."""

    id: str
    secret: str

    @classmethod
    def generate(cls) -> ApiKey:
        return cls(_random(ID_LENGTH), _random(SECRET_LENGTH))

    @classmethod
    def parse(cls, text: str) -> ApiKey:
        """Raise `MalformedKey` unless `text` has the key's shape and a valid checksum."""
        match = _SHAPE.match(text)
        if match is None:
            raise MalformedKey
        body = f"{PREFIX}{match['id']}_{match['secret']}"
        if not secrets.compare_digest(_checksum(body), match["check"]):
            raise MalformedKey
        return cls(match["id"], match["secret"])

    def __str__(self) -> str:
        body = f"{PREFIX}{self.id}_{self.secret}"
        return body + _checksum(body)

    def __repr__(self) -> str:
        return f"ApiKey(id={self.id!r}, secret=<hidden>)"
