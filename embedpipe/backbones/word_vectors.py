"""Static word vectors (word2vec / GloVe) averaged into text embeddings.

A text is lowercased and split with a simple regex (``\\w+``); out-of-vocabulary tokens are
ignored; the embedding is the mean of the remaining token vectors, or their IDF-weighted mean.
A text with no in-vocabulary token raises ``ValueError`` ("no in-vocabulary token"): its
embedding would be undefined (the engine records it as a bad item or skips it).

Vectors files: text (``word v1 v2 ...`` per line, with or without a first ``N D`` header line,
as written by GloVe or word2vec) or word2vec binary (``N D`` header, then per word: the word,
a space and D little-endian float32).
"""

from __future__ import annotations

import json
import logging
import math
import mmap
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from embedpipe.backbones._hashing import sha256_bytes, sha256_file
from embedpipe.backbones._torch_encoder import TorchEncoder
from embedpipe.backbones.base import BackboneSpec, reload
from embedpipe.backbones.text import TokenBatch, check_text
from embedpipe.errors import ConfigError

log = logging.getLogger(__name__)

TOKEN_PATTERN = r"\w+"
VectorsFormat = Literal["auto", "text", "binary"]


def _parse_header(line: bytes) -> tuple[int, int] | None:
    parts = line.split()
    if len(parts) == 2 and all(p.isdigit() for p in parts):
        return int(parts[0]), int(parts[1])
    return None


def _sniff_format(path: Path) -> Literal["text", "binary"]:
    if path.suffix == ".bin":
        return "binary"
    with open(path, "rb") as f:
        header = _parse_header(f.readline(1 << 16))
        if header is None:
            return "text"
        line = f.readline(1 << 16)
    try:
        parts = line.decode("utf-8").split()
        [float(p) for p in parts[-header[1] :]]
        return "text" if len(parts) > header[1] else "binary"
    except (UnicodeDecodeError, ValueError):
        return "binary"


def _read_text(path: Path) -> tuple[list[str], np.ndarray]:
    words: list[str] = []
    rows: list[np.ndarray] = []
    dim: int | None = None
    expected_n: int | None = None
    with open(path, encoding="utf-8", errors="strict") as f:
        for lineno, line in enumerate(f, start=1):
            if lineno == 1 and (header := _parse_header(line.encode())) is not None:
                expected_n, dim = header
                continue
            parts = line.rstrip("\n").rstrip().split(" ")
            if len(parts) < 2:
                if not line.strip():
                    continue
                raise ConfigError(f"{path}:{lineno}: expected 'word v1 v2 ...', got {line[:80]!r}")
            if dim is None:
                dim = len(parts) - 1
            if len(parts) < dim + 1:
                raise ConfigError(
                    f"{path}:{lineno}: {len(parts) - 1} values where {dim} were expected; "
                    "the vectors file is truncated or malformed"
                )
            # Some GloVe releases have words containing spaces: the vector is the last D fields.
            word = " ".join(parts[: len(parts) - dim])
            try:
                rows.append(np.asarray(parts[len(parts) - dim :], dtype=np.float32))
            except ValueError as e:
                raise ConfigError(f"{path}:{lineno}: non-numeric vector value ({e})") from e
            words.append(word)
    if not words or dim is None:
        raise ConfigError(f"vectors file {str(path)!r} holds no vectors")
    if expected_n is not None and expected_n != len(words):
        log.warning("%s: header says %d words, file has %d", path, expected_n, len(words))
    return words, np.stack(rows)


def _read_binary(path: Path) -> tuple[list[str], np.ndarray]:
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        end = buf.find(b"\n")
        header = _parse_header(buf[:end]) if end > 0 else None
        if header is None:
            raise ConfigError(
                f"{path} is not a word2vec binary file (no 'N D' header line); pass "
                "format='text' for a text vectors file"
            )
        n, dim = header
        width = 4 * dim
        words: list[str] = []
        matrix = np.empty((n, dim), dtype=np.float32)
        pos = end + 1
        for i in range(n):
            space = buf.find(b" ", pos)
            if space < 0 or space + 1 + width > len(buf):
                raise ConfigError(
                    f"{path} is truncated: header says {n} words of dim {dim}, found {i}"
                )
            words.append(buf[pos:space].decode("utf-8", errors="replace").lstrip("\n"))
            matrix[i] = np.frombuffer(buf, dtype="<f4", count=dim, offset=space + 1)
            pos = space + 1 + width
            if pos < len(buf) and buf[pos : pos + 1] == b"\n":
                pos += 1
    return words, matrix


def read_vectors(
    path: str | os.PathLike[str], format: VectorsFormat = "auto"
) -> tuple[list[str], np.ndarray]:
    """Read a word vectors file into ``(words, float32 matrix [V, D])``.

    Parameters
    ----------
    path
        Text (GloVe / word2vec text, header optional) or word2vec binary file.
    format
        ``"auto"`` (``.bin`` suffix or an undecodable first vector → binary), ``"text"`` or
        ``"binary"``.

    Raises
    ------
    ConfigError
        Missing, empty, truncated or malformed file.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"word vectors file {str(p)!r} not found; check the path")
    fmt = _sniff_format(p) if format == "auto" else format
    if fmt not in ("text", "binary"):
        raise ConfigError(f"unknown vectors format {format!r}; use 'auto', 'text' or 'binary'")
    try:
        return _read_binary(p) if fmt == "binary" else _read_text(p)
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{p} is not UTF-8 text ({e.reason}); if it is word2vec binary, pass format='binary'"
        ) from e


class WordTokenizer:
    """Text → int64 array of vocabulary indices (regex tokens, lowercased, OOV dropped).

    Picklable, holds only the vocabulary, so it runs in DataLoader workers.
    """

    def __init__(
        self, vocab: Mapping[str, int], pattern: str = TOKEN_PATTERN, lowercase: bool = True
    ):
        self.vocab = dict(vocab)
        self.pattern = pattern
        self.lowercase = lowercase
        self._regex = re.compile(pattern)

    def __getstate__(self) -> dict[str, Any]:
        return {"vocab": self.vocab, "pattern": self.pattern, "lowercase": self.lowercase}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def tokens(self, text: str) -> list[str]:
        if not isinstance(text, str):
            raise TypeError(f"expected a str, got {type(text).__name__}")
        return self._regex.findall(text.lower() if self.lowercase else text)

    def __call__(self, text: str) -> np.ndarray:
        tokens = self.tokens(check_text(text))
        ids = [i for t in tokens if (i := self.vocab.get(t)) is not None]
        if not ids:
            preview = text if len(text) <= 60 else text[:57] + "..."
            raise ValueError(
                f"no in-vocabulary token in text {preview!r} (tokens: {tokens[:10]}); its "
                "word-vector embedding is undefined"
            )
        return np.asarray(ids, dtype=np.int64)


def bag_collate(samples: list[np.ndarray]) -> dict[str, torch.Tensor]:
    """Concatenate token-index arrays into ``indices`` plus per-text ``offsets``."""
    lengths = [len(s) for s in samples]
    offsets = np.zeros(len(samples), dtype=np.int64)
    np.cumsum(lengths[:-1], out=offsets[1:])
    return {
        "indices": torch.from_numpy(np.concatenate(samples)),
        "offsets": torch.from_numpy(offsets),
    }


class _Bag(nn.Module):
    def __init__(self, matrix: np.ndarray, normalize: bool) -> None:
        super().__init__()
        self.bag = nn.EmbeddingBag.from_pretrained(
            torch.from_numpy(matrix), freeze=True, mode="sum"
        )
        self.idf: torch.Tensor
        self.register_buffer("idf", torch.empty(0), persistent=False)
        self.normalize = normalize

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        idx, offsets = batch["indices"], batch["offsets"]
        if self.idf.numel():
            w = self.idf[idx]
            total = self.bag(idx, offsets, per_sample_weights=w)
            ends = torch.cat([offsets[1:], offsets.new_tensor([idx.shape[0]])])
            seg = torch.repeat_interleave(
                torch.arange(offsets.shape[0], device=idx.device), ends - offsets
            )
            denom = torch.zeros(offsets.shape[0], device=w.device, dtype=w.dtype).index_add_(
                0, seg, w
            )
            out = total / denom.clamp(min=1e-12).unsqueeze(1)
        else:
            out = F.embedding_bag(idx, self.bag.weight, offsets, mode="mean")
        return F.normalize(out, p=2, dim=1) if self.normalize else out


def _read_idf_file(path: Path) -> dict[str, float]:
    if not path.is_file():
        raise ConfigError(f"IDF file {str(path)!r} not found; check the path")
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("{"):
        table = json.loads(text)
    else:
        table = {}
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            word, _, value = line.rstrip().rpartition(" ")
            if not word:
                word, _, value = line.rstrip().rpartition("\t")
            try:
                table[word] = float(value)
            except ValueError:
                raise ConfigError(
                    f"{path}:{lineno}: expected 'word weight', got {line!r}"
                ) from None
    return table


class WordVectorsEncoder(TorchEncoder):
    """Mean (or IDF-weighted mean) of static word vectors (see :func:`load_word_vectors`)."""

    family = "embedding"

    def __init__(self, *args: Any, words: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.words = words

    @property
    def tokenizer(self) -> WordTokenizer:
        return self.preprocess

    def lengths(self, texts: list[str]) -> list[int]:
        """Regex token counts (in-vocabulary or not)."""
        return [len(self.tokenizer.tokens(t)) for t in texts]

    def set_idf(self, idf: Mapping[str, float]) -> WordVectorsEncoder:
        """Weight token vectors by an IDF table ``{word: weight}``.

        Words absent from the table get the table's largest weight (treated as rarest).
        The table's hash goes into ``spec.options["idf_id"]`` and thus the fingerprint.

        Raises
        ------
        ConfigError
            Empty table, or a weight that is not finite and positive.
        """
        if not idf:
            raise ConfigError("the IDF table is empty; fit it on texts that use the vocabulary")
        values = np.fromiter(idf.values(), dtype=np.float64, count=len(idf))
        if not np.all(np.isfinite(values)) or np.any(values <= 0):
            raise ConfigError("IDF weights must be finite and > 0")
        vec = np.full(len(self.words), float(values.max()), dtype=np.float32)
        vocab = self.tokenizer.vocab
        for word, w in idf.items():
            i = vocab.get(word)
            if i is not None:
                vec[i] = w
        self._idf_table = dict(idf)
        self.model.idf = torch.from_numpy(vec).to(self.device)
        files = {k: v for k, v in self.spec.files.items() if k != "idf"}
        self.spec = replace(
            self.spec,
            pooling="idf_mean",
            options={**self.spec.options, "idf_id": "sha256:" + sha256_bytes(vec.tobytes())},
            files=files,
        )
        return self

    def fit_idf(self, texts: Iterable[str]) -> WordVectorsEncoder:
        """Fit smoothed IDF weights, ``ln((1 + N) / (1 + df)) + 1``, on ``texts``.

        Only in-vocabulary words get an entry; others get the largest weight (see
        :meth:`set_idf`). Save the table with :meth:`save_idf` so the encoder can be rebuilt
        from its spec.
        """
        vocab = self.tokenizer.vocab
        df = np.zeros(len(self.words), dtype=np.int64)
        n = 0
        for text in texts:
            n += 1
            ids = {i for t in self.tokenizer.tokens(text) if (i := vocab.get(t)) is not None}
            df[list(ids)] += 1
        seen = np.flatnonzero(df)
        if n == 0 or seen.size == 0:
            raise ConfigError("cannot fit IDF: no text with an in-vocabulary token was given")
        table = {self.words[i]: math.log((1 + n) / (1 + df[i])) + 1.0 for i in seen}
        return self.set_idf(table)

    def save_idf(self, path: str | os.PathLike[str]) -> Path:
        """Write the IDF table as JSON and record its path in ``spec.files["idf"]``."""
        table = getattr(self, "_idf_table", None)
        if table is None:
            raise ConfigError("no IDF table to save: call fit_idf(texts) or set_idf(table) first")
        p = Path(path).expanduser().resolve()
        p.write_text(json.dumps(table, ensure_ascii=False, sort_keys=True), encoding="utf-8")
        self.spec = replace(self.spec, files={**self.spec.files, "idf": str(p)})
        return p


def load_word_vectors(
    path: str | os.PathLike[str],
    *,
    idf: Mapping[str, float] | str | os.PathLike[str] | None = None,
    normalize: bool = False,
    lowercase: bool = True,
    token_pattern: str = TOKEN_PATTERN,
    format: VectorsFormat = "auto",
) -> WordVectorsEncoder:
    """Load static word vectors as a text encoder (mean of in-vocabulary token vectors).

    Parameters
    ----------
    path
        Vectors file: text (with or without an ``N D`` header) or word2vec binary.
    idf
        Optional IDF table: ``{word: weight}`` or a file (JSON object, or ``word weight``
        lines). Or fit one later with :meth:`WordVectorsEncoder.fit_idf`.
    normalize
        L2-normalise embeddings.
    lowercase, token_pattern
        Tokeniser: lowercase the text, then ``re.findall(token_pattern)``.
    format
        ``"auto"``, ``"text"`` or ``"binary"``.

    Returns
    -------
    WordVectorsEncoder
        ``spec.weights_id`` is the sha256 of the vectors file. ``preprocess(text)`` raises
        ``ValueError`` for empty text and for text without any in-vocabulary token.

    Raises
    ------
    ConfigError
        Missing or malformed vectors or IDF file.

    Examples
    --------
    >>> _ = Path("glove.txt").write_text("the 0 1 0\\ncat 1 0 0\\nsat 0 0 2\\n")
    >>> enc = load_word_vectors("glove.txt", normalize=True)
    >>> enc.encode(enc.collate([enc.preprocess("the cat sat")])).shape
    torch.Size([1, 3])
    """
    p = Path(path).expanduser()
    words, matrix = read_vectors(p, format)
    vocab: dict[str, int] = {}
    keep: list[int] = []
    for i, w in enumerate(words):
        if w not in vocab:  # first occurrence wins
            vocab[w] = len(keep)
            keep.append(i)
    if len(keep) < len(words):
        words = [words[i] for i in keep]
        matrix = matrix[keep]
    try:
        re.compile(token_pattern)
    except re.error as e:
        raise ConfigError(f"token_pattern {token_pattern!r} is not a valid regex: {e}") from e
    tokenizer = WordTokenizer(vocab, token_pattern, lowercase)
    spec = BackboneSpec(
        kind="word_vectors",
        name=str(p.resolve()),
        weights=None,
        weights_id="sha256:" + sha256_file(p),
        layer=None,
        pooling="mean",
        modality="text",
        preprocessing={"lowercase": lowercase, "token_pattern": token_pattern},
        options={"normalize": bool(normalize)},
    )
    enc = WordVectorsEncoder(
        spec,
        _Bag(matrix, normalize),
        matrix.shape[1],
        tokenizer,
        TokenBatch(list, bag_collate),
        words=words,
    )
    if idf is not None:
        if isinstance(idf, Mapping):
            enc.set_idf(idf)
        else:
            idf_path = Path(idf).expanduser().resolve()
            enc.set_idf(_read_idf_file(idf_path))
            enc.spec = replace(enc.spec, files={**enc.spec.files, "idf": str(idf_path)})
    return enc


def word_vectors_from_spec(spec: BackboneSpec, **overrides: Any) -> WordVectorsEncoder:
    """Rebuild the encoder a spec describes; an IDF-weighted one needs its saved IDF file
    (``spec.files["idf"]``) or ``idf=`` passed as an override."""
    kw: dict[str, Any] = {
        "normalize": bool(spec.options.get("normalize", False)),
        "lowercase": spec.preprocessing.get("lowercase", True),
        "token_pattern": spec.preprocessing.get("token_pattern", TOKEN_PATTERN),
    }
    if spec.options.get("idf_id"):
        if "idf" in spec.files:
            kw["idf"] = spec.files["idf"]
        elif "idf" not in overrides:
            raise ConfigError(
                f"backbone {spec.name!r} used an IDF table (id {spec.options['idf_id']}) that "
                "was never saved; pass idf=<the same table or file>, or save it with "
                "encoder.save_idf(path) before encoding"
            )
    return reload(load_word_vectors, spec, overrides, **kw)
