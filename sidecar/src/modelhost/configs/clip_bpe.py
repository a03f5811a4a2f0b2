"""CLIP's byte-pair vocabulary as the `vocab.json` / `merges.txt` pair that transformers'
`CLIPTokenizer` reads, derived from the file open-clip-torch ships.

No wheel we use carries the released tokenizers' files, and the model host never
downloads. open-clip-torch ships CLIP's own merge list (`bpe_simple_vocab_16e6.txt.gz`,
MIT licensed); the vocabulary is a function of it, built exactly as the original CLIP
tokenizer builds it (and open_clip's `SimpleTokenizer`, which the tests compare with).
"""

import gzip
import importlib.util
import json
from pathlib import Path

BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"
BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
# CLIP's vocabulary: 256 bytes, the same word-final, the merges, then the two special
# tokens, 49408 in all. The file holds more merges than CLIP uses.
VOCAB_SIZE = 49408
MERGE_COUNT = VOCAB_SIZE - 2 * 256 - 2
MERGES_HEADER = "#version: 0.2"


def bpe_source() -> Path:
    """open_clip's merge file, found without importing open_clip (which pulls in its
    model code and their dependencies)."""
    spec = importlib.util.find_spec("open_clip")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / BPE_FILE
        if candidate.is_file():
            return candidate
    # An installation fault, not a property of the model being loaded.
    raise RuntimeError(
        f"the CLIP tokenizer vocabulary ({BPE_FILE}) comes from the open-clip-torch package, "
        "which is not installed: install the sidecar's requirements.lock"
    )


def byte_alphabet() -> list[str]:
    """GPT-2's reversible byte -> printable character table, in CLIP's order: the
    printable bytes first (so "!" is token 0), then the rest mapped above 255."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    remapped = [byte for byte in range(256) if byte not in printable]
    return [chr(byte) for byte in printable] + [chr(256 + n) for n in range(len(remapped))]


def clip_vocab_and_merges(source: Path) -> tuple[dict[str, int], tuple[str, ...]]:
    lines = gzip.decompress(source.read_bytes()).decode("utf-8").split("\n")
    # The first line is the file's version comment, not a merge.
    merges = tuple(lines[1 : MERGE_COUNT + 1])
    alphabet = byte_alphabet()
    tokens = [
        *alphabet,
        *(f"{char}</w>" for char in alphabet),
        *("".join(merge.split()) for merge in merges),
        BOS_TOKEN,
        EOS_TOKEN,
    ]
    vocab = {token: index for index, token in enumerate(tokens)}
    if len(vocab) != VOCAB_SIZE:
        raise RuntimeError(f"{source}: not CLIP's merge list")
    return vocab, merges


def write_clip_bpe(folder: Path, source: Path) -> None:
    """Writes vocab.json and merges.txt into `folder`."""
    vocab, merges = clip_vocab_and_merges(source)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("\n".join([MERGES_HEADER, *merges]) + "\n", encoding="utf-8")
