"""The toy models' word-level tokenizer: one token per whitespace-separated word.

A Hugging Face ``tokenizers`` WordLevel model behind a whitespace pre-tokenizer, wrapped in
``PreTrainedTokenizerFast`` so that it saves to a folder ``AutoTokenizer.from_pretrained``
loads. Its ``tokenizer_config.json`` carries ``"saekit_vocabulary": "toy"``, the marker by which
[`saekit.tasks.make_task`][saekit.tasks.make_task] picks the toy task generators, and a model
trained on a task's other negative says so there (`saekit.tasks.toy.NEGATIVES_MARKER`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from saekit._io import atomic_folder, dumps_json
from saekit.tasks import TOY_TOKENIZER_MARKER
from saekit.tasks.toy import BOS, NEGATIVES_MARKER, PAD, UNK, VOCABULARY, check_negatives


def build_toy_tokenizer(vocabulary: tuple[str, ...] = VOCABULARY, negatives: Mapping[str, str] | None = None):
    """A ``PreTrainedTokenizerFast`` whose token ids are the positions in ``vocabulary``; the toy
    tasks `make_task` builds for it take ``negatives`` (task → negative, the others their
    defaults: `saekit.tasks.toy.TOY_NEGATIVES`)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    word_level = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocabulary)}, unk_token=UNK))
    word_level.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    word_level.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with spaces
    return PreTrainedTokenizerFast(
        tokenizer_object=word_level,
        bos_token=BOS,
        eos_token=BOS,  # one document separator, as in GPT-2
        pad_token=PAD,
        unk_token=UNK,
        model_max_length=1024,
        **{TOY_TOKENIZER_MARKER: "toy"},
        **({NEGATIVES_MARKER: chosen} if (chosen := check_negatives(negatives or {})) else {}),
    )


def save_toy_tokenizer(folder: str | Path, tokenizer=None) -> Path:
    """Save a word-level tokenizer (`build_toy_tokenizer`'s default when None) to ``folder``
    (created if needed, replaced as a whole) and return it."""
    folder = Path(folder)
    with atomic_folder(folder) as staging:
        (build_toy_tokenizer() if tokenizer is None else tokenizer).save_pretrained(staging)
        # transformers 5 writes its own class name, which transformers 4 does not know; the
        # class both versions load is PreTrainedTokenizerFast.
        config_path = staging / "tokenizer_config.json"
        config = json.loads(config_path.read_text())
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        config_path.write_text(dumps_json(config))
    return folder
