"""Compile-time graph passes, one per module, run in the order ``run_passes`` gives."""
from .static_shapes import bind_input_shapes
from .infer import infer_and_fold
from .simplify import remove_identities, remove_dead_nodes
from .fold_batchnorm import fold_batchnorm
from .fuse import fuse_epilogues, fuse_residuals
from .fuse_attention import fuse_attention
from .fuse_bias import fuse_matmul_bias
from .fuse_gelu import fuse_gelu
from .fuse_layernorm import fuse_layernorm, fuse_residual_layernorm
from .fuse_silu import fuse_silu
from .fuse_squeeze_excite import fuse_squeeze_excite


def run_passes(graph, batch_size, input_shapes, fuse=True):
    """Bind static shapes, infer/fold, fold BatchNorm into Conv, drop no-ops and dead nodes, fuse.

    Fusion recognises decomposed LayerNorm and attention, folds MatMul biases,
    recognises Gelu, fuses residual adds, then SiLU and other activations into epilogues, then
    folds the residual adds left before LayerNorms into them and
    squeeze-and-excitation blocks into one op each.
    """
    bind_input_shapes(graph, batch_size, input_shapes)
    remove_identities(graph)
    infer_and_fold(graph)
    fold_batchnorm(graph)
    remove_dead_nodes(graph)
    if fuse:
        fuse_layernorm(graph)
        fuse_attention(graph)
        fuse_matmul_bias(graph)
        fuse_gelu(graph)
        fuse_residuals(graph)
        fuse_silu(graph)
        fuse_epilogues(graph)
        fuse_residual_layernorm(graph)
        fuse_squeeze_excite(graph)
    return graph
