"""Is a map faithful to what the model used? Deletion and insertion scores, and the maps of
other methods to compare TAM with (Xing et al. 2025, "Where do Large Vision-Language Models
Look at when Answering Questions?", section 4; docs/faithfulness.md).

- `curves`: deletion and insertion curves and their areas for any map and any scorer (numpy,
  no torch): the metric core.
- `igos`: iGOS++ as the paper extends it to LVLMs (one mask, deletion + insertion against the
  blurred baseline, L1 + bilateral TV + the decaying L2 term, integrated gradients), for any
  differentiable scorer (torch).
- `captioner`: the captioner as a scorer: images -> log-likelihood of chosen caption tokens
  under teacher forcing, batched, differentiable through the image.
- `methods`: one interface, `span_map(method, ...)`, producing a map on the vision grid for a
  set of caption tokens: TAM (both variants), the raw class-logit map, last-layer attention,
  gradient x input, iGOS++.
"""
