"""Qwen3.5: Qwen3-VL's prompt layout (the same image run and chat turns, 16-px patches merged
2x2: one grid cell per 32x32 px) on a language model that mixes gated-delta-net (linear
attention) and full-attention layers; the final norm's output is still what the LM head reads
(tied to the embedding or not, as the checkpoint's config says: get_output_embeddings returns it
either way).

Its chat template opens a thinking block after `<|im_start|>assistant\\n` unless told
enable_thinking=False, which closes it empty (`<think>\\n\\n</think>\\n\\n`): the caption is then
the answer itself, and the prompt ends on that block's last token."""

from precompute.families.base import Family

QWEN3_5 = Family("qwen3_5", "Qwen3.5", "Qwen3_5ForConditionalGeneration", factor=32,
                 chat_options={"enable_thinking": False})
