#!/usr/bin/env python3
"""Embeds a manifest of image paths on an Apache Spark cluster with `faceembed embed --files-from -`; writes Parquet.

    .venv-spark/bin/python Tools/spark_embed.py --manifest LIST --out DIR [--master URL] [--partitions N]
        [--model Models/w600k_mbf.feb] [--faceembed .build/release/faceembed] [--threads 1] [--ship]

The driver reads LIST (one path a line, blank lines skipped) and splits it into N partitions of consecutive lines.
The paths must be readable on every executor, and a relative one resolves in the executor's working directory, not
the driver's: give absolute paths. Each task starts one `faceembed embed --files-from - --threads T`, feeds its
partition's paths on standard input and parses the JSON Lines records it writes. The task is a pure function of its
partition: it checks that faceembed answered every path it was given, in order, and fails otherwise (a crash, a
kill, exit status other than 0 or 2), so Spark retries it from scratch; the Parquet writer commits one attempt per
task, so every manifest line appears in DIR exactly once, however many attempts ran.

DIR is one Parquet table, one row per face and one per file that failed:
    line       long           the manifest line (0-based, blank lines not counted): the order of the manifest
    path       string
    face       int            face index in the file (null for an error row)
    box        array<float>   [x1, y1, x2, y2] when detected, else null
    score      float          detection score, else null
    landmarks  array<array<float>>  five [x, y] points when detected, else null
    model      string         model name (null for an error row)
    dim        int            embedding length (null for an error row)
    embedding  array<float>   the unit-length embedding, the float32 values faceembed printed, bit for bit
    error      string         null, or faceembed's message for a file that failed (then every face field is null)

--ship sends the faceembed binary and the model to the executors with SparkContext.addFile, for a cluster whose
machines do not share a file system with the driver (the binary must suit the executors' CPU: see the README's
package traits). Without it, --faceembed and --model must be valid paths on every executor.
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time

FIELDS = ("line", "path", "face", "box", "score", "landmarks", "model", "dim", "embedding", "error")


def schema():
    from pyspark.sql.types import (ArrayType, FloatType, IntegerType, LongType, StringType, StructField,
                                   StructType)
    floats = ArrayType(FloatType(), containsNull=False)
    types = {"line": LongType(), "path": StringType(), "face": IntegerType(), "box": floats, "score": FloatType(),
             "landmarks": ArrayType(floats, containsNull=False), "model": StringType(), "dim": IntegerType(),
             "embedding": floats, "error": StringType()}
    return StructType([StructField(f, types[f], nullable=f not in ("line", "path")) for f in FIELDS])


def read_manifest(path):
    """The manifest's non-blank lines, each a path (no tab, carriage return or newline: faceembed reads lines)."""
    with open(path, encoding="utf-8") as f:
        paths = [line.rstrip("\n") for line in f]
    paths = [p for p in paths if p.strip()]
    for p in paths:
        if "\r" in p:
            raise SystemExit("%s: a path holds a carriage return: %r" % (path, p))
    return paths


def row(line, record):
    """One output row (a tuple in FIELDS order) from a faceembed JSON Lines record."""
    if "error" in record:
        return (line, record["path"], None, None, None, None, None, None, None, record["error"])
    return (line, record["path"], record["face"], record.get("box"), record.get("score"), record.get("landmarks"),
            record["model"], record["dim"], record["embedding"], None)


def ordered_rows(lines, records):
    """The rows of faceembed's `records` for the (line, path) pairs `lines`, checked as they stream: records come in
    list order, faces 0, 1, ... of each path or one error record. Raises at the first record out of place or when a
    path is left unanswered."""
    at, last = 0, None
    for record in records:
        if record.get("face", 0) > 0:
            if last is None or last[1] != record["path"] or last[2] != record["face"] - 1:
                raise RuntimeError("faceembed gave face %d of %r out of order" % (record["face"], record["path"]))
            last = row(last[0], record)
        elif at < len(lines) and record["path"] == lines[at][1]:
            last = row(lines[at][0], record)
            at += 1
        else:
            raise RuntimeError("faceembed answered %r where %r was expected"
                               % (record["path"], lines[at][1] if at < len(lines) else None))
        yield last
    if at != len(lines):
        raise RuntimeError("faceembed stopped after %d of %d paths" % (at, len(lines)))


def embed_partition(command, lines):
    """Runs `command` (faceembed embed --files-from - ...) over (line, path) pairs; yields the rows as they come.

    Raises when faceembed does not answer every path in order or exits other than 0 (all embedded) or 2 (some files
    failed, each with an error record), so that Spark retries the whole partition (the rows of a failed attempt are
    never committed)."""
    lines = list(lines)
    if not lines:
        return
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stderr = []

    def feed():
        try:
            with proc.stdin:
                proc.stdin.write("".join(p + "\n" for _, p in lines).encode("utf-8"))
        except BrokenPipeError:
            pass  # faceembed stopped reading: its exit status or the record check names the fault

    threads = [threading.Thread(target=feed, daemon=True),
               threading.Thread(target=lambda: stderr.append(proc.stderr.read()), daemon=True)]
    for t in threads:
        t.start()
    try:
        yield from ordered_rows(lines, (json.loads(text) for text in proc.stdout))
        status = proc.wait()
        if status not in (0, 2):
            for t in threads:
                t.join()
            raise RuntimeError("faceembed exited with status %d: %s"
                               % (status, b"".join(stderr).decode("utf-8", "replace")[-2000:]))
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def faceembed_command(binary, model, threads, batch):
    return [binary, "embed", "--files-from", "-", "--threads", str(threads), "--batch", str(batch)] + (
        ["--model", model] if model else [])


def embed_rdd(sc, paths, partitions, binary, model, threads=1, batch=8, ship=False):
    """The RDD of output rows (tuples in FIELDS order) of `paths`, in `partitions` slices of consecutive lines."""
    # The task functions live in this module: the executors' Python workers import it from the file sent here.
    sc.addPyFile(os.path.abspath(__file__))
    if ship:
        from pyspark import SparkFiles
        sc.addFile(os.path.abspath(binary))
        if model:
            sc.addFile(os.path.abspath(model))
        names = (os.path.basename(binary), os.path.basename(model) if model else None)

        def command():
            exe = SparkFiles.get(names[0])
            os.chmod(exe, 0o755)
            return faceembed_command(exe, names[1] and SparkFiles.get(names[1]), threads, batch)
    else:
        fixed = faceembed_command(os.path.abspath(binary), model and os.path.abspath(model), threads, batch)

        def command():
            return fixed
    # parallelize slices a list deterministically: a retried task gets the same lines again.
    numbered = sc.parallelize(list(enumerate(paths)), partitions)
    return numbered.mapPartitions(lambda part: embed_partition(command(), part))


def write_parquet(spark, rdd, out):
    spark.createDataFrame(rdd, schema()).write.mode("overwrite").parquet(out)


def session(master, name="faceembed", conf=()):
    from pyspark.sql import SparkSession
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.master(master).appName(name).config("spark.ui.showConsoleProgress", "false")
    for key, value in conf:
        builder = builder.config(key, value)
    return builder.getOrCreate()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--manifest", required=True, help="the image paths, one a line")
    ap.add_argument("--out", required=True, help="the Parquet directory to write (replaced if it exists)")
    ap.add_argument("--master", default="local[*]", help="Spark master URL (default local[*]); spark-submit's "
                    "--master wins when run through spark-submit")
    ap.add_argument("--partitions", type=int, default=0, help="partitions (default: the default parallelism)")
    ap.add_argument("--model", help="FaceEmbed weight file (default: faceembed's own lookup on each executor)")
    ap.add_argument("--faceembed", default=".build/release/faceembed", help="the faceembed binary")
    ap.add_argument("--threads", type=int, default=1, help="faceembed --threads inside each task (default 1: "
                    "one task per executor core)")
    ap.add_argument("--batch", type=int, default=8, help="faceembed --batch (default 8)")
    ap.add_argument("--ship", action="store_true", help="send the binary and model to the executors (addFile)")
    ap.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE", help="extra Spark setting")
    args = ap.parse_args()
    paths = read_manifest(args.manifest)
    spark = session(args.master, conf=[c.split("=", 1) for c in args.conf])
    sc = spark.sparkContext
    partitions = args.partitions or sc.defaultParallelism
    t0 = time.time()
    rdd = embed_rdd(sc, paths, partitions, args.faceembed, args.model, args.threads, args.batch, args.ship)
    write_parquet(spark, rdd, args.out)
    elapsed = time.time() - t0
    table = spark.read.parquet(args.out)
    errors = table.filter("error IS NOT NULL").count()
    # The block managers of the executors plus the driver's (local mode: the driver's alone, and it runs the tasks).
    executors = sc._jsc.sc().getExecutorMemoryStatus().size() - 1
    print("%s: %d rows (%d error rows) from %d paths, %d partitions, %s, %.1f s"
          % (args.out, table.count(), errors, len(paths), partitions,
             "%d executors" % executors if executors else "local mode", elapsed))
    spark.stop()
    return 2 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
