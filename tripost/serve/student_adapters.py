"""serve-student's LoRA adapter routes (vLLM's runtime LoRA API):
loading an adapter folder under a name, and dropping it again
(`AdapterRoutes`, which StudentService takes them from), and undoing a
load that failed (`Snapshot`)."""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tripost.errors import TripostError
from tripost.serve.student_requests import RequestError, flag
from tripost.student.load import load_adapter

log = logging.getLogger("tripost.serve.student")


class Snapshot:
    """What loading an adapter may change in the served model, taken before
    the load so that a failed one can be undone completely: each module's
    children (PEFT swaps target layers for LoRA layers), each parameter's
    requires_grad, each module's train/eval mode, and, for a PEFT model, its
    adapters and the active one."""

    def __init__(self, model: Any):
        from peft import PeftModel

        self.model = model
        modules = list(model.modules())
        self.children = [(m, dict(m._modules)) for m in modules]
        self.training = [(m, m.training) for m in modules]
        self.grads = [(p, p.requires_grad) for p in model.parameters()]
        self.peft = isinstance(model, PeftModel)
        self.adapters = set(model.peft_config) if self.peft else set()
        self.active = model.active_adapter if self.peft else None
        self.had_config = [m for m in modules if "peft_config" in vars(m)]

    def restore(self, failed: str) -> Any:
        """The model as it was; raises if it cannot be made so."""
        from peft.tuners.tuners_utils import BaseTunerLayer

        m = self.model
        if self.peft:
            if failed in m.peft_config and failed not in self.adapters:
                with contextlib.suppress(Exception):  # the module tree is put back below whatever happens here
                    m.delete_adapter(failed)
            for name in [k for k in m.peft_config if k not in self.adapters]:
                m.peft_config.pop(name, None)
            if m.active_adapter != self.active:
                m.set_adapter(self.active)
        for module, children in self.children:
            module._modules.clear()
            module._modules.update(children)
        for module, training in self.training:
            module.training = training
        for p, grad in self.grads:
            p.requires_grad_(grad)
        had = {id(x) for x in self.had_config}
        for module in m.modules():  # PEFT copies its config onto the model it wraps
            if "peft_config" in vars(module) and id(module) not in had:
                delattr(module, "peft_config")
        # Checked, not assumed: no adapter layer a plain model did not have, no adapter a PEFT model did not have.
        if not self.peft and any(isinstance(x, BaseTunerLayer) for x in m.modules()):
            raise TripostError("adapter layers are still in the model")
        if self.peft and set(m.peft_config) != self.adapters:
            raise TripostError("the model's adapters are not what they were")
        return m


class AdapterRoutes:
    """`load_adapter` and `unload_adapter`, the LoRA routes of
    StudentService (student_service.py), which holds what they use."""

    student: Any
    name: str
    full_weights: bool
    adapters: dict[str, str | None]
    broken: str | None
    counts: Counter[str]
    _loads: int
    _turn: Callable[[Callable[[], bool] | None], contextlib.AbstractContextManager[None]]

    def load_adapter(self, body: dict[str, Any], gone: Callable[[], bool] | None = None) -> str:
        """`POST /v1/load_lora_adapter`: add the LoRA adapter folder
        `lora_path` under the name `lora_name`, as vLLM's
        OpenAIServingModels.load_lora_adapter answers
        (vllm/entrypoints/openai/models/serving.py): a name loaded before is a
        400 unless `load_inplace`, which reads the folder again and serves the
        new weights under the name. A folder that fails to load leaves the
        model as it was (`Snapshot`); with `load_inplace` the old weights
        stay served then."""
        name, path = body.get("lora_name"), body.get("lora_path")
        if not isinstance(name, str) or not name.strip() or not isinstance(path, str) or not path:
            raise RequestError(400, "Both 'lora_name' and 'lora_path' must be provided.", "lora_name")
        inplace = flag(body, "load_inplace", False)
        if name == self.name:
            raise RequestError(400, f"'{name}' is the base model's name here; give the adapter another", "lora_name")
        if not (Path(path) / "adapter_config.json").is_file():
            # vLLM's LoRA loader says so (vllm/lora/worker_manager.py), and vLLM answers it 404.
            raise RequestError(404, f"Loading lora {name} failed: No adapter found for {path} (serve-student loads PEFT "
                                    "LoRA adapter folders, with an adapter_config.json)", "lora_path")
        if self.full_weights:
            raise RequestError(400, "this server's student was loaded with full trained weights; start one on the base "
                                    "model to serve LoRA adapters of it")

        with self._turn(gone):
            if name in self.adapters and not inplace:
                raise RequestError(400, f"The lora adapter '{name}' has already been loaded. If you want to load the "
                                        "adapter in place, set 'load_inplace' to True.", "lora_name")
            self._loads += 1
            peft_name = f"adapter{max(self._loads, len(self.adapters) + 1)}"
            snapshot = Snapshot(self.student.model)
            try:  # a folder PEFT cannot read, or an adapter of another base model: one line
                self.student.model = load_adapter(self.student.model, path, name=peft_name)
                self.student.model.eval()
            except Exception as e:
                self.counts["refused_load"] += 1
                try:
                    self.student.model = snapshot.restore(peft_name)
                except Exception as undo:  # noqa: BLE001 - whatever it was, the model is not to be trusted
                    self.broken = f"a failed adapter load could not be undone: {type(undo).__name__}: {undo}"
                    log.error("serve-student: %s", self.broken)
                msg = str(e) if isinstance(e, TripostError) else f"cannot load adapter {path}: {type(e).__name__}: {e}"
                raise RequestError(400, f"lora_path: {msg}", "lora_path") from None
            old = self.adapters.get(name)
            self.adapters[name] = peft_name
            if old is not None:  # reloaded in place: the weights read before go (made inactive first, as PEFT warns otherwise)
                self.student.model.set_adapter(peft_name)
                self.student.model.delete_adapter(old)
        log.info("%s adapter %s from %s", "reloaded" if old is not None else "loaded", name, path)
        return f"Success: LoRA adapter '{name}' added successfully."

    def unload_adapter(self, body: dict[str, Any], gone: Callable[[], bool] | None = None) -> str:
        """`POST /v1/unload_lora_adapter`: drop the adapter `lora_name`, as
        vLLM's OpenAIServingModels.unload_lora_adapter answers (404 when it is
        not loaded). The last LoRA adapter's going leaves the plain base model."""
        name = body.get("lora_name")
        if not isinstance(name, str) or not name:
            raise RequestError(400, "'lora_name' needs to be provided to unload a LoRA adapter.", "lora_name")
        with self._turn(gone):
            if name not in self.adapters:
                raise RequestError(404, f"The lora adapter '{name}' cannot be found.", "lora_name")
            peft_name = self.adapters[name]
            if peft_name is None:
                raise RequestError(400, f"'{name}' is the full trained weights this server was started with; it cannot "
                                        "be unloaded", "lora_name")
            del self.adapters[name]
            rest = [p for p in self.adapters.values() if p is not None]
            if rest:
                self.student.model.set_adapter(rest[0])  # never delete the active one (PEFT warns)
                self.student.model.delete_adapter(peft_name)
            else:
                # PEFT can delete its last adapter but leaves a wrapper with none; the base model is what remains.
                self.student.model = self.student.model.unload()
                for module in self.student.model.modules():  # PEFT copies its config onto the model it wraps
                    if "peft_config" in vars(module):
                        delattr(module, "peft_config")
            self.counts["unloaded"] += 1
        log.info("unloaded adapter %s", name)
        return f"Success: LoRA adapter '{name}' removed successfully."
