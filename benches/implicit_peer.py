"""The `implicit` library as evaluate's peer (issue 28): ALS, item-item cosine
and BM25 trained on the split `shopfeat evaluate --write-split DIR` wrote (the
purchase matrix before T), each ranking the whole catalog on sale at T for every
tested customer minus what they bought; the lists go to OUT as Parquet
(model, customer_id, rank, product_id), which `shopfeat evaluate --peer-lists
OUT` scores with the same metric code as our sources.

    python benches/implicit_peer.py SPLIT_DIR OUT.parquet [K]

Run by benches/implicit_peer.sh; needs `pip install implicit polars`.
"""

import sys

import numpy as np
import polars as pl
import scipy.sparse as sp
from implicit.als import AlternatingLeastSquares
from implicit.nearest_neighbours import BM25Recommender, CosineRecommender


def main(split: str, out: str, k: int) -> None:
    train = pl.read_parquet(f"{split}/train.parquet")
    catalog = pl.read_parquet(f"{split}/catalog.parquet")["product_id"].to_list()
    tested = pl.read_parquet(f"{split}/customers.parquet")["customer_id"].to_list()
    users = sorted(set(train["customer_id"].to_list()) | set(tested))
    items = sorted(set(train["product_id"].to_list()) | set(catalog))
    user_index = {u: i for i, u in enumerate(users)}
    item_index = {p: i for i, p in enumerate(items)}
    rows = np.array([user_index[u] for u in train["customer_id"].to_list()])
    cols = np.array([item_index[p] for p in train["product_id"].to_list()])
    matrix = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(users), len(items)))
    on_sale = set(catalog)
    # Items not on sale at T are never recommended (as for our sources).
    off_sale = np.array([i for p, i in item_index.items() if p not in on_sale], dtype=np.int32)
    tested_rows = np.array([user_index[u] for u in tested])
    models = {
        "implicit_als": AlternatingLeastSquares(factors=64, regularization=0.05, iterations=15, random_state=42),
        "implicit_cosine": CosineRecommender(K=100),
        "implicit_bm25": BM25Recommender(K=100),
    }
    frames = []
    for name, model in models.items():
        model.fit(matrix, show_progress=False)
        ids, _ = model.recommend(tested_rows, matrix[tested_rows], N=k, filter_already_liked_items=True, filter_items=off_sale)
        for row, user in enumerate(tested):
            picked = [items[i] for i in ids[row] if i >= 0]
            frames.append(pl.DataFrame({"model": [name] * len(picked), "customer_id": [user] * len(picked), "rank": list(range(1, len(picked) + 1)), "product_id": picked}, schema={"model": pl.String, "customer_id": pl.Int64, "rank": pl.Int64, "product_id": pl.Int64}))
        print(f"{name}: ranked {len(tested)} customers", file=sys.stderr)
    pl.concat(frames).write_parquet(out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 10)
