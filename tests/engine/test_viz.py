"""tinygrad_tx.viz: the drawn graph has exactly the ops, leaves and gradient paths backward() walks."""

import re

import graphviz
import numpy as np
import pytest

from models import GPT, GPTConfig, Head
from tinygrad_tx import GraphError, Tensor, TinygradTxError
from tinygrad_tx.viz import GraphvizMissingError, draw_graph, has_dot, retain_all_grads, save_graph


def counts(graph):
    """(ops, leaves, edges, collapsed blocks, cut nodes) in a drawn graph's DOT body."""
    body = [line.strip() for line in graph.body]
    edges = [line for line in body if " -> " in line]
    named = {
        kind: sum(1 for line in body if re.match(rf"{kind}\w* \[", line)) for kind in ("op", "leaf", "block", "cut")
    }
    return named["op"], named["leaf"], len(edges), named["block"], named["cut"]


def label_of(graph, node):
    line = next(line for line in graph.body if line.strip().startswith(f"{node} ["))
    return re.search(r'label="([^"]*)"', line).group(1)


def small_graph():
    x = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    y = Tensor(np.full((2, 3), 2.0), requires_grad=True)
    return x, y, (x * y + x).sum()


def test_small_graph_has_one_node_per_op_and_leaf_and_one_edge_per_gradient_path():
    x, y, z = small_graph()
    graph = draw_graph(z, names={"x": x, "y": y})
    # Mul(x, y), Add(mul, x), Sum(add): 3 ops, 2 leaves; x feeds two ops, so 2 + 2 + 1 edges
    assert counts(graph) == (3, 2, 5, 0, 0)
    assert label_of(graph, "op0").startswith("Sum\n() float32")
    assert "saved: (2, 3), (2, 3)" in label_of(graph, "op2")  # Mul keeps both operands
    assert label_of(graph, "leaf0").startswith("x\n(2, 3) float32")
    assert "requires_grad" in label_of(graph, "leaf0")


def test_same_tensor_used_twice_in_one_op_gives_two_edges():
    x = Tensor([1.0, 2.0], requires_grad=True)
    graph = draw_graph((x * x).sum())
    assert counts(graph) == (2, 1, 3, 0, 0)


def test_constants_are_not_nodes_but_are_flagged_on_the_op():
    x = Tensor(np.ones((2, 2)), requires_grad=True)
    constant = Tensor(np.ones((2, 2)))
    graph = draw_graph((x * constant).sum())
    assert counts(graph) == (2, 1, 2, 0, 0)
    assert "inputs: grad, const" in label_of(graph, "op1")


def test_a_leaf_alone_is_one_node():
    x = Tensor([3.0], requires_grad=True)
    assert counts(draw_graph(x)) == (0, 1, 0, 0, 0)


def test_gradients_shown_after_backward_with_retained_graph():
    x, y, z = small_graph()
    retain_all_grads(z)
    z.backward(retain_graph=True)
    graph = draw_graph(z, names={"x": x, "y": y}, show_grad=True)
    assert "grad () float32 [1]" in label_of(graph, "op0")
    # dz/dy = x = [0..5]: its norm is sqrt(55)
    assert f"|g|={np.sqrt(55):.4g}" in label_of(graph, "leaf1")
    assert "grad" not in label_of(draw_graph(z, names={"y": y}), "leaf1").replace("requires_grad", "")


def test_a_freed_graph_is_refused_with_the_fix():
    _, _, z = small_graph()
    z.backward()
    with pytest.raises(GraphError, match="retain_graph=True"):
        draw_graph(z)


def test_head_parameters_are_named_by_module_path():
    head = Head(n_embd=8, head_size=4, block_size=6)
    out = head(Tensor(np.random.default_rng(0).standard_normal((1, 6, 8))))
    graph = draw_graph(out.sum(), module=head)
    names = sorted(label_of(graph, f"leaf{i}").split("\n")[0] for i in range(3))
    assert names == ["key.weight", "query.weight", "value.weight"]
    # 3 Linear, Permute (k^T), MatMul (q k^T), Mul (scale), Where (mask), Softmax, MatMul (@ v), Sum
    assert counts(graph) == (10, 3, 12, 0, 0)


def gpt_loss(n_layer):
    model = GPT(GPTConfig(block_size=8, vocab_size=11, n_layer=n_layer, n_head=2, n_embd=8))
    idx = np.random.default_rng(0).integers(0, 11, (2, 8))
    return model, model(idx, idx)[1]


def test_repeated_blocks_collapse_to_one_node_each():
    model, loss = gpt_loss(n_layer=3)
    full, collapsed = draw_graph(loss, module=model, collapse_repeats=False), draw_graph(loss, module=model)
    ops_full, leaves_full, _, _, _ = counts(full)
    ops, leaves, _, blocks, _ = counts(collapsed)
    per_block = (ops_full - ops) // 2
    assert blocks == 2 and per_block > 10 and ops_full == ops + 2 * per_block
    assert leaves_full - leaves == 2 * 12  # each hidden block keeps its 12 parameters inside
    assert "transformer.h.1\n" in label_of(collapsed, "block_transformer_h_1")
    assert "transformer.wte.weight = lm_head.weight" in collapsed.source  # the tied weight, both names
    assert "subgraph cluster_block_transformer_h_0" in collapsed.source


def test_max_depth_keeps_ops_near_the_output_and_marks_the_cut():
    model, loss = gpt_loss(n_layer=1)
    graph = draw_graph(loss, module=model, max_depth=1)
    ops, _, _, _, cuts = counts(graph)
    assert ops == 2 and cuts == 1  # CrossEntropy, LinearFunction (lm_head); LayerNormFunction cut
    assert "LayerNormFunction ..." in label_of(graph, "cut0")
    with pytest.raises(TinygradTxError, match="max_depth"):
        draw_graph(loss, max_depth=-1)


def test_dot_text_is_written_without_graphviz(tmp_path):
    _, _, z = small_graph()
    path = save_graph(draw_graph(z), tmp_path / "graph.dot")
    assert path.read_text().startswith("digraph backward {")
    with pytest.raises(TinygradTxError, match="unknown format"):
        save_graph(draw_graph(z), tmp_path / "graph.jpg")


def test_render_without_dot_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr("tinygrad_tx.viz.shutil.which", lambda program: None)
    _, _, z = small_graph()
    with pytest.raises(GraphvizMissingError, match="apt-get install graphviz"):
        save_graph(draw_graph(z), tmp_path / "graph.svg")
    assert not list(tmp_path.iterdir())


@pytest.mark.skipif(not has_dot(), reason="the Graphviz 'dot' program is not installed (apt-get install graphviz)")
def test_real_render_to_svg_and_png(tmp_path):
    head = Head(n_embd=8, head_size=4, block_size=6)
    graph = draw_graph(head(Tensor(np.ones((1, 6, 8)))).sum(), module=head)
    svg = save_graph(graph, tmp_path / "head.svg").read_text()
    assert svg.count('class="node"') == 13 and svg.count('class="edge"') == 12
    assert "query.weight" in svg
    png = save_graph(graph, tmp_path / "head.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
    assert not list(tmp_path.glob("*.part"))


def test_a_notebook_shows_the_graph_without_dot(monkeypatch):
    """Regression (issue 24): displaying draw_graph's result without Graphviz raised ExecutableNotFound and
    stopped the notebook; it now shows the DOT text under a one-line hint."""
    monkeypatch.setattr("tinygrad_tx.viz.shutil.which", lambda program: None)
    monkeypatch.setenv("PATH", "")  # graphviz itself looks for dot on PATH
    _, _, z = small_graph()
    graph = draw_graph(z)
    shown = graph._repr_mimebundle_()  # what IPython calls to display the last value of a cell
    hint, _, text = shown["text/plain"].partition("\n")
    assert "apt-get install graphviz" in hint and text == graph.source and text.startswith("digraph backward")
    assert isinstance(graph, graphviz.Digraph)


@pytest.mark.skipif(not has_dot(), reason="the Graphviz 'dot' program is not installed (apt-get install graphviz)")
def test_a_notebook_shows_the_graph_as_svg_with_dot():
    _, _, z = small_graph()
    assert draw_graph(z)._repr_mimebundle_()["image/svg+xml"].lstrip().startswith("<?xml")
