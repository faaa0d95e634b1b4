"""One interface for every map method: `Painting.span_map(method, tokens)` -> a map on the vision grid.

A `Painting` holds one painting's teacher-forced session (precompute.faithfulness.captioner):
the canvas, its blurred baseline, the caption's token ids and the reliance flags. Every method
explains a set of caption tokens (a span's) and returns `MethodMap`: the 8-bit map on the merged
vision grid (gh, gw), min-max stretched like every span map (contract.metrics.stretch_u8), with
the float range it was stretched from. Methods (docs/faithfulness.md has the table):

- `tam-reference`, `tam-corrected`: the Token Activation Map of each token (precompute.tam,
  both variants, from the last-layer states of one teacher-forced pass), the span's map the mean
  of its tokens' maps, as the spanmaps stage does.
- `logit`: TAM's step 1 alone, the raw class-logit map relu(H[image] @ W[c] + b) of each token,
  no ECI, no filter; the span's map their mean.
- `attention`: the last decoder layer's attention from the position that predicts each token
  (where the model decides it) to the image tokens, mean over heads, then over the span's tokens.
  Attention weights exist only in the "eager" attention implementation; the model is switched to
  it for this pass and back. Each head's row sums to 1 over the whole sequence, so the raw map
  sums to the share of attention the tokens give the image, in [0, 1] (the stored `lo`/`hi` are
  of that raw map; tests/test_faithfulness_methods.py checks the sum).
- `gradient`: gradient x input on the image embeddings (the vision tower's merged output that
  replaces the `<|image_pad|>` tokens): d f / d e_i . e_i summed over the hidden dimension, one
  value per merged token, f = the tokens' summed log-likelihood. Signed: positive cells raise the
  score. Cheaper and more direct here than Grad-CAM on the vision features, which would need a
  choice of layer inside the vision tower.
- `igos`: iGOS++ (precompute.faithfulness.igos) with f = the cumulative log-likelihood of the
  span's visually relevant tokens (reliance above the reliance stage's threshold, the caption's
  first token excluded: the paper's Eq. 6-7); a span with none of those uses all its tokens.

Tiled families (InternVL): every map is on the composite grid the record stores. The per-token
methods (TAM, logit, attention, gradient) score every image token, the thumbnail's included (TAM's
ECI and normalisation read them, as describe's do), and place each tile's cells where describe
places them, the thumbnail's left out (Session.on_grid); iGOS++ optimises its mask on the
composite grid directly (upsampled to the canvas, then tiled like any image).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from contract.metrics import span_map, stretch_u8
from precompute.faithfulness.captioner import Session, as_float
from precompute.faithfulness.igos import IgosSettings, igos_map

METHODS = ("tam-reference", "tam-corrected", "logit", "attention", "gradient", "igos")


@dataclass(frozen=True)
class MethodMap:
    u8: np.ndarray  # (gh, gw) uint8, min-max stretched
    lo: float
    hi: float
    tokens: tuple[int, ...]  # the tokens explained (igos: the ones its score used)

    @property
    def unit(self) -> np.ndarray:
        """(gh, gw) float in [0, 1]: what is shown and what deletion and insertion rank by."""
        return self.u8 / 255.0


@dataclass
class Painting:
    session: Session
    image: np.ndarray  # (H, W, 3) float32 in [0, 255], the canvas
    baseline: np.ndarray  # (H, W, 3) float32, the blurred canvas
    visual: list[bool]  # per caption token: visually relevant (reliance stage)
    igos: IgosSettings = IgosSettings()
    ended: bool = True  # the captioner wrote its end token (describe's reference TAM decodes it with the answer)
    _cache: dict = field(default_factory=dict)

    @classmethod
    def open(cls, captioner, canvas, baseline, prompt: str, generated: list[int], visual: list[bool] | None = None,
             igos: IgosSettings | None = None, ended: bool = True,
             stored_tam: dict[str, np.ndarray] | None = None) -> Painting:
        """stored_tam: variant -> (T, gh, gw) maps describe already computed (tam_raw), used as they are."""
        session = Session.open(captioner, canvas, prompt, generated)
        flags = list(visual) if visual is not None else [False] * len(generated)
        if len(flags) != len(generated):
            raise ValueError(f"{len(flags)} visual flags for {len(generated)} tokens")
        cache = {f"tam-{variant}": maps for variant, maps in (stored_tam or {}).items()}
        return cls(session, as_float(canvas), as_float(baseline), flags, igos or IgosSettings(), ended, cache)

    @property
    def grid(self) -> tuple[int, int]:
        return self.session.grid

    def span_map(self, method: str, tokens: list[int]) -> MethodMap:
        tokens = list(tokens)
        if not tokens:
            raise ValueError("a map explains at least one token")
        if min(tokens) < 0 or max(tokens) >= len(self.session.generated):
            raise ValueError(f"token indices {tokens} outside the caption")
        if method in ("tam-reference", "tam-corrected"):
            return _combine(self._tam(method.split("-")[1])[tokens], tokens)
        if method == "logit":
            return _combine(self._per_token("logit", self._logit_maps)[tokens], tokens)
        if method == "attention":
            return _combine(self._per_token("attention", self._attention_maps)[tokens], tokens)
        if method == "gradient":
            return _single(self._gradient_map(tokens), tokens)
        if method == "igos":
            used = self.igos_tokens(tokens)
            heat = igos_map(self.session.torch_scorer(used), self.image, self.baseline, self.grid, self.igos,
                            dtype=_work_dtype(self.session))
            return _single(heat, used)
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")

    def igos_tokens(self, tokens: list[int]) -> list[int]:
        """The span's visually relevant tokens (never the caption's first), else all its tokens."""
        relevant = [t for t in tokens if t > 0 and self.visual[t]]
        return relevant or list(tokens)

    # shared passes, computed once per painting ---------------------------------------------------
    def _per_token(self, key: str, compute) -> np.ndarray:
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def hidden(self) -> torch.Tensor:
        """(S, D) last-layer states after the final norm, one teacher-forced pass on the canvas."""
        if "hidden" not in self._cache:
            s = self.session
            with torch.inference_mode():
                self._cache["hidden"] = s.model.model(**s.forced).last_hidden_state[0]
        return self._cache["hidden"]

    def _tam(self, variant: str) -> np.ndarray:
        """(T, gh, gw) TAM of every caption token in [0, 1], as describe computes it."""
        key = f"tam-{variant}"
        if key not in self._cache:
            from precompute.stages.describe import reference_inputs
            from precompute.tam import compute_tam

            s, hidden = self.session, self.hidden()
            tok = s.captioner.processor.tokenizer
            ids = s.forced["input_ids"][0]
            image_pos, prompt_pos = prompt_layout(s)
            head = s.model.get_output_embeddings()
            reference = None
            if variant == "reference":
                end = [tok.convert_tokens_to_ids("<|im_end|>")] if self.ended else []  # as describe decodes it
                prompt_ids = [int(ids[i]) for i in prompt_pos]
                reference, _ = reference_inputs(tok, hidden, head, prompt_ids, s.generated + end,
                                                prompt_pos[0] if prompt_pos else None)
            gen_pos = torch.arange(s.n_prompt, s.n_prompt + len(s.generated))
            tam = compute_tam(hidden, head.weight, ids.cpu(), torch.tensor(image_pos), s.grid, torch.tensor(prompt_pos),
                              gen_pos, lm_head_bias=head.bias, reference=reference, tiling=s.tiling)
            self._cache[key] = tam.maps
        return self._cache[key]

    def _logit_maps(self) -> np.ndarray:
        """(T, gh, gw): relu(H[image] @ W[c] + b) for each token's class c (TAM's step 1)."""
        s, hidden = self.session, self.hidden()
        head = s.model.get_output_embeddings()
        with torch.inference_mode():
            ids = torch.tensor(s.generated, device=head.weight.device)
            rows = head.weight.index_select(0, ids)  # (T, D)
            logits = hidden[s.image_pos.to(hidden.device)] @ rows.T  # (N, T)
            if head.bias is not None:
                logits = logits + head.bias.index_select(0, ids)
            maps = logits.clamp_min(0).T.double().cpu().numpy()  # (T, N)
        return s.on_grid(maps)

    def _attention_maps(self) -> np.ndarray:
        """(T, gh, gw): last-layer attention from each token's predicting position to the image,
        mean over heads (raw weights: each cell a share of the row's attention)."""
        s = self.session
        weights = last_layer_attention(s)  # (heads, S, S)
        rows = torch.arange(s.n_prompt - 1, s.n_prompt - 1 + len(s.generated))
        picked = weights[:, rows][:, :, s.image_pos]  # (heads, T, N)
        return s.on_grid(picked.mean(0).double().numpy())  # (T, N) -> (T, gh, gw)

    def _gradient_map(self, tokens: list[int]) -> np.ndarray:
        """(gh, gw): gradient x input on the image embeddings, summed over the hidden dimension."""
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        s = self.session
        model = s.model
        kw = {k: v for k, v in s.forced.items() if k != "pixel_values"}
        if s.tiling is not None:
            return self._tiled_gradient_map(tokens, kw)
        with torch.no_grad():
            features = torch.cat(model.model.get_image_features(s.forced["pixel_values"], s.forced["image_grid_thw"],
                                                                return_dict=True).pooler_output)  # (N, D)
        features = features.detach().requires_grad_(True)
        with torch.enable_grad():
            encoded = {"image": BaseModelOutputWithPooling(pooler_output=(features,))}
            score = s.logprobs_of(kw, tokens, mm_encoder_outputs=encoded).sum()
            (grad,) = torch.autograd.grad(score, features)
        return (grad * features).sum(-1).detach().double().cpu().numpy().reshape(s.grid)

    def _tiled_gradient_map(self, tokens: list[int], kw: dict) -> np.ndarray:
        """The gradient map of a tiled family: the projector's output for every tile (the
        thumbnail's included; LLaVA-OneVision: the base's and the row newlines' too) as the image
        embeddings, their cells placed on the composite grid (Session.on_grid)."""
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        s = self.session
        config = s.model.config
        with torch.no_grad():
            if s.anyres:  # LLaVA-OneVision: one (N, D) run per image, base, crops and row newlines packed
                out = torch.cat(s.model.model.get_image_features(
                    s.forced["pixel_values"], s.forced["image_sizes"], vision_feature_layer=config.vision_feature_layer,
                    vision_feature_select_strategy=config.vision_feature_select_strategy,
                    vision_aspect_ratio=config.vision_aspect_ratio, batch_num_images=s.forced.get("batch_num_images"),
                    return_dict=True).pooler_output)
            else:
                out = s.model.model.get_image_features(s.forced["pixel_values"],
                                                       vision_feature_layer=config.vision_feature_layer,
                                                       vision_feature_select_strategy=config.vision_feature_select_strategy,
                                                       return_dict=True).pooler_output  # (tiles, tokens per tile, D)
        features = out.reshape(-1, out.shape[-1]).detach().requires_grad_(True)  # (N, D), token order
        with torch.enable_grad():
            # LLaVA-OneVision's forward concatenates a list of per-image features, InternVL's takes the tensor
            encoded = {"image": BaseModelOutputWithPooling(pooler_output=(features,) if s.anyres else features)}
            score = s.logprobs_of(kw, tokens, mm_encoder_outputs=encoded).sum()
            (grad,) = torch.autograd.grad(score, features)
        values = (grad * features).sum(-1).detach().double().cpu().numpy()  # (N,)
        return s.on_grid(values[None])[0]


def _work_dtype(session: Session) -> torch.dtype:
    return torch.float64 if session.dtype == torch.float64 else torch.float32


def _combine(maps: np.ndarray, tokens: list[int]) -> MethodMap:
    u8, lo, hi = span_map(maps, "mean")
    return MethodMap(u8, lo, hi, tuple(tokens))


def _single(values: np.ndarray, tokens: list[int]) -> MethodMap:
    if not np.isfinite(values).all():
        raise FloatingPointError("the map holds NaN or infinite values")
    u8, lo, hi = stretch_u8(values)
    return MethodMap(u8, lo, hi, tuple(tokens))


def prompt_layout(session: Session) -> tuple[list[int], list[int]]:
    """(image positions, prompt-text positions), as describe finds them."""
    captioner = session.captioner
    return captioner.family.layout(session.forced["input_ids"][0, :session.n_prompt].tolist(),
                                   captioner.processor.tokenizer)


def last_layer_attention(session: Session) -> torch.Tensor:
    """(heads, S, S) attention weights of the last decoder layer on the canvas (eager attention,
    switched on for this pass only; a hook keeps the last layer's weights and nothing else)."""
    model = session.model
    layer = model.model.language_model.layers[-1].self_attn
    kept: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda module, args, out: kept.append(out[1].detach()))
    previous = model.config.text_config._attn_implementation
    try:
        model.set_attn_implementation("eager")
        with torch.inference_mode():
            model.model(**session.forced)
    finally:
        handle.remove()
        model.set_attn_implementation(previous)
    if not kept or kept[0] is None:
        raise RuntimeError("the last layer returned no attention weights (not the eager implementation?)")
    return kept[0][0].float().cpu() if kept[0].dtype != torch.float64 else kept[0][0].cpu()
