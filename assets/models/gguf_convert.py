"""Run llama.cpp's `convert_hf_to_gguf.py` from its source tree:
`python -m assets.models.gguf_convert SOURCE_TREE MODEL_DIR [converter arguments]`.

The converter names a BPE tokenizer's pre-tokenizer by hashing how it splits a test text with the model's own
vocabulary, so it cannot know a vocabulary trained here. A generated model says which pre-tokenizer it uses in its
`yardstick_build.json` (`gguf_pre_tokenizer`: the tiny model uses Qwen2's split rule), and that name is written
into the GGUF file instead; for every other model the converter decides, as it always does.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def declared_pre_tokenizer(model_dir: Path) -> str | None:
    marker = model_dir / "yardstick_build.json"
    if not marker.exists():
        return None
    return json.loads(marker.read_text()).get("gguf_pre_tokenizer")


def main(argv: list[str]) -> None:
    tree, model_dir, *rest = argv
    sys.path[:0] = [tree, str(Path(tree) / "gguf-py")]
    import convert_hf_to_gguf  # noqa: PLC0415 (from the llama.cpp tree just put on the path)
    from conversion.base import TextModel  # noqa: PLC0415

    declared = declared_pre_tokenizer(Path(model_dir))
    if declared:
        recognise = TextModel.get_vocab_base_pre

        def pre_tokenizer(self, tokenizer) -> str:
            try:
                return recognise(self, tokenizer)
            except NotImplementedError:
                return declared

        TextModel.get_vocab_base_pre = pre_tokenizer
    sys.argv = ["convert_hf_to_gguf.py", model_dir, *rest]
    convert_hf_to_gguf.main()


if __name__ == "__main__":
    main(sys.argv[1:])
