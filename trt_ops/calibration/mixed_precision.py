"""Accuracy-guided mixed precision: the fewest, most sensitive layers kept float until the gate passes.

Runs inside the onnxruntime static calibrator (:func:`trt_ops.calibration.onnxruntime.ort_static`),
after the activation ranges were calibrated once (onnxruntime's calibration cache), so every
candidate model below is only a re-placement of Q/DQ nodes, not a new calibration:

1. the plain int8 model is checked against the FP32 model on held-out calibration samples with
   the gate's own thresholds (:func:`trt_ops.quality.gate.check_frame`); in mode ``on_fail`` a
   pass ends the search;
2. sensitivity: each quantized node alone is quantized (all others float) and its output error
   on a slice of the calibration samples measured: ``sum((q - fp32)^2) / sum(fp32^2)`` of the
   primary output. One model per node, cheaper than leaving one out at a time and a cleaner
   signal, since the other nodes' rounding does not mask it;
3. the most sensitive nodes are kept float, as few as the held-out samples allow: the smallest
   prefix of the ranking that passes (doubling, then bisection), then each kept node is put back
   to int8 when the gate still passes without it (least sensitive first), so removing any one of
   those that stay float fails the gate.

The time limit and the cap on the float share bound the search; when either stops it before a
pass, the result says so and the engine meets its own gate (and the precision fallback) as usual.
A pass is only as good as the held-out samples: the record keeps the exact binomial lower bound
of the top-1 agreement they measured, and the verdict says when it falls below the gate.

The record also holds the gate's metrics for the FP32 model with only its inputs rounded to their
int8 grid, as an int8 model's first Q/DQ rounds them: every int8 layer rounds its input that way,
so when this one rounding already fails the gate, the gate asks more of int8 than these samples
allow (their FP32 answers change under noise below the inputs' own 8-bit step), and the verdict
says so rather than leaving the user to search for a layer to blame.

The Q/DQ model on onnxruntime (CPU) is the accuracy proxy; each engine is still gated on its own
hardware afterwards.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

Feed = dict[str, np.ndarray]
PROGRESS = "trt-ops-progress"  # the marker of progress lines (relayed by trt_ops.calibration.isolated)


def progress(description: str, done: int, total: int) -> None:
    """A progress line on stdout, which the parent process turns into a bar or log lines."""
    print(f"{PROGRESS}\t{description}\t{done}\t{total}", file=sys.stdout, flush=True)


class Runner:
    """Runs one ONNX model over feeds with onnxruntime, optimized as its engine is built."""

    def __init__(self, path: str) -> None:
        import onnxruntime as ort

        from trt_ops.engines.onnxruntime import KEEP_FLOAT_OPTIMIZERS

        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        self.session = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"],
                                            disabled_optimizers=KEEP_FLOAT_OPTIMIZERS)
        self.primary = self.session.get_outputs()[0].name

    def outputs(self, batches: Sequence[Feed]) -> np.ndarray:
        """The primary output, one row per sample (flattened)."""
        rows = [self.session.run([self.primary], b)[0] for b in batches]
        return np.concatenate([r.reshape(len(r), -1) for r in rows]).astype(np.float64)


def batched(feeds: Sequence[Feed], size: int = 32) -> list[Feed]:
    """Samples of one shape stacked into batches; samples of different shapes one at a time."""
    shapes = {tuple((k, v.shape) for k, v in f.items()) for f in feeds}
    if len(shapes) != 1:
        return list(feeds)
    return [{k: np.concatenate([f[k] for f in feeds[i:i + size]]) for k in feeds[0]}
            for i in range(0, len(feeds), size)]


def to_int8_grid(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """``values`` rounded to the uint8 grid of the calibrated range [low, high], as onnxruntime's
    QuantizeLinear then DequantizeLinear compute them (the range widened to hold zero)."""
    from onnxruntime.quantization.quant_utils import compute_scale_zp

    zero, scale = compute_scale_zp(np.array(low, np.float32), np.array(high, np.float32),
                                   np.array(0, np.uint8), np.array(255, np.uint8))
    scale, zero = float(scale), float(zero)
    return ((np.clip(np.round(values / scale) + zero, 0, 255) - zero) * scale).astype(values.dtype)


def input_ranges(fp32_path: str, ranges_path: str) -> dict[str, list[float]]:
    """The calibrated range of each float graph input (what an int8 model's first Q/DQ uses)."""
    import onnx
    from onnxruntime.quantization.calibrate import load_tensors_data

    ranges = load_tensors_data(ranges_path).data
    graph = onnx.load(fp32_path, load_external_data=False).graph
    return {i.name: list(_range(ranges[i.name])) for i in graph.input
            if i.name in ranges and i.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}


def relative_error(reference: np.ndarray, outputs: np.ndarray) -> float:
    """Sum of squared errors over the reference's energy: 0 is exact, 1 is as large as the signal."""
    return float(((outputs - reference) ** 2).sum() / max(float((reference ** 2).sum()), 1e-30))


def quantized_nodes(model_path: str) -> list[tuple[str, str]]:
    """(name, op type) of the nodes a Q/DQ model computes from dequantized inputs, in graph order."""
    import onnx
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    quantizable = {*QDQRegistry, *QLinearOpsRegistry}  # what the QDQ quantizer places Q/DQ for
    graph = onnx.load(model_path, load_external_data=False).graph
    dq = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return [(n.name, n.op_type) for n in graph.node
            if n.op_type in quantizable and any(i in dq for i in n.input)]


def float_inputs(model_path: str, nodes: Sequence[str], original_path: str) -> int:
    """Feeds ``nodes`` their inputs in float: where the quantizer left a Q/DQ pair on an input
    (because the producer or another consumer is quantized), the node reads the tensor before
    the pair, so a layer kept float sees no rounding at all, not only float weights.

    The quantizer drops a Relu/Clip before a Q (the uint8 range clips instead): where the
    original graph (``original_path``) had one there, a copy of it is put back for the float
    node. Q/DQ nodes nothing reads any more are removed. Returns how many inputs were rewired."""
    import onnx

    model = onnx.load(model_path)
    graph = model.graph
    original = onnx.load(original_path, load_external_data=False).graph
    before = {o: n for n in original.node for o in n.output}
    inits = {t.name for t in graph.initializer}
    extra = {t.name: t for t in original.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    wanted, rewired, added = set(nodes), 0, {}
    for node in list(graph.node):
        if node.name not in wanted:
            continue
        for k, name in enumerate(node.input):
            dq = producer.get(name)
            q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" \
                else None
            if q is None or q.op_type != "QuantizeLinear":
                continue
            tensor = q.input[0]
            was, now = before.get(tensor), producer.get(tensor)
            if was is not None and now is not None and was.op_type != now.op_type:
                if was.op_type not in ("Relu", "Clip"):
                    continue  # folded into something else: leave the pair
                if tensor not in added:  # the activation the quantizer folded away, once
                    copy = onnx.helper.make_node(was.op_type, [tensor, *was.input[1:]],
                                                 [f"{tensor}_float"], name=f"{was.name}_float")
                    copy.attribute.extend(was.attribute)
                    graph.node.append(copy)
                    for i in was.input[1:]:
                        if i and i not in inits and i in extra:
                            graph.initializer.append(extra[i])
                            inits.add(i)
                    added[tensor] = f"{tensor}_float"
                tensor = added[tensor]
            node.input[k] = tensor
            rewired += 1
    while True:  # drop Q/DQ nodes whose outputs nothing reads
        read = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
        dead = [n for n in graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
                and not any(o in read for o in n.output)]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
    _sort_topologically(graph)
    onnx.save(model, model_path)
    return rewired


def _sort_topologically(graph: Any) -> None:
    """Nodes in an order where every input is made before it is read (appended copies)."""
    ready = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        rest = []
        for n in pending:
            if all(i in ready for i in n.input):
                ordered.append(n)
                ready.update(n.output)
            else:
                rest.append(n)
        if len(rest) == len(pending):  # a cycle or an outer-scope input: keep the rest as is
            ordered += rest
            break
        pending = rest
    nodes = [type(n)() for n in ordered]
    for new, old in zip(nodes, ordered):
        new.CopyFrom(old)
    del graph.node[:]
    graph.node.extend(nodes)


class Search:
    """One search; ``quantize(exclude, path)`` writes the Q/DQ model with ``exclude`` kept float."""

    def __init__(self, fp32_path: str, quantize: Callable[[list[str], str], None], work: str, *,
                 sensitivity_feeds: Sequence[Feed], holdout_feeds: Sequence[Feed],
                 thresholds: dict[str, float], task: str, base_exclude: Sequence[str],
                 time_limit_s: float, max_float_fraction: float,
                 ranges: dict[str, list[float]]) -> None:
        self.quantize, self.work = quantize, work
        self.thresholds, self.task = thresholds, task
        self.base_exclude = list(base_exclude)
        self.deadline = time.monotonic() + time_limit_s
        self.max_float_fraction = max_float_fraction
        self.sens_batches, self.hold_batches = batched(sensitivity_feeds), batched(holdout_feeds)
        fp32 = Runner(fp32_path)
        self.sens_reference = fp32.outputs(self.sens_batches)
        self.hold_reference = fp32.outputs(self.hold_batches)
        self.evaluations = 0
        self._checked: dict[frozenset[str], tuple[bool, dict[str, float]]] = {}
        rounded = [{k: to_int8_grid(v, *ranges[k]) if k in ranges else v for k, v in b.items()}
                   for b in self.hold_batches]
        self.input_rounding = self.check(fp32.outputs(rounded))

    def check(self, outputs: np.ndarray) -> tuple[bool, dict[str, float]]:
        """The gate's verdict and metrics for ``outputs`` of the held-out samples."""
        from trt_ops.quality.gate import check_frame
        from trt_ops.quality.metrics import sample_frame

        return check_frame(sample_frame(self.hold_reference, outputs, None, self.task),
                           self.thresholds)

    def out_of_time(self) -> bool:
        return time.monotonic() > self.deadline

    def _model(self, exclude: Sequence[str]) -> Runner:
        self.evaluations += 1
        path = f"{self.work}/candidate.onnx"
        self.quantize(sorted({*self.base_exclude, *exclude}), path)
        return Runner(path)

    def gate(self, floats: Sequence[str]) -> tuple[bool, dict[str, float]]:
        """Whether the model with ``floats`` kept float passes the gate on the held-out samples."""
        key = frozenset(floats)
        if key not in self._checked:
            self._checked[key] = self.check(self._model(list(floats)).outputs(self.hold_batches))
        return self._checked[key]

    def sensitivities(self, nodes: Sequence[str]) -> dict[str, float]:
        """Each node's output error when it alone is quantized; stops at the deadline."""
        result: dict[str, float] = {}
        for i, node in enumerate(nodes):
            if self.out_of_time():
                break
            others = [n for n in nodes if n != node]
            outputs = self._model(others).outputs(self.sens_batches)
            result[node] = relative_error(self.sens_reference, outputs)
            progress("sensitivity per layer", i + 1, len(nodes))
        return result

    def fewest(self, ranked: Sequence[str], cap: int) -> tuple[list[str] | None, str]:
        """The smallest set of the most sensitive nodes that passes, made minimal; or None and why."""
        passing = None
        k, low = 1, 0  # low: the largest prefix known to fail
        while k <= cap and not self.out_of_time():  # doubling until a prefix passes
            progress("float layers tried", k, cap)
            if self.gate(ranked[:k])[0]:
                passing = k
                break
            low, k = k, min(cap, 2 * k) if k < cap else cap + 1
        if passing is None:
            if self.out_of_time():
                return None, "time limit reached"
            # how far the cap's model is from the gate: whether a larger cap is worth a try
            return None, (f"keeping the {cap} most sensitive layers float (the cap) does not "
                          f"pass ({self.gate(ranked[:cap])[1]})")
        while passing - low > 1 and not self.out_of_time():  # bisection
            mid = (low + passing) // 2
            if self.gate(ranked[:mid])[0]:
                passing = mid
            else:
                low = mid
        kept = list(ranked[:passing])
        for node in reversed(ranked[:passing]):  # least sensitive first
            if self.out_of_time():
                break
            trial = [n for n in kept if n != node]
            if trial and self.gate(trial)[0]:
                kept = trial
        return kept, "passed"


def run(fp32_path: str, plain_path: str, quantize: Callable[[list[str], str], None], work: str, *,
        sensitivity_feeds: Sequence[Feed], holdout_feeds: Sequence[Feed],
        thresholds: dict[str, float], task: str, base_exclude: Sequence[str], mode: str,
        time_limit_s: float, max_float_fraction: float, ranges_path: str) -> dict[str, Any]:
    """The search (see the module doc); the model with the chosen nodes float is written to
    ``plain_path`` when it differs from the plain one. ``ranges_path``: the calibrated ranges
    (onnxruntime's calibration cache). Returns the record for the manifest."""
    start = time.monotonic()
    ranges = input_ranges(fp32_path, ranges_path)
    search = Search(fp32_path, quantize, work, sensitivity_feeds=sensitivity_feeds,
                    holdout_feeds=holdout_feeds, thresholds=thresholds, task=task,
                    base_exclude=base_exclude, time_limit_s=time_limit_s,
                    max_float_fraction=max_float_fraction, ranges=ranges)
    floor_passed, floor_metrics = search.input_rounding
    ops = dict(quantized_nodes(plain_path))  # name -> op type, in graph order
    nodes = list(ops)
    plain_passed, plain_metrics = search.gate([])
    record: dict[str, Any] = {
        "mode": mode, "thresholds": thresholds, "quantized_layers": len(nodes),
        "holdout_samples": len(holdout_feeds), "sensitivity_samples": len(sensitivity_feeds),
        "plain": {"passed": plain_passed, "metrics": plain_metrics},
        "input_rounding": {"ranges": ranges, "passed": floor_passed, "metrics": floor_metrics},
        "float_layers": [], "sensitivity": {}, "passed": plain_passed}
    if plain_passed and mode == "on_fail":
        record.update(reason="the plain int8 model passes the gate on the held-out samples",
                      top1_agreement_low=top1_lower_bound(plain_metrics, len(holdout_feeds)),
                      evaluations=search.evaluations, seconds=round(time.monotonic() - start, 3))
        return record
    sensitivity = search.sensitivities(nodes)
    ranked = sorted(sensitivity, key=lambda n: -sensitivity[n])
    cap = min(len(ranked), math.floor(max_float_fraction * len(nodes)))
    if plain_passed:  # mode always: the plain model is already the fewest (none float)
        kept, why = [], "the plain int8 model passes the gate on the held-out samples"
    elif cap == 0:
        kept, why = None, (f"max_float_fraction {max_float_fraction} of {len(nodes)} layers "
                           "allows no float layer")
    else:
        kept, why = search.fewest(ranked, cap)
    final_passed, final_metrics = (search.gate(kept) if kept is not None else
                                   (False, plain_metrics))
    if kept:
        quantize(sorted({*base_exclude, *kept}), plain_path)
    bound = top1_lower_bound(final_metrics, len(holdout_feeds))
    threshold = thresholds.get("top1_agreement")
    if final_passed and bound is not None and threshold is not None and bound < threshold:
        why += (f"; {len(holdout_feeds)} held-out samples bound the top-1 agreement only "
                f"to >= {bound:.3f} (95% one-sided), below the gate's {threshold}: the choice may "
                "not hold on new data. Hold out more samples (calibration.samples, "
                "calibration.mixed_precision.holdout) to narrow it")
    if not final_passed and not floor_passed:
        why += (f"; the gate asks more than int8 can give on these samples: the FP32 model with "
                f"only its inputs rounded to their int8 grid already fails it ({floor_metrics}), "
                "and every int8 layer rounds its input the same way. Relax the int8 thresholds "
                "for these data, or let the precision fallback use fp16")
    record.update(
        passed=final_passed, reason=why, metrics=final_metrics,
        float_layers=[{"name": n, "op_type": ops[n], "sensitivity": sensitivity[n]}
                      for n in kept or []],
        float_fraction=round(len(kept or []) / max(len(nodes), 1), 4),
        top1_agreement_low=bound, sensitivity=sensitivity, op_types=ops,
        unmeasured=[n for n in nodes if n not in sensitivity],
        tried=[{"float": len(k), "passed": v[0], "metrics": v[1], "layers": sorted(k)}
               for k, v in search._checked.items()],
        evaluations=search.evaluations, seconds=round(time.monotonic() - start, 3))
    return record


def top1_lower_bound(metrics: dict[str, float], samples: int) -> float | None:
    """The 95% one-sided lower bound (exact binomial) of the top-1 agreement that ``samples``
    held-out samples measured: how much a pass on them says about new data."""
    from scipy.stats import binomtest

    if "top1_agreement" not in metrics or samples < 1:
        return None
    agreeing = round(metrics["top1_agreement"] * samples)
    return round(float(binomtest(agreeing, samples).proportion_ci(0.90, "exact").low), 4)


def layer_stats(fp32_path: str, ranges_path: str, nodes: Sequence[tuple[str, str]],
                feeds: Sequence[Feed], samples: int = 8) -> list[dict[str, Any]]:
    """Per quantized node: its activation input's calibrated range, the uint8 scale that range
    gives, and the share of that input's values (on ``samples`` calibration samples) outside it,
    which quantization clips."""
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization.calibrate import load_tensors_data

    ranges = load_tensors_data(ranges_path)
    model = onnx.load(fp32_path)
    weights = {t.name for t in model.graph.initializer}
    by_name = {n.name: n for n in model.graph.node}
    tensors = {}
    for name, _ in nodes:
        node = by_name.get(name)
        act = next((i for i in node.input if i and i not in weights), None) if node else None
        if act is not None and act in ranges.data:
            tensors[name] = act
    outputs = {o.name for o in model.graph.output}
    for t in sorted(set(tensors.values()) - outputs):
        model.graph.output.append(onnx.ValueInfoProto(name=t))
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every tensor
    so.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    wanted = sorted(set(tensors.values()))
    clipped = dict.fromkeys(wanted, 0)
    total = dict.fromkeys(wanted, 0)
    for feed in feeds[:samples]:
        for t, value in zip(wanted, session.run(wanted, feed)):
            low, high = _range(ranges.data[t])
            clipped[t] += int(((value < low) | (value > high)).sum())
            total[t] += value.size
    stats = []
    for name, op in nodes:
        t = tensors.get(name)
        if t is None:
            stats.append({"name": name, "op_type": op, "tensor": None})
            continue
        low, high = _range(ranges.data[t])
        scale = (max(high, 0.0) - min(low, 0.0)) / 255  # uint8 activations, zero representable
        stats.append({"name": name, "op_type": op, "tensor": t, "range": [low, high],
                      "scale": scale, "clipped_fraction": clipped[t] / max(total[t], 1)})
    return stats


def _range(data: Any) -> tuple[float, float]:
    low, high = data.range_value  # arrays of one value each
    return float(np.min(low)), float(np.max(high))
