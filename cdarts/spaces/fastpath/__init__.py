"""The exact fast path of a supernet cell: edges computed per input node, their shared work done once.

Every edge that reads node ``h`` starts its conv ops with ``relu(h)``, its pools with ``pool(h)`` and its skip with
``h``. The fast path computes those once per node, and (for small activations, see ``cells.BATCH_LIMIT``) runs each
conv op of all those edges as one grouped convolution (the edges' weights concatenated) with one BatchNorm over all
their channels. Strided dilated convs and FactorizedReduce read only every other pixel: they run on that subsample,
taken once per node. Parameters and buffers stay in the per-edge modules, so state dicts and checkpoints are the same
on either path; only the arithmetic is regrouped, which changes results by float rounding only.

Ops the planner does not recognise by structure run edge by edge with their own modules, so any registered
primitive still works.

Modules, in the order a cell uses them:

- ``plan``: which ops run how, and the grouping of a cell's edges by input node (supernet and discrete cells).
- ``layout``: channels-last kept through the backward pass; stride-grid subsamples and pixel phases.
- ``grouped``: the same conv or BatchNorm of several edges as one call.
- ``inputs``: what the edges reading a node derive from it, computed once.
- ``edges``: one primitive for a batch of edges.
- ``cells``: a cell's computed nodes, edge batch by edge batch.
"""
