"""The bundled tokenizers (vocabulary derived from open-clip-torch's merge list) give the
token ids of open_clip's own reference tokenizer, and each pads as the released one."""

import random
from pathlib import Path

import open_clip.tokenizer
import pytest
import torch
from transformers import CLIPTokenizer

from modelhost.configs import config_folder
from modelhost.configs.clip_bpe import VOCAB_SIZE, bpe_source, clip_vocab_and_merges

MAX_TOKENS = 77
EOS_ID = 49407

WORDS = [
    "a", "photo", "of", "cat", "astronaut", "riding", "horse", "on", "mars", "portrait",
    "woman", "cyberpunk", "city", "night", "neon", "lights", "highly", "detailed", "8k",
    "octane", "render", "trending", "artstation", "oil", "painting", "by", "greg",
    "rutkowski", "masterpiece", "best", "quality", "1girl", "solo", "looking", "at",
    "viewer", "don't", "it's", "we're", "they've", "i'm", "you'll", "he'd", "landscape",
    "sunset", "mountains", "lake", "reflection", "bokeh", "f/1.8", "35mm", "ultra-wide",
    "low-poly", "pixel", "art", "watercolour", "sketch", "isometric", "volumetric",
    "fog", "2024", "1990s", "3d", "hdr", "uhd", "dslr", "supercalifragilistic",
    "antidisestablishmentarianism", "NEON", "Mixed", "CaSe", "TOKENS",
]  # fmt: skip
UNICODE = [
    "café", "naïve", "über", "jalapeño", "smörgåsbord", "crème brûlée", "東京", "夜景",
    "桜の木", "서울", "москва", "ночь", "αθήνα", "عربي", "हिन्दी", "🙂", "🐱", "🚀✨",
    "→", "—", "…", "°", "½", "©", "™", "ß", "ø", "ł",
]  # fmt: skip
PUNCTUATION = [
    ",", ".", "!", "?", ";", ":", "-", "_", "/", "\\", "|", "(", ")", "[", "]", "{", "}",
    "<", ">", "@", "#", "$", "%", "^", "&", "*", "+", "=", "~", "`", "'", '"', "...", "!!",
]  # fmt: skip
# Prompt-weighting syntaxes of popular front ends: the server passes them as text.
WEIGHTED = [
    "(red:1.3)", "((masterpiece))", "[blurry]", "(blue eyes:0.8)", "{cat|dog}",
    "<lora:detail:0.7>", "embedding:easynegative", "(a (nested:1.2) phrase:1.1)",
    "[cat:dog:0.5]", "BREAK", "AND",
]  # fmt: skip
FIXED = [
    "",
    " ",
    "a photo of a cat",
    "  lots   of\tspaces \n and\nnewlines  ",
    "(red:1.3) car, ((masterpiece)), [blurry]",
    "<lora:detail:0.7> portrait of a knight, highly detailed",
    "東京の夜景, neon, 8k",
    "emoji party 🙂🐱🚀✨ with text",
    "ALL CAPS PROMPT WITH 123 NUMBERS 4567",
    "numbers 1234567890 and 3.14159 and 1,000,000",
    "x" * 300,
    " ".join(["word"] * 120),  # far past 77 tokens: truncated, ending in the end token
    ", ".join(WORDS),
]


def _prompts() -> list[str]:
    rng = random.Random(1234)
    pools = [WORDS, WORDS, WORDS, UNICODE, PUNCTUATION, WEIGHTED]
    prompts = list(FIXED)
    while len(prompts) < 320:
        length = rng.choice([1, 3, 8, 20, 40, 90])
        parts = [rng.choice(rng.choice(pools)) for _ in range(length)]
        separators = [rng.choice([" ", ", ", "", " ", "  "]) for _ in parts]
        prompts.append("".join(p + s for p, s in zip(parts, separators, strict=True)))
    return prompts


PROMPTS = _prompts()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return config_folder("sdxl-base", tmp_path_factory.mktemp("cache"))


def _ids(tokenizer: CLIPTokenizer, prompts: list[str]) -> torch.Tensor:
    encoded = tokenizer(
        prompts,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    )
    ids: torch.Tensor = encoded.input_ids
    return ids


def test_vocabulary_is_the_reference_tokenizers() -> None:
    vocab, merges = clip_vocab_and_merges(bpe_source())
    reference = open_clip.tokenizer.SimpleTokenizer()
    assert len(vocab) == VOCAB_SIZE == reference.vocab_size
    # Same tokens at the same ids; only the special tokens' spelling differs.
    renamed = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}
    assert vocab == {renamed.get(token, token): i for token, i in reference.encoder.items()}
    assert merges[:3] == ("i n", "t h", "a n")


def test_second_tokenizer_matches_open_clip_tokenize_exactly(folder: Path) -> None:
    """SDXL's tokenizer_2 pads with "!" (id 0), as open_clip.tokenize pads: whole rows match."""
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer_2", local_files_only=True)
    assert (tokenizer.pad_token, tokenizer.pad_token_id) == ("!", 0)
    # A literal "!" is the one exception, see the next test.
    prompts = [prompt for prompt in PROMPTS if "!" not in prompt]
    assert len(prompts) >= 250
    reference = open_clip.tokenizer.tokenize(prompts, context_length=MAX_TOKENS)
    ours = _ids(tokenizer, prompts)
    assert ours.shape == (len(prompts), MAX_TOKENS)
    mismatches = [p for p, a, b in zip(prompts, ours, reference, strict=True) if not a.equal(b)]
    assert mismatches == []


def test_second_tokenizer_reads_a_literal_exclamation_mark_as_its_pad_token(folder: Path) -> None:
    """As the released tokenizer_2 does in transformers: its pad token "!" is a special
    token (id 0), and special tokens are matched in the text itself. open_clip reads it as
    the word-final "!</w>" (256); the first tokenizer does too."""
    second = CLIPTokenizer.from_pretrained(folder / "tokenizer_2", local_files_only=True)
    first = CLIPTokenizer.from_pretrained(folder / "tokenizer", local_files_only=True)
    reference = open_clip.tokenizer.tokenize(["wow!"], context_length=8)[0].tolist()
    assert reference == [49406, 2781, 256, EOS_ID, 0, 0, 0, 0]
    assert second("wow!").input_ids == [49406, 2781, 0, EOS_ID]
    assert first("wow!").input_ids == reference[:4]


def test_first_tokenizer_matches_and_pads_with_the_end_token(folder: Path) -> None:
    """SDXL's (and SD1.5's) first tokenizer pads with <|endoftext|>: the same ids up to
    the end token, then 49407 where open_clip puts 0."""
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer", local_files_only=True)
    assert (tokenizer.pad_token, tokenizer.pad_token_id) == ("<|endoftext|>", EOS_ID)
    reference = open_clip.tokenizer.tokenize(PROMPTS, context_length=MAX_TOKENS)
    expected = torch.where(reference == 0, torch.full_like(reference, EOS_ID), reference)
    assert _ids(tokenizer, PROMPTS).equal(expected)


def test_long_prompts_are_cut_at_77_with_the_end_token_last(folder: Path) -> None:
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer_2", local_files_only=True)
    long_prompt = " ".join(["word"] * 120)
    ids = _ids(tokenizer, [long_prompt])[0]
    assert ids.shape == (MAX_TOKENS,)
    assert ids[0].item() == 49406 and ids[-1].item() == EOS_ID
    assert (ids[1:-1] == tokenizer.convert_tokens_to_ids("word</w>")).all()


def test_weights_syntax_stays_text(folder: Path) -> None:
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer", local_files_only=True)
    tokens = tokenizer.tokenize("(red:1.3)")
    assert tokens == ["(</w>", "red</w>", ":</w>", "1</w>", ".</w>", "3</w>", ")</w>"]
