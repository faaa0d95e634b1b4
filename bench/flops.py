"""`python -m bench.flops`: the work of each captioner and text-LLM stage per painting, counted
on paper from the real model configs (those bench/cpu.py builds), and what it means on a GPU.

Counted per painting of the CPU benchmark (a 1036x756 canvas: 3996 patches of 14 px, 999 merged
vision tokens; a 256-token caption; the span and judge prompts and answers bench-cpu measured):
- FLOPs (a multiply-add is 2) of the linear layers, the attention products (the full
  query x key product, as torch's scaled_dot_product_attention computes it, which is what
  torch.utils.flop_counter counts) and the LM head rows that are computed;
- bytes that must be read: the weights once per forward call of the batch, the KV cache at
  every decoding step.
tests/test_flops.py checks the counts against torch.utils.flop_counter.FlopCounterMode on the
tiny models (the real configs do not fit next to the other helpers' work on this machine; the
formulas are the same for every size).

The GPU times are lower bounds, on paper: max(FLOPs / peak FLOP rate, bytes / memory
bandwidth) per step at the datasheet's dense bfloat16 peak; real kernels reach perhaps half.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

BF16 = 2  # bytes per weight on a GPU (dtype auto)
GPUS = {  # dense bf16 tensor-core peak (FLOP/s), memory bandwidth (B/s): datasheets
    "L4": (121e12, 300e9),
    "A100 80GB": (312e12, 2.04e12),
    "H100 SXM": (989e12, 3.35e12),
}


@dataclass(frozen=True)
class Decoder:
    """The shape of a decoder-only language model (Qwen2 / Qwen3 text part)."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int

    @classmethod
    def of(cls, cfg) -> Decoder:
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        return cls(cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads,
                   head_dim, cfg.intermediate_size, cfg.vocab_size)

    @property
    def layer_params(self) -> int:
        d, q, kv = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim
        return self.layers * (d * q + 2 * d * kv + q * d + 3 * d * self.intermediate)

    def forward_flops(self, new: int, past: int = 0, kept: int = 1) -> float:
        """One call over `new` tokens after `past` cached ones, the head on `kept` positions."""
        attention = 4 * new * (past + new) * self.heads * self.head_dim * self.layers  # QK^T and AV
        return 2 * new * self.layer_params + attention + 2 * kept * self.hidden * self.vocab

    def weight_bytes(self, per: int = BF16) -> float:
        return (self.layer_params + self.hidden * self.vocab) * per

    def kv_bytes(self, tokens: int, per: int = BF16) -> float:
        return 2 * self.layers * self.kv_heads * self.head_dim * tokens * per


@dataclass(frozen=True)
class Vision:
    """Qwen2-VL's vision encoder: patch embedding, full-attention blocks, the 2x2 merger."""

    embed: int
    depth: int
    mlp: int
    patch_in: int  # channels x temporal patch x patch x patch
    merge: int
    out: int

    @classmethod
    def of(cls, cfg) -> Vision:
        v = cfg.vision_config
        return cls(v.embed_dim, v.depth, int(v.embed_dim * v.mlp_ratio),
                   v.in_channels * v.temporal_patch_size * v.patch_size ** 2, v.spatial_merge_size ** 2, v.hidden_size)

    def flops(self, patches: int) -> float:
        e, n = self.embed, patches
        blocks = self.depth * (2 * n * (4 * e * e + 2 * e * self.mlp) + 4 * n * n * e)
        merged = n // self.merge
        merger = 2 * merged * ((self.merge * e) ** 2 + self.merge * e * self.out)
        return 2 * n * self.patch_in * e + blocks + merger

    def params(self) -> int:
        e = self.embed
        return self.patch_in * e + self.depth * (4 * e * e + 2 * e * self.mlp) + (self.merge * e) ** 2 \
            + self.merge * e * self.out


def stage_work(captioner_cfg, text_cfg, *, patches=3996, prompt=1054, caption=256, span_prompt=546,
               span_answer=178, judge_prompt=586, judge_answer=60) -> dict:
    """Per painting: {stage: (flops of its big one-off calls, decoding steps, flops per step,
    weight bytes per call, KV bytes per step)}; describe's prompt includes its image tokens."""
    lm, vis, llm = Decoder.of(captioner_cfg.text_config), Vision.of(captioner_cfg), Decoder.of(text_cfg)
    weights = lm.weight_bytes() + vis.params() * BF16

    def decode(model: Decoder, start: int, n: int) -> float:
        return sum(model.forward_flops(1, start + i) for i in range(n)) / max(n, 1)

    forced = prompt + caption  # a teacher-forced pass over prompt + caption
    return {
        # one vision pass, the prefill, then caption + 1 steps (one past the limit keeps the last state)
        "describe": (vis.flops(patches) + lm.forward_flops(prompt), caption, decode(lm, prompt, caption),
                     weights, lm.kv_bytes(prompt + caption // 2)),
        "reliance": (vis.flops(patches) + lm.forward_flops(forced, kept=caption), 0, 0.0, weights, 0.0),
        "spans": (llm.forward_flops(span_prompt), span_answer, decode(llm, span_prompt, span_answer),
                  llm.weight_bytes(), llm.kv_bytes(span_prompt + span_answer // 2)),
        "metadata": (llm.forward_flops(judge_prompt), judge_answer, decode(llm, judge_prompt, judge_answer),
                     llm.weight_bytes(), llm.kv_bytes(judge_prompt + judge_answer // 2)),
    }


def seconds(work: tuple, gpu: str, batch: int) -> float:
    """Lower bound per painting at this batch size: each call of the batch costs the larger of
    its FLOPs at peak and its bytes at full bandwidth."""
    peak, bandwidth = GPUS[gpu]
    once, steps, per_step, weights, kv = work
    one_off = max(batch * once / peak, weights / bandwidth)
    step = max(batch * per_step / peak, (weights + batch * kv) / bandwidth)
    return (one_off + steps * step) / batch


def main(argv: list[str] | None = None) -> int:
    from bench.cpu import captioner_config, text_llm_config
    from precompute.tiny.qwen2_tokenizer import qwen2vl_tokenizer

    parser = argparse.ArgumentParser(prog="python -m bench.flops", description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8, 32])
    args = parser.parse_args(argv)
    tok = qwen2vl_tokenizer()
    work = stage_work(captioner_config(tok, False), text_llm_config(tok, False))
    print("stage      TFLOP once  steps  GFLOP/step  GB weights  " + "  ".join(
        f"{gpu} b{b}" for gpu in GPUS for b in args.batch))
    for stage, w in work.items():
        times = "  ".join(f"{seconds(w, gpu, b):8.3f}s" for gpu in GPUS for b in args.batch)
        print(f"{stage:9s} {w[0] / 1e12:10.2f} {w[1]:6d} {w[2] / 1e9:11.2f} {w[3] / 1e9:11.2f}  {times}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
