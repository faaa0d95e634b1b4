"""Greedy captioning with one vision pass: the caption ids, the last-layer states TAM reads and
log P(token | image) for reliance, all taken while the captioner generates.

Before, describe ran generate and then a second, teacher-forced pass over prompt + caption for
the states (the vision encoder twice), and reliance a third pass for log P(token | image). Here
two forward hooks record what generation computes anyway:

- the final norm of the language model (its output is what the LM head reads, the
  `last_hidden_state` of a teacher-forced pass): the prefill gives (B, P, D) for the prompt,
  every decoding step (B, 1, D) for the token fed at that step. Concatenated along the
  sequence they are (B, P + steps, D), column P + t holding generated token t: the layout of
  the teacher-forced pass over prompt + caption.
- the LM head: each step's logits (B, 1, V) give the log-sum-exp (float64, the normaliser of
  log P) and stay until the next step's input embedding says which token was chosen; then the
  chosen token's logit is kept. Only (B,) numbers per step are kept, never (steps, V).
The token fed at the last step is the last one whose state exists, so generation runs one
step past `max_new_tokens` and drops that extra token: the caption's last token then has its
state, whether or not an end token follows it (cost: one decoding step).

Batches: prompts are left-padded (the processor, padding_side="left") with an attention mask;
generate computes Qwen2-VL's M-RoPE positions with the model's own get_rope_index given that
mask, so a padded row sees the positions its unpadded prompt would. Row b's states are columns
pad_b .. P_max + T_b - 1 of the concatenated tensor.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass
class Generation:
    """One row of a generation: everything describe and reliance need from it."""

    prompt_ids: list[int]  # the prompt's ids without padding (P,)
    answer: list[int]  # every generated id up to and including the first end token generate stops on (<= max_new_tokens)
    hidden: Any  # torch (P + n, D): last-layer states after the final norm, n = len(answer) fed tokens at most
    logp: Any  # torch float64 (len(answer),): log P(answer[t] | prompt, image, answer[:t]) from the raw logits


class StepRecorder:
    """Forward hooks that keep the final-norm states, the logits' log-sum-exp and the chosen
    token's logit of every generation step (see the module docstring). Use as a context manager."""

    def __init__(self, model, norm, head):
        self.model, self.norm, self.head = model, norm, head  # norm, head: the family's (precompute.families)
        self.states: list = []  # per call: (B, s, D)
        self.lse: list = []  # per step: (B,) float64
        self.picked: list = []  # per step: (B,) float64, the logit of the token chosen at that step
        self._pending = None  # (B, V): the last step's logits, until its token is fed

    def __enter__(self):
        model = self.model
        self.handles = [self.norm.register_forward_hook(self._on_norm),
                        self.head.register_forward_hook(self._on_head),
                        model.get_input_embeddings().register_forward_pre_hook(self._on_input)]
        return self

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()
        self._pending = None
        return False

    def _on_norm(self, module, args, output):
        self.states.append(output)

    def _on_head(self, module, args, output):
        last = output[:, -1]  # (B, V): the logits predicting the next token
        self.lse.append(last.double().logsumexp(-1))
        self._pending = last

    def _on_input(self, module, args):
        ids = args[0]  # (B, s): at a decoding step s = 1, the token chosen from the pending logits
        if self._pending is not None and ids.shape[-1] == 1:
            self.picked.append(self._pending.gather(1, ids.to(self._pending.device)).double()[:, 0])
            self._pending = None


def generate_greedy(captioner, inputs, max_new_tokens: int, **generate_kwargs) -> list[Generation]:
    """Greedy generation of up to `max_new_tokens` for each row of `inputs` (processor outputs,
    left-padded when B > 1), with the states and log-probabilities of the module docstring.
    The one place describe calls `generate`; extra keyword arguments go to it."""
    import torch

    model = captioner.model
    ids = inputs["input_ids"]  # (B, P_max)
    mask = inputs.get("attention_mask")
    if mask is None:
        mask = torch.ones_like(ids)
    n_prompt = ids.shape[1]
    family = captioner.family
    with torch.inference_mode(), StepRecorder(model, family.final_norm(model), family.lm_head(model)) as rec:
        out = model.generate(**inputs, max_new_tokens=max_new_tokens + 1, do_sample=False, **generate_kwargs)
    states = torch.cat(rec.states, dim=1)  # (B, P_max + steps, D); steps = generated - 1
    lse = torch.stack(rec.lse, dim=1)  # (B, steps + 1)
    picked = torch.stack(rec.picked, dim=1) if rec.picked else lse[:, :0]  # (B, steps)
    stops = set(_ids(model.generation_config.eos_token_id))
    rows = []
    for b in range(ids.shape[0]):
        pad = int((mask[b] == 0).sum())
        answer = out[b, n_prompt:n_prompt + max_new_tokens].tolist()
        end = next((i for i, t in enumerate(answer) if t in stops), None)
        if end is not None:
            answer = answer[:end + 1]  # after its end token a row of a batch is padding
        # answer[t] was picked at step t and fed at step t + 1 (column P_max + t); t < steps exist
        n = min(len(answer), picked.shape[1])
        logp = picked[b, :n] - lse[b, :n]  # (n,)
        rows.append(Generation(prompt_ids=ids[b, pad:].tolist(), answer=answer,
                               hidden=states[b, pad:n_prompt + n], logp=logp))
    return rows


def _ids(value) -> Iterable[int]:
    if value is None:
        return []
    return [value] if isinstance(value, int) else list(value)
