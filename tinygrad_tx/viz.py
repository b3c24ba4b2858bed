"""Draw the graph that ``backward()`` will walk, as Graphviz (micrograd's ``draw_dot``, grown up).

    from tinygrad_tx.viz import draw_graph
    graph = draw_graph(loss, module=model)     # a graphviz.Digraph; a notebook shows it (SVG, or DOT text)
    graph.source                               # DOT text: needs no Graphviz program
    save_graph(graph, "step.svg")              # SVG or PNG: needs the ``dot`` program

One box per op (the ``Context`` node ``backward()`` visits), labelled with the op, the shape and dtype
of what it produced, which inputs need a gradient, and what it saved for its backward. One ellipse per
leaf that requires a gradient (named by its module path when a Module is given). Inputs that need no
gradient are not nodes: ``backward()`` never reaches them, and the op's label counts them as constants.
After ``backward(retain_graph=True)``, ``show_grad=True`` adds each leaf's gradient (and each
intermediate's, for tensors that called ``retain_grad()``; ``retain_all_grads`` does that for all).

A whole GPT step is hundreds of ops. ``max_depth`` keeps the ops within that many steps of the output;
with a Module, repeated blocks (``transformer.h.1``, ``h.2`` ...) collapse to one node each, and only
the first is drawn in full. The graph is only read, through the attributes docs/autograd.md describes
(a Tensor's ``_ctx`` and ``_out_index``, a Context's ``inputs``, ``saved_tensors``, ``needs_input_grad``,
``out_meta``); nothing in the engine knows this module exists.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import graphviz

from . import backend
from .errors import GraphError, TinygradTxError
from .function import Context
from .tensor import Tensor

# Context attributes that belong to the graph machinery, not to what an op saved for its backward
_MACHINERY = {
    "function",
    "needs_input_grad",
    "saved_tensors",
    "inputs",
    "pending",
    "owned",
    "retained",
    "out_meta",
    "call_site",
    "released",
}
_REPEATED = re.compile(r"^(.*?\.\d+)(?:\.|$)")  # "transformer.h.3.attn.c_attn" -> "transformer.h.3"


class GraphvizMissingError(TinygradTxError, RuntimeError):
    """Rendering to SVG/PNG needs the Graphviz ``dot`` program, which is not installed."""


@dataclass
class _Op:
    """One Context as the drawing sees it."""

    ctx: Context
    key: str
    depth: int
    outputs: dict[int, Tensor] = field(default_factory=dict)  # out index -> tensor seen downstream
    owner: str | None = None  # module path the op belongs to


class Graph(graphviz.Digraph):
    """A ``graphviz.Digraph`` a notebook always shows: SVG through ``dot``, else its DOT text under a one-line
    hint (a plain Digraph shown without ``dot`` stops the notebook with ExecutableNotFound)."""

    def _repr_mimebundle_(self, include=None, exclude=None, **kwargs):
        if has_dot():
            return super()._repr_mimebundle_(include, exclude, **kwargs)
        return {"text/plain": f"{NO_DOT_HINT}\n{self.source}"}


NO_DOT_HINT = "(the graph as DOT text: drawing it needs Graphviz's 'dot' program, apt-get install graphviz)"


def has_dot() -> bool:
    """Whether the Graphviz ``dot`` program is on PATH (needed for SVG/PNG, not for DOT text)."""
    return shutil.which("dot") is not None


def retain_all_grads(tensor: Tensor) -> Tensor:
    """Call ``retain_grad()`` on every intermediate tensor behind ``tensor`` (before ``backward``), so
    that ``draw_graph(..., show_grad=True)`` can show every op's output gradient, not only the leaves'."""
    for op in _walk(tensor).values():
        for out in op.outputs.values():
            out.retain_grad()
    return tensor


def draw_graph(
    tensor: Tensor,
    module=None,
    show_grad: bool = False,
    max_depth: int | None = None,
    names: Mapping[str, Tensor] | None = None,
    collapse_repeats: bool = True,
    rankdir: str = "TB",
) -> Graph:
    """A ``graphviz.Digraph`` of the ops and leaves ``tensor.backward()`` will walk (a ``Graph``: a notebook
    shows it as SVG, or as DOT text where ``dot`` is missing).

    ``module``: name parameters by their path (``transformer.h.0.attn.c_attn.weight``) and, with
    ``collapse_repeats``, draw only the first of a ModuleList's repeated blocks in full. ``names``:
    labels for other tensors (``{"x": x}``). ``show_grad``: add ``.grad`` where it exists (call
    ``backward(retain_graph=True)`` first, or the graph is gone). ``max_depth``: keep only ops at most
    that many ops away from the output; cut inputs become one dashed node each.
    """
    if not isinstance(tensor, Tensor):
        raise TinygradTxError(f"draw_graph: expected a Tensor, got {type(tensor).__name__}")
    if max_depth is not None and max_depth < 0:
        raise TinygradTxError(f"draw_graph: max_depth must be >= 0, got {max_depth}")
    labels = _leaf_names(module, names)
    graph = Graph(
        "backward",
        graph_attr={"rankdir": rankdir, "fontsize": "10"},
        node_attr={"fontname": "Helvetica", "fontsize": "10"},
        edge_attr={"fontname": "Helvetica", "fontsize": "9"},
    )
    if tensor._ctx is None:
        graph.node("leaf0", _leaf_label(tensor, labels, show_grad), **_leaf_style(tensor))
        return graph
    ops = _walk(tensor)
    _assign_owners(ops, module)
    collapsed = _collapsed_blocks(ops) if (module is not None and collapse_repeats) else {}
    _Drawing(graph, ops, labels, show_grad, max_depth, collapsed).draw(tensor)
    return graph


def save_graph(graph: graphviz.Digraph, path) -> Path:
    """Write ``graph`` to ``path``: ``.dot``/``.gv`` as text (always works), ``.svg``/``.png``/``.pdf``
    through the ``dot`` program. Returns the path written."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt in ("dot", "gv"):
        path.write_text(graph.source, encoding="utf-8")
        return path
    if fmt not in ("svg", "png", "pdf"):
        raise TinygradTxError(f"save_graph: unknown format {path.suffix!r} for {path}; use .dot, .svg, .png or .pdf")
    if not has_dot():
        raise GraphvizMissingError(
            f"save_graph: writing {path.name} needs the Graphviz 'dot' program "
            "(apt-get install graphviz); .dot text needs nothing"
        )
    data = graph.pipe(format=fmt)
    temporary = path.with_name(path.name + ".part")
    temporary.write_bytes(data)
    temporary.replace(path)
    return path


# ---------------------------------------------------------------------------------------- the walk
def _walk(root: Tensor) -> dict[int, _Op]:
    """Every Context behind ``root``, breadth first (so depth is the shortest distance to the output),
    with the output tensors each one was seen producing."""
    if root._ctx is None:
        return {}
    if root._ctx.released:
        raise GraphError(
            "draw_graph: the graph was freed by backward(); draw it before backward(), "
            "or call backward(retain_graph=True)"
        )
    ops: dict[int, _Op] = {id(root._ctx): _Op(root._ctx, "op0", 0, {root._out_index: root})}
    frontier = [root._ctx]
    while frontier:
        following = []
        for ctx in frontier:
            depth = ops[id(ctx)].depth
            for tensor in ctx.inputs:
                if tensor is None or tensor._ctx is None:
                    continue
                producer = ops.get(id(tensor._ctx))
                if producer is None:
                    producer = ops[id(tensor._ctx)] = _Op(tensor._ctx, f"op{len(ops)}", depth + 1)
                    following.append(tensor._ctx)
                producer.outputs.setdefault(tensor._out_index, tensor)
        frontier = following
    return ops


def _inputs_first(ops: dict[int, _Op]) -> list[_Op]:
    """The ops in an order where every producer comes before its consumers (iterative DFS)."""
    order, done, stack = [], set(), [(op, False) for op in ops.values()]
    while stack:
        op, finished = stack.pop()
        if finished:
            order.append(op)
            continue
        if id(op.ctx) in done:
            continue
        done.add(id(op.ctx))
        stack.append((op, True))
        stack.extend(
            (ops[id(t._ctx)], False)
            for t in op.ctx.inputs
            if t is not None and t._ctx is not None and id(t._ctx) not in done
        )
    return order


def _assign_owners(ops: dict[int, _Op], module) -> None:
    """Each op's module: that of a parameter it uses directly, else that of its latest-computed input."""
    if module is None:
        return
    param_module: dict[int, str] = {}
    for path, param in module.named_parameters(remove_duplicate=False):
        param_module.setdefault(id(param), path.rpartition(".")[0])
    position = {}
    for index, op in enumerate(_inputs_first(ops)):
        position[id(op.ctx)] = index
        owners = [
            param_module[id(t)] for t in op.ctx.inputs if t is not None and t._ctx is None and id(t) in param_module
        ]
        if owners:
            op.owner = owners[0]
            continue
        producers = [ops[id(t._ctx)] for t in op.ctx.inputs if t is not None and t._ctx is not None]
        if producers:
            op.owner = max(producers, key=lambda p: position[id(p.ctx)]).owner


def _collapsed_blocks(ops: dict[int, _Op]) -> dict[int, str]:
    """op id -> block path, for ops of every repeated block but the first of its list."""
    blocks = {}
    for key, op in ops.items():
        match = _REPEATED.match(op.owner or "")
        if match:
            blocks[key] = match.group(1)
    first: dict[str, str] = {}
    for block in sorted(set(blocks.values()), key=_natural):
        first.setdefault(block.rpartition(".")[0], block)
    return {key: block for key, block in blocks.items() if first[block.rpartition(".")[0]] != block}


def _natural(path: str) -> tuple:
    return tuple(int(part) if part.isdigit() else part for part in path.split("."))


# ---------------------------------------------------------------------------------------- labels
def _leaf_names(module, names: Mapping[str, Tensor] | None) -> dict[int, str]:
    labels: dict[int, list[str]] = {}
    if module is not None:
        for path, param in module.named_parameters(remove_duplicate=False):
            labels.setdefault(id(param), []).append(path)  # a tied weight gets both names
    for name, tensor in (names or {}).items():
        labels.setdefault(id(tensor), []).insert(0, name)
    return {key: " = ".join(paths) for key, paths in labels.items()}


def _describe(array) -> str:
    """shape and dtype, plus the values when there are at most four of them."""
    text = f"{tuple(array.shape)} {array.dtype}"
    if array.size <= 4:
        values = backend.to_numpy(array).ravel()
        text += " [" + ", ".join(f"{v:.4g}" for v in values.tolist()) + "]"
    return text


def _grad_line(tensor: Tensor | None, show_grad: bool) -> str:
    if not show_grad or tensor is None or tensor.grad is None:
        return ""
    grad = tensor.grad.data
    norm = float(backend.to_numpy((grad.astype("float64") ** 2).sum()) ** 0.5)
    return f"\ngrad {_describe(grad)} |g|={norm:.4g}"


def _leaf_label(tensor: Tensor, labels: dict[int, str], show_grad: bool) -> str:
    name = labels.get(id(tensor), "leaf")
    flag = "requires_grad" if tensor.requires_grad else "no grad"
    return f"{name}\n{_describe(tensor.data)}\n{flag}{_grad_line(tensor, show_grad)}"


def _leaf_style(tensor: Tensor) -> dict:
    colour = "lightblue" if tensor.requires_grad else "grey90"
    return {"shape": "ellipse", "style": "filled", "fillcolor": colour}


def _saved_summary(ctx) -> str:
    """What the op kept for its backward: saved arrays by shape, other attributes by value."""
    parts = [f"{tuple(a.shape)}" if hasattr(a, "shape") else _short(repr(a)) for a in ctx.saved_tensors]
    for name, value in vars(ctx).items():
        if name in _MACHINERY:
            continue
        parts.append(f"{name}={tuple(value.shape) if hasattr(value, 'shape') else _short(repr(value))}")
    return "saved: " + (", ".join(parts) if parts else "nothing")


def _short(text: str, width: int = 24) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _op_label(op: _Op, show_grad: bool) -> str:
    ctx = op.ctx
    outputs = []
    if ctx.out_meta:  # a multi-output op records every output's shape and dtype
        outputs = [f"out{i} {tuple(shape)} {dtype}" for i, (shape, dtype) in enumerate(ctx.out_meta)]
    else:
        outputs = [f"{op.outputs[0].shape} {op.outputs[0].dtype}"] if 0 in op.outputs else []
    flags = ["grad" if needed else "const" for needed in ctx.needs_input_grad]
    lines = [ctx.function.__name__] + outputs + [f"inputs: {', '.join(flags)}", _saved_summary(ctx)]
    grads = "".join(_grad_line(out, show_grad) for _, out in sorted(op.outputs.items()))
    return "\n".join(lines) + grads


class _Drawing:
    """Emits the nodes and edges of one graph (kept apart from the walk so each part reads alone)."""

    def __init__(self, graph, ops, labels, show_grad, max_depth, collapsed):
        self.graph, self.ops, self.labels = graph, ops, labels
        self.show_grad, self.max_depth, self.collapsed = show_grad, max_depth, collapsed
        self.leaves: dict[int, str] = {}
        self.cut: dict[int, str] = {}
        self.block_edges = set()

    def visible(self, op: _Op) -> bool:
        return self.max_depth is None or op.depth <= self.max_depth

    def draw(self, root: Tensor) -> None:
        block_sizes: dict[str, int] = {}
        for op in self.ops.values():
            if id(op.ctx) in self.collapsed:
                block_sizes[self.collapsed[id(op.ctx)]] = block_sizes.get(self.collapsed[id(op.ctx)], 0) + 1
        for block, count in sorted(block_sizes.items(), key=lambda item: _natural(item[0])):
            summary = f"{block}\n{count} ops, collapsed: the same layers\nas the block drawn in full"
            self.graph.node(_block_key(block), summary, shape="box3d", style="filled", fillcolor="lightyellow")
        clusters: dict[str, list[_Op]] = {}
        for op in self.ops.values():
            if self.visible(op) and id(op.ctx) not in self.collapsed:
                match = _REPEATED.match(op.owner or "") if self.collapsed else None
                clusters.setdefault(match.group(1) if match else "", []).append(op)
        for block, members in clusters.items():
            if not block:
                self.op_nodes(self.graph, members, root)
                continue
            with self.graph.subgraph(name="cluster_" + _block_key(block)) as cluster:
                cluster.attr(label=block, style="dashed")
                self.op_nodes(cluster, members, root)
        for op in self.ops.values():
            if self.visible(op):
                self.connect(op)

    def op_nodes(self, graph, ops: list[_Op], root: Tensor) -> None:
        for op in ops:
            style = {"penwidth": "2"} if op.ctx is root._ctx else {}
            graph.node(
                op.key, _op_label(op, self.show_grad), shape="box", style="rounded,filled", fillcolor="white", **style
            )

    def node_of(self, op: _Op) -> str:
        block = self.collapsed.get(id(op.ctx))
        return _block_key(block) if block else op.key

    def connect(self, op: _Op) -> None:
        """Edges from each input of ``op`` (a gradient path) into it."""
        target = self.node_of(op)
        for slot, tensor in enumerate(op.ctx.inputs):
            if tensor is None:
                continue
            if tensor._ctx is None:
                if id(op.ctx) in self.collapsed:
                    continue  # a collapsed block's own parameters stay inside it
                source = self.leaf(tensor)
            else:
                producer = self.ops[id(tensor._ctx)]
                source = self.node_of(producer) if self.visible(producer) else self.cut_node(producer)
            if source == target:
                continue
            if target.startswith("block") or source.startswith("block"):
                if (source, target) in self.block_edges:
                    continue
                self.block_edges.add((source, target))
            label = str(slot) if len(op.ctx.inputs) > 1 else None
            self.graph.edge(source, target, label=label)

    def leaf(self, tensor: Tensor) -> str:
        if id(tensor) not in self.leaves:
            self.leaves[id(tensor)] = f"leaf{len(self.leaves)}"
            self.graph.node(
                self.leaves[id(tensor)], _leaf_label(tensor, self.labels, self.show_grad), **_leaf_style(tensor)
            )
        return self.leaves[id(tensor)]

    def cut_node(self, producer: _Op) -> str:
        if id(producer.ctx) not in self.cut:
            self.cut[id(producer.ctx)] = f"cut{len(self.cut)}"
            self.graph.node(
                self.cut[id(producer.ctx)],
                f"{producer.ctx.function.__name__} ...\n(deeper than max_depth={self.max_depth})",
                shape="box",
                style="dashed",
            )
        return self.cut[id(producer.ctx)]


def _block_key(block: str) -> str:
    return "block_" + re.sub(r"\W", "_", block)
