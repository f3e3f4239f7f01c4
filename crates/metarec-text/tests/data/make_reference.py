"""Reference embeddings for metarec-text's test, computed with Python sentence-transformers.

Run from the workspace root after `metarec data fetch minilm`:
    HF_HUB_OFFLINE=1 python crates/metarec-text/tests/data/make_reference.py data/minilm \
        > crates/metarec-text/tests/data/reference.json
Produced with sentence-transformers 6.2.0, transformers 5.24.0, torch 2.15.0 (CPU).
"""
import json
import sys

from sentence_transformers import SentenceTransformer

SENTENCES = [
    "WHITE HANGING HEART T-LIGHT HOLDER",
    "REGENCY CAKESTAND 3 TIER",
    "JUMBO BAG RED RETROSPOT",
    "set of 3 cake tins pantry design",
    "A man is eating food.",
    "Ünïcödé tëxt, with punctuation!?",
    "",
]


def main():
    model = SentenceTransformer(sys.argv[1], device="cpu")
    vectors = model.encode(SENTENCES, normalize_embeddings=True, convert_to_numpy=True)
    json.dump(
        {"sentences": SENTENCES, "embeddings": [[float(x) for x in v] for v in vectors]},
        sys.stdout,
    )


if __name__ == "__main__":
    main()
