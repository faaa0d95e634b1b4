"""Loading models by hub id or local folder: offline first, one clear error when weights are missing.

Shared by every stage: `resolve_device`, `resolve_dtype`, `load_pretrained` (which asks
precompute.hub whether the hub may be reached, and turns the many ways a missing model fails into
one `ModelNotAvailable` message), and
the captioner loader, which picks the family adapter (precompute.families) from the checkpoint's
config and refuses, before reading the weights, a checkpoint whose tokenizer lacks the special
tokens tamscope reads or disagrees with its config.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from precompute.families import Family, family_for, supported
from precompute.hub import HubAccess, cache_only, hub_access
from precompute.placement import execution_device
from precompute.progress import on_terminal

DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
          "float16": "float16", "fp16": "float16", "float64": "float64", "fp64": "float64"}



class ModelNotAvailable(RuntimeError):
    """The weights of a model are not on this machine (or the id/folder is wrong)."""


def resolve_device(name: str = "auto"):
    import torch

    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_dtype(name: str, device) -> Any:
    """auto: bfloat16 on a GPU, float32 on the CPU (bf16 decode is slower there, see docs)."""
    import torch

    if name == "auto":
        return torch.bfloat16 if device.type in ("cuda", "mps") else torch.float32
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; use auto, {', '.join(sorted(set(DTYPES.values())))}")
    return getattr(torch, DTYPES[name])


def looks_like_path(model_id: str) -> bool:
    return model_id.startswith((".", "/", "~")) or Path(model_id).expanduser().exists()


def missing_message(model_id: str, role: str, access: HubAccess | None = None) -> str:
    if looks_like_path(model_id):
        return (f"{role} model folder {model_id!r} does not exist or holds no weights; "
                f"pass a folder made by save_pretrained or `huggingface-cli download` (config.json + *.safetensors)")
    if access is not None and access.online:
        return (f"{role} model {model_id!r} is not on this machine and {access.endpoint} does not have it "
                f"(a wrong id or --revision, or a gated model: `huggingface-cli login`).")
    why = "offline mode"
    if access is not None:
        why += f": {access.endpoint} cannot be reached" if access.reason == "unreachable" else f": {access.reason}"
    return (f"{role} model {model_id!r} is not on this machine ({why}). Download it where there is "
            f"internet (`huggingface-cli download {model_id} --local-dir models/{model_id.split('/')[-1]}`) and "
            f"pass that folder, or set HF_HOME to a cache that holds it, or run with internet (without --offline) "
            f"to download it.")


def load_pretrained(loader, model_id: str, role: str, offline: bool = False, **kwargs):
    """`loader(model_id, **kwargs)` (a from_pretrained), with missing weights as ModelNotAvailable.

    A hub id downloads when the hub answers (precompute.hub), else comes from the cache only
    (`local_files_only`: nothing touches the network); a local folder never needs the network."""
    access = None if looks_like_path(model_id) else hub_access(offline)
    local = access is None or not access.online
    if local:
        kwargs["local_files_only"] = True
    if not on_terminal():  # transformers' bars are carriage-return redraws: noise in a job log
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    path = Path(model_id).expanduser()
    if looks_like_path(model_id) and not (path / "config.json").is_file() and not (
            path / "preprocessor_config.json").is_file() and not (path / "tokenizer_config.json").is_file():
        raise ModelNotAvailable(missing_message(model_id, role))
    try:
        with cache_only() if local else nullcontext():
            return loader(str(path) if looks_like_path(model_id) else model_id, **kwargs)
    except (OSError, ValueError) as exc:  # HF raises OSError/EnvironmentError subclasses for missing files
        text = str(exc)
        if any(hint in text for hint in ("offline", "does not appear to have", "not a local folder",
                                         "Can't load", "couldn't connect", "not found", "is not a valid",
                                         "No such file", "LocalEntryNotFound", "outgoing traffic")):
            raise ModelNotAvailable(missing_message(model_id, role, access)) from None
        raise


class Lazy:
    """A model loaded on the first painting that needs it.

    A stage whose paintings are all done never loads its model; a missing model fails once,
    with one printed line, and every later painting gets the same error without retrying.
    """

    def __init__(self, load: Callable[[], Any], stage: str):
        self.load, self.stage = load, stage
        self.value: Any = None
        self.error: ModelNotAvailable | None = None

    @classmethod
    def holding(cls, value: Any, stage: str) -> Lazy:
        """A loader that already holds its model, built elsewhere (a benchmark builds real
        architectures from their configs, since nothing can be downloaded)."""
        lazy = cls(lambda: value, stage)
        lazy.value = value
        return lazy

    def get(self) -> Any:
        if self.error is not None:
            raise self.error
        if self.value is None:
            try:
                self.value = self.load()
            except ModelNotAvailable as exc:
                self.error = exc
                print(f"{self.stage}: {exc}")
                raise
        return self.value

    @property
    def loaded(self) -> bool:
        return self.value is not None


def model_revision(model, model_id: str, revision: str | None) -> str:
    """The commit of the weights when loaded from the hub cache, 'local' for a folder."""
    if looks_like_path(model_id):
        return "local"
    return getattr(model.config, "_commit_hash", None) or revision or "unknown"


@dataclass
class Captioner:
    model: Any  # the family's transformers class, e.g. Qwen2VLForConditionalGeneration
    processor: Any
    model_id: str
    revision: str
    device: Any
    dtype: Any
    family: Family | None = None  # None: the one of model.config.model_type

    def __post_init__(self):
        if self.family is None:
            self.family = family_for(self.model.config.model_type)
            if self.family is None:
                raise ModelNotAvailable(unsupported_message(self.model_id, self.model.config.model_type))

    @property
    def image_token_id(self) -> int:
        return self.model.config.image_token_id

    @property
    def merge_size(self) -> int:
        return self.processor.image_processor.merge_size


def load_with_processor(processor_loader, model_loader, model_id: str, role: str, device: str = "auto",
                        dtype: str = "auto", revision: str | None = None,
                        problems: Callable[[Any], list[str]] | None = None, offline: bool = False,
                        device_map=None, offload_folder: str | None = None) -> tuple[Any, Any]:
    """(processor or tokenizer, model in eval mode on its device): how every stage loads a model.

    problems(processor): what makes the checkpoint unusable, checked before the weights are read;
    any at all raise one ModelNotAvailable that lists them. device_map: accelerate's placement
    (a strategy such as "auto" or {module: device}); layers that go to "disk" are written to
    `offload_folder` (a temporary folder by default); --device then only chooses the dtype."""
    dev = resolve_device(device)
    kw = {"revision": revision} if revision else {}
    processor = load_pretrained(processor_loader, model_id, role, offline, **kw)
    found = problems(processor) if problems else []
    if found:
        raise ModelNotAvailable(f"{role} {model_id!r} cannot be used: " + "; ".join(found))
    if device_map is not None:
        import tempfile

        kw["device_map"] = device_map
        kw["offload_folder"] = offload_folder or tempfile.mkdtemp(prefix="tamscope-offload-")
    model = load_pretrained(model_loader, model_id, role, offline, dtype=resolve_dtype(dtype, dev), **kw)
    if device_map is not None:  # placed by accelerate: nothing is moved here
        placed = sorted({str(d) for d in getattr(model, "hf_device_map", {}).values()})
        tqdm.write(f"{role}: {model_id} spread over {', '.join(placed)} ({resource_note(model.dtype, dev)})")
        return processor, model.eval()
    tqdm.write(f"{role}: {model_id} on {dev} ({resource_note(model.dtype, dev)})")
    return processor, model.to(dev).eval()


def resource_note(dtype, device) -> str:
    """'float32, 2 CPU threads': what a job log needs to tell whether torch uses its allocation
    (torch takes its thread count from OMP_NUM_THREADS, else from the machine's cores)."""
    import torch

    note = str(dtype).replace("torch.", "")
    if device.type == "cpu":
        threads = torch.get_num_threads()
        note += f", {threads} CPU thread{'s' if threads != 1 else ''}"
    return note


def unsupported_message(model_id: str, model_type: str | None) -> str:
    return (f"captioner {model_id!r} is a {model_type!r} model; tamscope's captioner families are "
            f"{supported()} (docs/models.md)")


def text_llm_problems(tokenizer) -> list[str]:
    """The text LLM is asked through its chat template (any chat model, no particular tokens)."""
    return [] if getattr(tokenizer, "chat_template", None) else ["it has no chat template (not a chat model?)"]


def load_captioner(model_id: str, device: str = "auto", dtype: str = "auto", revision: str | None = None,
                   offline: bool = False, device_map=None, offload_folder: str | None = None) -> Captioner:
    from transformers import AutoConfig, AutoProcessor

    config = load_pretrained(AutoConfig.from_pretrained, model_id, "captioner", offline,
                             **({"revision": revision} if revision else {}))
    family = family_for(config.model_type)
    if family is None:
        raise ModelNotAvailable(unsupported_message(model_id, config.model_type))
    processor, model = load_with_processor(AutoProcessor.from_pretrained, family.model_class().from_pretrained,
                                           model_id, "captioner", device, dtype, revision,
                                           problems=lambda proc: family.problems(config, proc), offline=offline,
                                           device_map=device_map, offload_folder=offload_folder)
    # inputs go where the embedding is (with a device map, the model's first device may be another)
    device = execution_device(model.get_input_embeddings()) if device_map is not None else model.device
    return Captioner(model, processor, model_id, model_revision(model, model_id, revision), device, model.dtype,
                     family)
