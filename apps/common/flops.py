"""Counting the floating-point operations of a Keras model from its TensorFlow graph.

`count_flops(model, input_shape)` traces `model(x, training=False)` for one
example into a concrete function and sums, over the graph's operations, the
multiply-adds of the ops that carry the cost (each multiply-add counts as 2
FLOPs, as in most papers' tables):

- `Conv2D`: 2 · |output| · k_h · k_w · C_in (per group when grouped)
- `DepthwiseConv2dNative`: 2 · |output| · k_h · k_w
- `MatMul`, `BatchMatMul*`: 2 · batch · M · N · K
- `Einsum` (two operands): 2 · the product of the sizes of all distinct indices

Element-wise ops, normalisation, softmax and pooling are not counted (they are a
few percent of these networks' cost). Shapes must be static for batch 1.
"""

from __future__ import annotations

import math

import tensorflow as tf


def _dims(tensor) -> list[int]:
    shape = tensor.shape
    if shape.rank is None or any(d is None for d in shape.as_list()):
        raise ValueError(f"{tensor.name} has a dynamic shape {shape}; FLOPs need static shapes.")
    return shape.as_list()


def _einsum_flops(op) -> int:
    equation = op.get_attr("equation").decode()
    inputs, _ = equation.replace(" ", "").split("->")
    sizes = {}
    for spec, tensor in zip(inputs.split(","), op.inputs, strict=True):
        dims = _dims(tensor)
        if "..." in spec:
            head, tail = spec.split("...")
            ellipsis = dims[len(head) : len(dims) - len(tail)]
            for i, d in enumerate(ellipsis):
                sizes[f"_ellipsis{i}"] = d
            spec = head + tail
            dims = dims[: len(head)] + dims[len(dims) - len(tail) :]
        for letter, d in zip(spec, dims, strict=True):
            sizes[letter] = d
    return 2 * math.prod(sizes.values()) if len(op.inputs) > 1 else 0


def op_flops(op) -> int:
    """FLOPs of one graph operation (0 for the kinds not counted)."""
    kind = op.type
    if kind == "Conv2D":
        kernel = _dims(op.inputs[1])
        return 2 * math.prod(_dims(op.outputs[0])) * kernel[0] * kernel[1] * kernel[2]
    if kind == "DepthwiseConv2dNative":
        kernel = _dims(op.inputs[1])
        return 2 * math.prod(_dims(op.outputs[0])) * kernel[0] * kernel[1]
    if kind == "MatMul":
        a = _dims(op.inputs[0])
        k = a[0] if op.get_attr("transpose_a") else a[1]
        return 2 * math.prod(_dims(op.outputs[0])) * k
    if kind.startswith("BatchMatMul"):
        a = _dims(op.inputs[0])
        k = a[-2] if op.get_attr("adj_x") else a[-1]
        return 2 * math.prod(_dims(op.outputs[0])) * k
    if kind == "Einsum":
        return _einsum_flops(op)
    return 0


def _graph_ops(graph):
    """Operations of `graph` and of the functions it calls (nested tf.functions)."""
    yield from graph.get_operations()
    for function in getattr(graph, "_functions", {}).values():
        inner = getattr(function, "graph", None)
        if inner is not None:
            yield from _graph_ops(inner)


def count_flops(model, input_shape, dtype=tf.float32) -> dict:
    """FLOPs of one forward pass of `model` on one example of `input_shape` (no batch axis).

    Returns:
        {"flops": total, "by_op": {op type: flops}}.
    """
    spec = tf.TensorSpec((1, *input_shape), dtype)
    concrete = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    by_op: dict[str, int] = {}
    for op in _graph_ops(concrete.graph):
        flops = op_flops(op)
        if flops:
            by_op[op.type] = by_op.get(op.type, 0) + flops
    return {"flops": int(sum(by_op.values())), "by_op": by_op}
