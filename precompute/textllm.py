"""The text LLM of the span classifier and the metadata judge: any causal LM with a chat
template (default Qwen/Qwen3-4B-Instruct-2507), hub id or folder, loaded on first use,
answering greedily."""

from __future__ import annotations

from contract.schema import ModelRef
from precompute.models import Lazy, load_with_processor, model_revision, text_llm_problems

DEFAULT_MODEL = "Qwen/Qwen3-4B-Instruct-2507"
NO_LLM = "lexicon"  # the model name that means "no LLM": the built-in baselines run instead


class TextLLM:
    def __init__(self, model_id: str, device: str, dtype: str, revision: str | None, max_new_tokens: int,
                 stage: str, offline: bool = False, device_map=None):
        self.model_id, self.revision, self.max_new_tokens = model_id, revision, max_new_tokens
        self.offline, self.device_map = offline, device_map
        self._lazy = Lazy(lambda: self._load(device, dtype), stage)

    def _load(self, device_name: str, dtype_name: str):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        return load_with_processor(AutoTokenizer.from_pretrained, AutoModelForCausalLM.from_pretrained,
                                   self.model_id, "text LLM", device_name, dtype_name, self.revision,
                                   problems=text_llm_problems, offline=self.offline, device_map=self.device_map)

    def use_loaded(self, tokenizer, model) -> None:
        """Answer with this tokenizer and model instead of loading `model_id` (a benchmark's)."""
        self._lazy = Lazy.holding((tokenizer, model), self._lazy.stage)

    @property
    def loaded(self) -> bool:
        return self._lazy.loaded

    def ref(self) -> ModelRef:
        _, model = self._lazy.get()
        return ModelRef(id=self.model_id, revision=model_revision(model, self.model_id, self.revision))

    def generate(self, messages: list[dict]) -> str:
        """The model's answer to a chat (list of {role, content}), special tokens removed."""
        return self.generate_batch([messages])[0]

    def generate_batch(self, chats: list[list[dict]]) -> list[str]:
        """Each chat's answer, the chats run through the model at once (a GPU's throughput grows
        with the batch). Rows are left-padded with an attention mask, so every row's answer
        starts at the same column and generate's position ids (from the mask) are the row's own:
        each answer is the one the chat gets alone (tests/test_text_batches.py)."""
        import torch

        tokenizer, model = self._lazy.get()
        rows = [tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_dict=True)["input_ids"]
                for chat in chats]
        rows = [list(r[0]) if r and isinstance(r[0], list) else list(r) for r in rows]
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        width = max(len(r) for r in rows)
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=model.device)  # (B, L)
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=model.device)
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=self.max_new_tokens,
                                 do_sample=False, pad_token_id=pad)  # (B, L + new)
        # rows that ended early are filled with the pad token: a special token, dropped here
        return [tokenizer.decode(row[width:], skip_special_tokens=True) for row in out]
