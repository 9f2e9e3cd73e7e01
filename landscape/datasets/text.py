"""Text for a causal language model: ``--data text:FILE`` (a plain text file) and ``--data jsonl:FILE`` (one JSON
object per line, its text under ``--text-key``), tokenized with the model folder's tokenizer (``--model
hf:DIR``) and cut into sequences of ``--seq-len`` tokens.

As HuggingFace's own language-model recipes do: the documents' tokens are joined (with the tokenizer's
end-of-text token between jsonl records, when it has one) and cut into consecutive blocks of ``seq_len``; the
tokens after the last whole block are left out (the count is in the data's name). Each sequence is its own
target (``labels`` = ``input_ids``): the model shifts them, so the surface is its mean next-token loss.
"""

from __future__ import annotations

import json
import os

import torch

from landscape.data import Data
from landscape.errors import LandscapeError

DEFAULT_SEQ_LEN = 128


def load_text(kind: str, path: str, split: str, *, tokenizer_dir: str | None, seq_len: int | None,
              text_key: str = "text") -> Data:
    """Token blocks of a text or jsonl file as a ``{"input_ids", "labels"}`` :class:`Data`.

    Raises:
        LandscapeError: no tokenizer folder, a missing or empty file, a jsonl line that is not an object with
            ``text_key``, or fewer tokens than one sequence.
    """
    if not tokenizer_dir:
        raise LandscapeError(f"--data {kind}:FILE is tokenized with the model folder's tokenizer; pass --model "
                             "hf:DIR (from Python: a HuggingFace model loaded from a local folder), or tokenize "
                             "the text yourself and pass a dict of input_ids and labels")
    from landscape.models.hf import load_tokenizer

    if not os.path.isfile(path):
        raise LandscapeError(f"--data {kind}: no such file {path!r}")
    seq_len = seq_len or DEFAULT_SEQ_LEN
    docs = _documents(kind, path, text_key)
    tok = load_tokenizer(tokenizer_dir)
    sep = [tok.eos_token_id] if kind == "jsonl" and tok.eos_token_id is not None else []
    ids: list[int] = []
    for i, doc in enumerate(docs):
        ids += (sep if i else []) + list(tok(doc, add_special_tokens=False)["input_ids"])
    blocks = len(ids) // seq_len
    if blocks == 0:
        raise LandscapeError(f"{path!r} holds {len(ids)} tokens, fewer than one sequence of --seq-len {seq_len}; "
                             "pass a smaller --seq-len or more text")
    x = torch.tensor(ids[:blocks * seq_len], dtype=torch.long).view(blocks, seq_len)
    left = len(ids) - blocks * seq_len
    name = f"{kind}:{os.path.basename(path)}" + (f" ({left} trailing tokens left out)" if left else "")
    return Data({"input_ids": x, "labels": x.clone()}, None, name, split, None, layout="dict")


def _documents(kind: str, path: str, key: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        if kind == "text":
            text = f.read()
            if not text.strip():
                raise LandscapeError(f"--data text: {path!r} is empty")
            return [text]
        docs = []
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError as e:
                raise LandscapeError(f"--data jsonl: line {n} of {path!r} is not JSON ({e})")
            if not isinstance(rec, dict) or not isinstance(rec.get(key), str):
                keys = sorted(rec)[:8] if isinstance(rec, dict) else type(rec).__name__
                raise LandscapeError(f"--data jsonl: line {n} of {path!r} has no text under {key!r} (it has "
                                     f"{keys}); pass --text-key KEY")
            docs.append(rec[key])
    if not docs:
        raise LandscapeError(f"--data jsonl: {path!r} holds no records")
    return docs
