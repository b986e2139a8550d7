"""A new model's config.pbtxt from a bare ONNX file, a generated probe set for models
without one, and a model folder read from a tar archive safely."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from gateway.control.lifecycle.archive import folder_files
from gateway.control.lifecycle.config_file import read_config
from gateway.control.lifecycle.errors import LifecycleError
from gateway.control.lifecycle.new_model import ModelOptions, config_for
from gateway.control.lifecycle.quality import generated_probes
from gateway.protocol.datatypes import decode_bytes_elements
from tests.support.simple_models import simple, simple_string


def write(tmp_path: Path, name: str, text: str) -> Path:
    (tmp_path / name).mkdir()
    (tmp_path / name / "config.pbtxt").write_text(text)
    return tmp_path / name


def test_the_stock_simple_model_gets_the_stock_config(tmp_path: Path) -> None:
    config = read_config(write(tmp_path, "simple", config_for("simple", simple())))
    assert (config.name, config.backend, config.max_batch_size) == ("simple", "onnxruntime", 64)
    assert [(t.name, list(t.dims)) for t in config.input] == [("INPUT0", [16]), ("INPUT1", [16])]
    assert {t.data_type for t in (*config.input, *config.output)} == {8}  # TYPE_INT32
    assert config.HasField("dynamic_batching") and config.instance_group[0].count == 1


def test_options_and_a_graph_without_a_batch_dimension(tmp_path: Path) -> None:
    text = config_for(
        "s", simple(), ModelOptions(max_batch_size=8, instances=2, dynamic_batching=False)
    )
    config = read_config(write(tmp_path, "s", text))
    assert config.max_batch_size == 8 and not config.HasField("dynamic_batching")
    assert config.instance_group[0].count == 2
    fixed = helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, "n"])
    label = helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, "n"])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [fixed], [label])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    config = read_config(write(tmp_path, "fixed", config_for("fixed", model.SerializeToString())))
    assert config.max_batch_size == 0 and list(config.input[0].dims) == [3, -1]


def test_strings_are_typed_as_triton_types_them_and_bad_files_say_why(tmp_path: Path) -> None:
    config = read_config(write(tmp_path, "t", config_for("t", simple_string())))
    assert config.input[0].data_type == 13  # TYPE_STRING, BYTES in the v2 protocol
    with pytest.raises(LifecycleError, match="not a valid ONNX model"):
        config_for("x", b"not onnx")


def test_generated_probes_fill_every_input_by_its_datatype(tmp_path: Path) -> None:
    for name, data in (("simple", simple()), ("simple_string", simple_string())):
        model_dir = write(tmp_path, name, config_for(name, data))
        (request,) = generated_probes(model_dir, "1")
        assert request.version == "1" and [o.name for o in request.outputs] == ["OUTPUT0"]
        for tensor in request.inputs:
            assert tensor.shape == (32, 16)
            if tensor.datatype == "BYTES":
                values = decode_bytes_elements(tensor.data)
                assert len(values) == 32 * 16 and all(v.isdigit() for v in values)
            else:
                assert tensor.datatype == "INT32"
                assert np.frombuffer(tensor.data, np.int32).max() <= 9


def tarred(files: dict[str, bytes], extra: tarfile.TarInfo | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        if extra is not None:
            tar.addfile(extra)
    return buffer.getvalue()


def test_a_folder_archive_is_read_and_escapes_are_refused() -> None:
    files = folder_files(tarred({"./config.pbtxt": b"name: 'm'", "1/model.onnx": b"x"}), 1000)
    assert files == {"config.pbtxt": b"name: 'm'", "1/model.onnx": b"x"}
    for bad in ({"../evil": b"x"}, {"/etc/evil": b"x"}):
        with pytest.raises(LifecycleError, match="not a plain file inside the folder"):
            folder_files(tarred(bad), 1000)
    link = tarfile.TarInfo("config.pbtxt")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    with pytest.raises(LifecycleError):
        folder_files(tarred({}, link), 1000)
    with pytest.raises(LifecycleError, match="bytes unpacked"):
        folder_files(tarred({"big": b"x" * 2000}), 1000)
    with pytest.raises(LifecycleError, match="not a tar archive"):
        folder_files(b"not a tar", 1000)


def test_onnx_of_the_simple_models_pass_the_checker() -> None:
    for data in (simple(), simple_string()):
        onnx.checker.check_model(onnx.load_model_from_string(data))
