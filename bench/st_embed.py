"""Baseline for `metarec bench embed`: Python sentence-transformers embedding the same titles.

Usage: python st_embed.py MODEL_DIR TITLES_FILE BATCH   (one title per line; prints titles/s)
"""
import sys
import time

from sentence_transformers import SentenceTransformer


def main():
    model = SentenceTransformer(sys.argv[1], device="cpu")
    with open(sys.argv[2], encoding="utf-8") as f:
        titles = [line.rstrip("\n") for line in f]
    batch = int(sys.argv[3])
    model.encode(titles[:batch], batch_size=batch)  # warm-up
    start = time.perf_counter()
    model.encode(titles, batch_size=batch, normalize_embeddings=True)
    print(len(titles) / (time.perf_counter() - start))


if __name__ == "__main__":
    main()
