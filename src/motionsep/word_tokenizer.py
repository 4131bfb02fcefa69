"""A real CLIPTokenizer over an in-memory vocabulary: byte-level symbols plus whole-word tokens.

The shapes-world models use it (every word of the world one token), and so do the tiny test models.
"""

from __future__ import annotations


def build_tokenizer(words: tuple[str, ...] = (), max_length: int = 77):
    """A CLIPTokenizer whose vocabulary is the 256 byte symbols (alone and word-final) plus `words`.

    Each word in `words` gets the BPE merges that assemble it, so it becomes one token.
    """
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer

    symbols = sorted(ByteLevel.alphabet())  # the 256 symbols byte-level BPE maps bytes to
    vocab: dict[str, int] = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for s in symbols + [s + "</w>" for s in symbols]:
        vocab.setdefault(s, len(vocab))
    merges: list[tuple[str, str]] = []

    def join(pieces: list[str]) -> None:
        """Merges that assemble `pieces` left to right into one token."""
        current = pieces[0]
        for piece in pieces[1:]:
            if (current, piece) not in merges:
                merges.append((current, piece))
            current = current + piece
            vocab.setdefault(current, len(vocab))

    for word in words:
        join(list(word[:-1]) + [word[-1] + "</w>"])
    # BPE applies merges by rank across the whole word, so an earlier word's merge can pre-empt a
    # later word's chain ("in" splits "plain" into "pla" + "in"); join what is left, until every
    # word is one token. Appended merges rank last, so they never break a word already whole.
    for _ in range(8):
        tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=max_length)  # type: ignore[arg-type]
        split = [(w, tokenizer.tokenize(w)) for w in words]
        split = [(w, pieces) for w, pieces in split if len(pieces) > 1]
        if not split:
            return tokenizer
        for _, pieces in split:
            join(pieces)
    raise RuntimeError(f"could not make whole-word tokens for {[w for w, _ in split]}")
