"""Publishing edits the operator's config.pbtxt in place: only the version policy changes."""

from __future__ import annotations

import pytest

from gateway.control.lifecycle.config_file import with_served_versions
from gateway.control.lifecycle.errors import LifecycleError

WRITTEN = """# Our fraud model. Owner: risk team.
name: "fraud"
backend: "onnxruntime"
max_batch_size: 8  # what the client batches to
# keep the two newest
version_policy: { latest: { num_versions: 2 } }
input [ { name: "x" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "y" data_type: TYPE_FP32 dims: [ 1 ] } ]
parameters { key: "note" value: { string_value: "version_policy { } is not here" } }
"""


def test_only_the_version_policy_line_changes() -> None:
    edited = with_served_versions(WRITTEN, [3, 2, 3])
    before, after = WRITTEN.splitlines(), edited.splitlines()
    assert len(before) == len(after)
    changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert changed == [
        (
            "version_policy: { latest: { num_versions: 2 } }",
            "version_policy: { specific: { versions: [2, 3] } }",
        )
    ]


def test_a_nested_multi_line_policy_is_replaced_whole() -> None:
    text = 'name: "m"\nversion_policy {\n  specific {\n    versions: 1\n  }\n}\nmax_batch_size: 4\n'
    edited = with_served_versions(text, [1, 2])
    assert (
        edited
        == 'name: "m"\nversion_policy: { specific: { versions: [1, 2] } }\nmax_batch_size: 4\n'
    )


def test_a_config_without_a_policy_gets_one_appended() -> None:
    text = '# comment kept\nname: "m"\nmax_batch_size: 4\n'
    edited = with_served_versions(text, [1])
    assert edited.startswith(text)
    assert edited.rstrip().endswith("version_policy: { specific: { versions: [1] } }")


def test_a_config_that_does_not_parse_is_refused() -> None:
    with pytest.raises(LifecycleError, match=r"config\.pbtxt"):
        with_served_versions('name: "m"\nversion_policy { latest { num_versions: 2 }\n', [1])
