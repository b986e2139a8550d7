"""Key format: generation, parsing, checksum, and no secret in repr."""

from __future__ import annotations

import pytest

from auth import ApiKey, KeyHasher, MalformedKey


def test_generated_keys_parse_back_and_are_unique() -> None:
    keys = {str(ApiKey.generate()) for _ in range(200)}
    assert len(keys) == 200
    for text in list(keys)[:20]:
        assert text.startswith("gwk_")
        assert str(ApiKey.parse(text)) == text


@pytest.mark.parametrize(
    "text",
    ["", "gwk_", "ghp_abcdef", "gwk_short_secret", "x" * 55, " gwk_" + "a" * 50],
)
def test_wrong_shapes_are_malformed(text: str) -> None:
    with pytest.raises(MalformedKey):
        ApiKey.parse(text)


def test_any_single_typo_breaks_the_checksum() -> None:
    text = str(ApiKey.generate())
    for position in range(4, len(text)):
        if text[position] == "_":
            continue
        replacement = "a" if text[position] != "a" else "b"
        typo = text[:position] + replacement + text[position + 1 :]
        with pytest.raises(MalformedKey):
            ApiKey.parse(typo)


def test_repr_hides_the_secret() -> None:
    key = ApiKey.generate()
    assert key.secret not in repr(key) and key.id in repr(key)


def test_hash_binds_id_and_secret_and_depends_on_the_pepper() -> None:
    key = ApiKey.generate()
    hasher = KeyHasher(b"p" * 32)
    digest = hasher.hash(key)
    assert key.secret not in digest
    assert hasher.matches(key, digest)
    assert not hasher.matches(ApiKey(key.id, ApiKey.generate().secret), digest)
    assert not hasher.matches(ApiKey(ApiKey.generate().id, key.secret), digest)
    assert not KeyHasher(b"q" * 32).matches(key, digest)
    with pytest.raises(ValueError, match="pepper"):
        KeyHasher(b"short")
