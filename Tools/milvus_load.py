#!/usr/bin/env python3
"""Loads face embeddings into a Milvus collection, and queries it: 1:N search beyond one machine.

    .venv-spark/bin/python Tools/milvus_load.py load  --uri URI [--token T] --collection C INPUT [--drop]
    .venv-spark/bin/python Tools/milvus_load.py query --uri URI [--token T] --collection C PROBES [--top K]

INPUT and PROBES are the Parquet written by Tools/spark_embed.py (a directory or file) or the JSON Lines of
`faceembed embed --files-from`; error rows/records are skipped and counted. URI is a Milvus Lite file (`faces.db`:
the embedded server of the `milvus-lite` package, one process) or a Milvus server or cluster
(`http://host:19530`, `https://...` for Zilliz Cloud) with `--token user:password` or an API key (default: the
MILVUS_TOKEN environment variable). The client API is the same for both.

The collection: `id` VARCHAR primary key (the path, or `path#N` for face N > 0: the ids `faceembed enroll` gives),
`path` VARCHAR, `face` INT64, `embedding` FLOAT_VECTOR(dim), a FLAT index with the COSINE metric (exact search).
load inserts in batches and flushes; with --drop it replaces the collection, else it must not exist yet (or have
the same dimension, and then rows are upserted by id).

query prints one JSON Lines record per probe face, the shape of `faceembed search --json`:
    {"path": "q.jpg", "face": 0, "matches": [{"id": "...", "similarity": 0.81}, ...]}
"""
import argparse
import json
import os
import sys

MAX_ID = 4096


def face_id(path, face):
    return path if face == 0 else "%s#%d" % (path, face)


def read_rows(source):
    """(path, face, embedding as a list of floats) of every face in Parquet or JSON Lines, and the error count."""
    if os.path.isdir(source) or source.endswith(".parquet"):
        import pyarrow.parquet as pq
        table = pq.read_table(source, columns=["line", "path", "face", "embedding", "error"]).sort_by("line")
        columns = table.to_pydict()
        errors = sum(e is not None for e in columns["error"])
        rows = [(p, f, e) for p, f, e, err in zip(columns["path"], columns["face"], columns["embedding"],
                                                  columns["error"]) if err is None]
        return rows, errors
    rows, errors = [], 0
    with open(source, encoding="utf-8") as f:
        for number, text in enumerate(f, 1):
            if not text.strip():
                continue
            record = json.loads(text)
            if "error" in record:
                errors += 1
            elif "embedding" in record:
                rows.append((record["path"], record.get("face", 0), record["embedding"]))
            else:
                raise SystemExit("%s:%d: neither a face record nor an error record" % (source, number))
    return rows, errors


def client(args):
    from pymilvus import MilvusClient
    token = args.token if args.token is not None else os.environ.get("MILVUS_TOKEN", "")
    return MilvusClient(uri=args.uri, token=token)


def create(milvus, name, dim):
    from pymilvus import DataType
    schema = milvus.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=MAX_ID)
    schema.add_field("path", DataType.VARCHAR, max_length=MAX_ID)
    schema.add_field("face", DataType.INT64)
    schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=dim)
    index = milvus.prepare_index_params()
    index.add_index(field_name="embedding", index_type="FLAT", metric_type="COSINE")
    milvus.create_collection(name, schema=schema, index_params=index)


def load(args):
    rows, errors = read_rows(args.input)
    if not rows:
        raise SystemExit("%s: no face rows" % args.input)
    dim = len(rows[0][2])
    if any(len(e) != dim for _, _, e in rows):
        raise SystemExit("%s: embeddings of different lengths" % args.input)
    milvus = client(args)
    if args.drop and milvus.has_collection(args.collection):
        milvus.drop_collection(args.collection)
    if not milvus.has_collection(args.collection):
        create(milvus, args.collection, dim)
    for start in range(0, len(rows), args.batch):
        chunk = [{"id": face_id(p, f), "path": p, "face": f, "embedding": e}
                 for p, f, e in rows[start:start + args.batch]]
        milvus.upsert(args.collection, chunk)
    milvus.flush(args.collection)
    milvus.load_collection(args.collection)
    print("%s: %d rows of %d values loaded into %s (%d error rows skipped)"
          % (args.input, len(rows), dim, args.collection, errors), file=sys.stderr)


def query(args):
    rows, errors = read_rows(args.probes)
    milvus = client(args)
    milvus.load_collection(args.collection)
    for start in range(0, len(rows), args.batch):
        chunk = rows[start:start + args.batch]
        answers = milvus.search(args.collection, data=[e for _, _, e in chunk], anns_field="embedding",
                                limit=args.top, search_params={"metric_type": "COSINE"}, output_fields=["id"])
        for (path, face, _), hits in zip(chunk, answers):
            matches = [{"id": h["id"], "similarity": h["distance"]} for h in hits]
            print(json.dumps({"path": path, "face": face, "matches": matches}))
    if errors:
        print("%s: %d error rows skipped" % (args.probes, errors), file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    for mode, source in (("load", "input"), ("query", "probes")):
        p = sub.add_parser(mode)
        p.add_argument("--uri", required=True, help="a Milvus Lite file (faces.db) or http(s)://host:port")
        p.add_argument("--token", help="user:password or API key of a Milvus server (default: $MILVUS_TOKEN)")
        p.add_argument("--collection", default="faces")
        p.add_argument("--batch", type=int, default=1000, help="rows per insert or search call")
        p.add_argument(source, help="Parquet (spark_embed.py) or JSON Lines (faceembed embed --files-from)")
    sub.choices["load"].add_argument("--drop", action="store_true", help="replace the collection")
    sub.choices["query"].add_argument("--top", type=int, default=5, help="matches per probe (default 5)")
    args = ap.parse_args()
    load(args) if args.mode == "load" else query(args)


if __name__ == "__main__":
    main()
