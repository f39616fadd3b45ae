"""ONNX Runtime inference for a sentence-transformers bi-encoder: ``onnx`` (fp32) or ``onnx-int8`` (dynamic int8
quantization of the weights), for CPU nodes where most of a run's time is embedding.

The export is cached by model id (the weights' hash), so a model is exported once per machine, whatever run or
refresh asks for it. sentence-transformers' own ONNX backend goes through optimum, whose exporter pins a
transformers release older than the one this project runs; so the transformer is exported with ``torch.onnx``
and quantized with ``onnxruntime.quantization``, and pooling and normalisation run in numpy as the model's
``Pooling`` module is configured. ``OnnxEncoder.encode`` takes the arguments of ``SentenceTransformer.encode``
that ``strata.embed.encoder.encode`` passes, so every caller stays backend-agnostic.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
import warnings
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

CACHE_ENV = "STRATA_ONNX_CACHE"  # where exports go (default ~/.cache/strata/onnx)
_FILES = {"onnx": "model.onnx", "onnx-int8": "model_int8.onnx"}


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "strata" / "onnx").expanduser()


def _pooling(model_dir: Path) -> dict:
    """The model's pooling (mean or CLS) and whether it normalises, from its ``modules.json``."""
    modules = json.loads((model_dir / "modules.json").read_text())
    types = {m["type"].rsplit(".", 1)[-1]: m for m in modules}
    if "Pooling" not in types:
        raise ValueError(f"{model_dir}: no Pooling module in modules.json; the ONNX backend needs one")
    cfg = json.loads((model_dir / types["Pooling"]["path"] / "config.json").read_text())
    mode = "mean" if cfg.get("pooling_mode_mean_tokens") else "cls" if cfg.get("pooling_mode_cls_token") else None
    if mode is None:
        raise ValueError(f"{model_dir}: pooling {cfg} is neither mean nor CLS; use embed.backend=torch")
    seq = None
    sb = model_dir / "sentence_bert_config.json"
    if sb.is_file():
        seq = json.loads(sb.read_text()).get("max_seq_length")
    return {"pooling": mode, "normalize": "Normalize" in types, "max_seq_length": seq}


def export(model_dir: str | Path, out: str | Path, int8: bool) -> Path:
    """Export the transformer of the sentence-transformers folder ``model_dir`` to ``out`` (written whole, then
    renamed into place): ``model.onnx``, with ``int8`` also ``model_int8.onnx``, the tokenizer and
    ``strata_onnx.json`` (pooling, normalisation, the model's sequence limit)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    model_dir, out = Path(model_dir), Path(out)
    meta = _pooling(model_dir)
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModel.from_pretrained(str(model_dir)).eval()
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in tok.model_input_names]

    class Hidden(torch.nn.Module):
        """Keyword inputs in, last hidden state out: one graph input per tokenizer output."""

        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, *args: torch.Tensor) -> torch.Tensor:
            return self.inner(**dict(zip(names, args))).last_hidden_state

    tmp = out.with_name(f"{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    try:
        sample = tok(["a product title", "a longer query about cordless drills"], padding=True, return_tensors="pt")
        axes = {n: {0: "batch", 1: "tokens"} for n in [*names, "hidden"]}
        with torch.no_grad(), warnings.catch_warnings():
            # the TorchScript exporter's notes on its own lowering (advanced indexing, tracer asserts)
            warnings.simplefilter("ignore", category=UserWarning)
            warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
            torch.onnx.export(Hidden(model), tuple(sample[n] for n in names), str(tmp / _FILES["onnx"]),
                              input_names=names, output_names=["hidden"], dynamic_axes=axes, opset_version=17,
                              dynamo=False)
        if int8:
            import onnx
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantize_dynamic(str(tmp / _FILES["onnx"]), str(tmp / _FILES["onnx-int8"]), weight_type=QuantType.QInt8,
                             per_channel=True, extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        tok.save_pretrained(str(tmp))
        (tmp / "strata_onnx.json").write_text(json.dumps({**meta, "inputs": names, "source": str(model_dir)}))
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            tmp.rename(out)
        except OSError:  # another process exported the same model first: keep theirs
            if not (out / "strata_onnx.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def exported(model_dir: str | Path, model_id: str, backend: str) -> Path:
    """The cached export of ``model_dir`` for ``backend`` (exported on first use)."""
    if backend not in _FILES:
        raise ValueError(f"ONNX backend {backend!r}: one of {', '.join(_FILES)}")
    folder = cache_root() / model_id.replace("/", "_")
    if not (folder / _FILES[backend]).is_file():
        shutil.rmtree(folder, ignore_errors=True)  # an fp32-only export when int8 is wanted: redo it whole
        log.info("exporting %s to ONNX (%s) into %s", model_id, backend, folder)
        export(model_dir, folder, int8=True)
    return folder


class OnnxEncoder:
    """An exported bi-encoder on ONNX Runtime's CPU provider (see the module docstring)."""

    def __init__(self, folder: str | Path, backend: str = "onnx-int8", max_seq_length: int | None = None,
                 threads: int | None = None):
        import onnxruntime as ort
        from transformers import AutoTokenizer

        folder = Path(folder)
        self.meta = json.loads((folder / "strata_onnx.json").read_text())
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.max_seq_length = max_seq_length or self.meta.get("max_seq_length") or 512
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or 0  # 0: ONNX Runtime's default (the machine's cores)
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(folder / _FILES[backend]), opts, providers=["CPUExecutionProvider"])
        self.backend = backend
        self._dim: int | None = None

    def get_embedding_dimension(self) -> int:
        if self._dim is None:
            self._dim = int(self.encode(["x"]).shape[1])
        return self._dim

    def _batch(self, texts: list[str]) -> np.ndarray:
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_seq_length, return_tensors="np")
        feed = {n: enc[n].astype(np.int64) for n in self.meta["inputs"]}
        hidden = self.session.run(None, feed)[0]
        if self.meta["pooling"] == "cls":
            return hidden[:, 0]
        mask = enc["attention_mask"][..., None].astype(np.float32)
        return (hidden * mask).sum(1) / np.clip(mask.sum(1), 1e-9, None)

    def encode(self, texts: list[str], batch_size: int = 128, show_progress_bar: bool = False,
               convert_to_numpy: bool = True, normalize_embeddings: bool = False) -> np.ndarray:
        """Rows in input order; batches are formed longest first (little padding), as sentence-transformers does."""
        texts = [str(t) for t in texts]
        order = np.argsort([-len(t) for t in texts], kind="stable")
        parts = [self._batch([texts[i] for i in order[s:s + batch_size]]) for s in range(0, len(texts), batch_size)]
        vecs = np.empty((len(texts), parts[0].shape[1] if parts else 0), dtype=np.float32)
        if parts:
            vecs[order] = np.concatenate(parts)
        if normalize_embeddings or self.meta.get("normalize"):
            vecs /= np.clip(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12, None)
        return vecs
