"""AutoCast (fp16/bf16) for a model whose weights lie in external data, without loading them.

Model Optimizer's ``convert_to_mixed_precision`` loads every weight, copies the model for its
reference run, hands onnxruntime a third copy and builds the converted model in memory: about
seven times the model at the peak. Here the library's own steps still decide everything (graph
sanitizer, node classifier, precision converter, in its ``convert_to_mixed_precision``), on a
graph whose initializers stay references into the data file; three of its parts are swapped for
ones that read that file instead of holding it:

- the reference run (every tensor an output, on the calibration data) is onnxruntime on the
  graph with the original data folder, whose file onnxruntime maps rather than copies;
- the initializer range rule reads each weight in chunks;
- the precision converter records each weight's conversion without doing it; the weights are
  then written into the output's data file one chunk at a time, each chunk converted by the
  library's own conversion (clamping to the type's range, subnormals).

The peak is about the model once (the mapped weights during the reference run).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from typing import Any
from unittest import mock

import numpy as np

CHUNK_BYTES = 64 * 1024**2
ALIGN = 4096  # weights start on page boundaries, so runtimes can map them


def _region(tensor: Any) -> tuple[str, int, int]:
    """(location, offset, length) of an external tensor."""
    from onnx.external_data_helper import ExternalDataInfo

    info = ExternalDataInfo(tensor)
    return info.location, int(info.offset or 0), int(info.length)


def _chunks(path: str, offset: int, length: int, itemsize: int) -> Iterator[bytes]:
    """The bytes of one external tensor, a whole number of elements at a time."""
    step = max(itemsize, CHUNK_BYTES // itemsize * itemsize)
    with open(path, "rb") as f:
        f.seek(offset)
        left = length
        while left > 0:
            data = f.read(min(step, left))
            if not data:
                raise OSError(f"{path} ends before the {length} bytes at offset {offset}")
            left -= len(data)
            yield data


def _itemsize(data_type: int) -> int:
    from onnx.helper import tensor_dtype_to_np_dtype

    return np.dtype(tensor_dtype_to_np_dtype(data_type)).itemsize


def _chunk_tensor(data: bytes, data_type: int, name: str) -> Any:
    import onnx

    t = onnx.TensorProto(name=name, data_type=data_type, raw_data=data)
    t.dims.append(len(data) // _itemsize(data_type))
    return t


def _runner_class(data_dir: str) -> type:
    from modelopt.onnx.autocast.referencerunner import ReferenceRunner

    class MappedReferenceRunner(ReferenceRunner):
        """onnxruntime on the all-outputs graph, its weights mapped from the original file."""

        def _get_ort_runner(self, model: Any) -> tuple[list[Any], None]:
            import onnxruntime as ort
            from polygraphy.backend.onnxrt import OnnxrtRunner

            so = ort.SessionOptions()
            so.add_session_config_entry("session.model_external_initializers_file_folder_path",
                                        data_dir)
            # a prepacked copy of every weight would double what the mapping saves
            so.add_session_config_entry("session.disable_prepacking", "1")
            session = ort.InferenceSession(model().SerializeToString(), so,
                                           providers=self.providers)
            return [OnnxrtRunner(session)], None

    return MappedReferenceRunner


def _classifier_class(data_dir: str) -> type:
    import onnx
    import onnx.numpy_helper
    from modelopt.onnx.autocast.nodeclassifier import InitializerRangeRule, NodeClassifier
    from onnx.external_data_helper import uses_external_data

    class ChunkedRangeRule(InitializerRangeRule):
        """The library's rule (a float32 weight beyond ``init_max`` keeps its node in fp32),
        external weights read in chunks."""

        def _check_inner(self, node: Any) -> bool:
            inits = self.node_to_init_map[node.name]
            if not any(uses_external_data(i) for i in inits):
                return super()._check_inner(node)
            for init in inits:
                if init.data_type != onnx.TensorProto.FLOAT:
                    continue
                if not uses_external_data(init):
                    array = onnx.numpy_helper.to_array(init)
                    if np.any(np.abs(array) > self.init_max):
                        self.init_data = init.name, array
                        return True
                    continue
                location, offset, length = _region(init)
                for data in _chunks(os.path.join(data_dir, location), offset, length, 4):
                    if np.any(np.abs(np.frombuffer(data, np.float32)) > self.init_max):
                        self.init_data = init.name, None  # logged without its range
                        return True
            return False

    class ChunkedClassifier(NodeClassifier):
        def _gen_exclude_node_rules(self, reference_data: Any) -> list[Any]:
            rules = super()._gen_exclude_node_rules(reference_data)
            for k, rule in enumerate(rules):
                if type(rule) is InitializerRangeRule:
                    rules[k] = ChunkedRangeRule(rule.init_max, rule.node_to_init_map)
            return rules

    return ChunkedClassifier


def _converter_class(made: list[Any]) -> type:
    from modelopt.onnx.autocast.precisionconverter import PrecisionConverter
    from onnx.external_data_helper import uses_external_data

    class DeferredConverter(PrecisionConverter):
        """Converts an external weight in name only: same data reference, the new type; the
        data is converted when the model is written (:func:`_write_weights`)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

        def _convert_initializer_data(self, init: Any, from_type: Any, to_type: Any) -> Any:
            if not uses_external_data(init):
                return super()._convert_initializer_data(init, from_type, to_type)
            import onnx

            new = onnx.TensorProto()
            new.CopyFrom(init)
            new.data_type = to_type.onnx_type
            return new

    return DeferredConverter


def _write_weights(model: Any, sources: dict[tuple[str, int, int], int], data_dir: str,
                   onnx_out: str, converter: Any) -> None:
    """Every external weight of ``model`` written into ``<onnx_out>_data``, converted chunk by
    chunk where its type differs from the source's, and ``model`` pointed at that file."""
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    location = os.path.basename(onnx_out) + "_data"
    with open(os.path.join(os.path.dirname(onnx_out), location), "wb") as out:
        for tensor in _get_all_tensors(model):
            if not uses_external_data(tensor):
                continue
            region = _region(tensor)
            src_type = sources[region]
            src, dst = (converter._precision_type_from_onnx_type(t)
                        for t in (src_type, tensor.data_type))
            out.write(b"\0" * (-out.tell() % ALIGN))
            start = out.tell()
            for data in _chunks(os.path.join(data_dir, region[0]), region[1], region[2],
                                _itemsize(src_type)):
                if tensor.data_type != src_type:
                    data = converter._convert_initializer_data(
                        _chunk_tensor(data, src_type, tensor.name), src, dst).raw_data
                out.write(data)
            del tensor.external_data[:]  # (set_external_data wants the data in memory)
            for key, value in (("location", location), ("offset", start),
                               ("length", out.tell() - start)):
                entry = tensor.external_data.add()
                entry.key, entry.value = key, str(value)


def convert(onnx_in: str, onnx_out: str, precision: str, feeds: dict[str, np.ndarray]) -> Any:
    """``convert_to_mixed_precision(onnx_in, precision, keep_io_types=True, feeds)`` with the
    weights left on disk; the converted model is saved at ``onnx_out`` (its weights in
    ``<onnx_out>_data``) and returned without its weights' data."""
    import onnx
    from modelopt.onnx.autocast import convert as autocast
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    data_dir = os.path.dirname(os.path.abspath(onnx_in))
    source = onnx.load(onnx_in, load_external_data=False)
    sources = {_region(t): t.data_type for t in _get_all_tensors(source) if uses_external_data(t)}
    del source
    made: list[Any] = []
    # the library checks the graph with onnx.checker, which looks for the external data
    # relative to the working directory
    with contextlib.chdir(data_dir), \
            mock.patch.object(autocast, "ReferenceRunner", _runner_class(data_dir)), \
            mock.patch.object(autocast, "NodeClassifier", _classifier_class(data_dir)), \
            mock.patch.object(autocast, "PrecisionConverter", _converter_class(made)), \
            mock.patch.object(autocast.onnx.external_data_helper,
                              "load_external_data_for_model", functools.partial(_keep, data_dir)):
        model = autocast.convert_to_mixed_precision(
            onnx_in, low_precision_type=precision, keep_io_types=True, calibration_data=feeds)
    _write_weights(model, sources, data_dir, onnx_out, made[-1])
    return model


def _keep(data_dir: str, model: Any, base_dir: str) -> None:
    """What replaces loading the weights: they stay in the data file, which must be where the
    library would have read them."""
    if os.path.abspath(base_dir) != data_dir:
        raise ValueError(f"AutoCast reads the weights from {base_dir}, not {data_dir}")
