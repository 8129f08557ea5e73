#!/usr/bin/env python3
"""Tests the tools beyond one machine on real aligned LFW images (run by Tools/test_distributed.sh).

(a) Tools/spark_embed.py on a multi-process Spark cluster on this machine (`local-cluster[2,1,2048]`: a master, a
    worker and two executor JVMs of one core each) over the first LFW people (sorted) holding at least --images
    images: the Parquet rows must equal `faceembed embed --files-from` run on one machine over the same list, every
    manifest line once, the same float32 bits.
(b) The same job again, with one executor JVM killed (SIGKILL) while its tasks run: still every line exactly once,
    the same bits; the event log counts the failed task attempts and their retries.
(c) Milvus Lite through Tools/milvus_load.py, on the Parquet of (a): the first image of each person is enrolled (the
    people with one image are distractors), the others are probes; Milvus's top-1 (COSINE, FLAT) must name the same
    gallery image as `faceembed search --top 1` over a gallery made by `faceembed enroll` from the one-machine JSON
    Lines records of the same images.
"""
import argparse
import glob
import json
import os
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import spark_embed  # noqa: E402

TOOLS = os.path.dirname(os.path.abspath(__file__))


def manifest(root, images):
    """Absolute paths of the first people (sorted; their images sorted) until there are `images` of them."""
    paths = []
    for person in sorted(os.listdir(root)):
        folder = os.path.join(root, person)
        if os.path.isdir(folder):
            paths += [os.path.join(folder, f) for f in sorted(os.listdir(folder)) if f.endswith(".jpg")]
            if len(paths) >= images:
                break
    return paths


def run(cmd, stdout=None, ok=(0,)):
    r = subprocess.run(cmd, stdout=stdout, stderr=subprocess.PIPE, text=True)
    if r.returncode not in ok:
        sys.exit("FAIL: %s exited with %d\n%s" % (" ".join(cmd), r.returncode, r.stderr[-4000:]))


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def bits(values):
    import numpy as np
    return np.asarray(values, np.float32).view(np.uint32)


def compare(parquet, paths, single):
    """Failures (a list of messages) of the Parquet rows against the one-machine records `single`."""
    import numpy as np
    import pyarrow.parquet as pq
    table = pq.read_table(parquet).sort_by([("line", "ascending"), ("face", "ascending")]).to_pydict()
    failures = []
    keys = list(zip(table["line"], table["face"]))
    if len(set(keys)) != len(keys):
        failures.append("%d duplicate (line, face) rows" % (len(keys) - len(set(keys))))
    if sorted(set(table["line"])) != list(range(len(paths))):
        failures.append("lines present: %d of %d" % (len(set(table["line"])), len(paths)))
    if len(keys) != len(single):
        failures.append("%d rows, one machine gave %d records" % (len(keys), len(single)))
    differ = 0
    for i, record in enumerate(single[:len(keys)]):
        same = (table["path"][i] == record["path"] and paths[table["line"][i]] == record["path"]
                and table["face"][i] == record.get("face") and table["error"][i] == record.get("error")
                and table["model"][i] == record.get("model") and table["dim"][i] == record.get("dim"))
        if same and "embedding" in record:
            same = np.array_equal(bits(table["embedding"][i]), bits(record["embedding"]))
        differ += not same
    if differ:
        failures.append("%d rows differ from the one-machine records" % differ)
    return failures, len(keys)


def partition_checks(args, paths, work):
    """A task must fail (for Spark to retry it) unless faceembed answered every path in order and exited 0 or 2;
    a file that fails is an error row."""
    lines = list(enumerate(paths[:3] + [os.path.join(work, "missing.jpg")]))
    rows = list(spark_embed.embed_partition(
        spark_embed.faceembed_command(args.faceembed, args.model, 1, 8), lines))
    failures = [] if [r[9] is None for r in rows] == [True, True, True, False] else ["a missing file: %r" % rows[-1:]]
    answer = "".join(json.dumps({"path": p, "error": "e"}) + "\n" for _, p in lines)
    fakes = {"a crash after every record": ["sh", "-c", "cat >/dev/null; printf '%s' \"$0\"; exit 1", answer],
             "a record missing": ["sh", "-c", "cat >/dev/null; printf '%s' \"$0\" | head -n 3", answer],
             "records out of order": ["sh", "-c", "cat >/dev/null; printf '%s' \"$0\" | sort -r", answer]}
    for name, command in fakes.items():
        try:
            list(spark_embed.embed_partition(command, lines))
            failures.append("%s did not fail the task" % name)
        except RuntimeError:
            pass
    print("partition checks: a missing file gives an error row; a crash, a missing record and records out of order "
          "fail the task: %s" % ("ok" if not failures else "FAILED"))
    return failures


class ExecutorKiller(threading.Thread):
    """Kills one executor JVM of the application with SIGKILL once tasks of the running stage have completed and
    others are running."""

    def __init__(self, sc, after_tasks=2):
        super().__init__(daemon=True)
        self.sc, self.after_tasks, self.killed, self.stop = sc, after_tasks, None, threading.Event()

    def executors(self):
        out = subprocess.run(["ps", "-eo", "pid=,args="], stdout=subprocess.PIPE, text=True).stdout
        found = []
        for line in out.splitlines():
            pid, _, args = line.strip().partition(" ")
            if "CoarseGrainedExecutorBackend" in args and self.sc.applicationId in args:
                words = args.split()
                found.append((int(pid), words[words.index("--executor-id") + 1]))
        return sorted(found, key=lambda e: e[1])

    def run(self):
        tracker = self.sc.statusTracker()
        while not self.stop.is_set() and self.killed is None:
            for stage in tracker.getActiveStageIds():
                info = tracker.getStageInfo(stage)
                if info and info.numCompletedTasks >= self.after_tasks and info.numActiveTasks >= 2:
                    running = self.executors()
                    if running:
                        os.kill(running[0][0], signal.SIGKILL)
                        self.killed = (running[0], info.numCompletedTasks, info.numTasks)
                        return
            time.sleep(0.05)


def task_attempts(event_dir, group):
    """(failed attempts with their reasons, successful attempts, tasks) of the jobs of job group `group`, from the
    Spark event log."""
    stages, failed, succeeded, tasks = set(), [], 0, set()
    for path in glob.glob(os.path.join(event_dir, "*")):
        with open(path) as f:
            events = [json.loads(line) for line in f if line.strip()]
        for e in events:
            if e["Event"] == "SparkListenerJobStart" and (e.get("Properties") or {}).get("spark.jobGroup.id") == group:
                stages.update(e["Stage IDs"])
        for e in events:
            if e["Event"] == "SparkListenerTaskEnd" and e["Stage ID"] in stages:
                tasks.add((e["Stage ID"], e["Task Info"]["Index"]))
                reason = e["Task End Reason"]["Reason"]
                if reason == "Success":
                    succeeded += 1
                else:
                    failed.append((e["Task Info"]["Index"], e["Task Info"]["Executor ID"], reason))
    return failed, succeeded, len(tasks)


def spark_tests(args, paths, single, work):
    events = os.path.join(work, "events")
    os.makedirs(events)
    # One plain event log file (Spark 4 writes rolling, compressed ones by default): the task attempts are read back.
    conf = [("spark.executor.memory", "768m"), ("spark.driver.memory", "768m"), ("spark.task.maxFailures", "4"),
            ("spark.eventLog.enabled", "true"), ("spark.eventLog.dir", "file://" + events),
            ("spark.eventLog.rolling.enabled", "false"), ("spark.eventLog.compress", "false")]
    spark = spark_embed.session(args.master, "faceembed-test", conf)
    sc = spark.sparkContext
    sc.setLogLevel("ERROR")
    failures, figures = [], {}
    try:
        for name, kill in (("a", False), ("b", True)):
            sc.setJobGroup(name, "run " + name)
            out = os.path.join(work, name + ".parquet")
            killer = ExecutorKiller(sc) if kill else None
            if killer:
                killer.start()
            t0 = time.time()
            rdd = spark_embed.embed_rdd(sc, paths, args.partitions, args.faceembed, args.model, threads=1)
            spark_embed.write_parquet(spark, rdd, out)
            elapsed = time.time() - t0
            if killer:
                killer.stop.set()
                killer.join()
                if killer.killed is None:
                    failures.append("(b) the job ended before an executor could be killed")
            found, rows = compare(out, paths, single)
            failures += ["(%s) %s" % (name, f) for f in found]
            figures[name] = (rows, elapsed, killer and killer.killed)
        executors = sc._jsc.sc().getExecutorMemoryStatus().size() - 1
    finally:
        spark.stop()
    for name in ("a", "b"):
        rows, elapsed, killed = figures.get(name, (0, 0, None))
        failed, succeeded, tasks = task_attempts(events, name)
        print("(%s) %s: %d executors at the end, %d partitions, %d paths -> %d rows, %.1f s; %d tasks, %d failed "
              "attempts, %d successful attempts%s" % (
                  name, args.master, executors, args.partitions, len(paths), rows, elapsed, tasks, len(failed),
                  succeeded, "" if not killed else "; killed executor %s (pid %d) after %d of %d tasks" % (
                      killed[0][1], killed[0][0], killed[1], killed[2])))
        for index, executor, reason in failed:
            print("    task %d on executor %s: %s" % (index, executor, reason))
        if name == "b" and killed and not failed:
            failures.append("(b) an executor was killed but no task attempt failed (it ran nothing?)")
    return failures


def milvus_test(args, paths, single, work):
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    people = {}
    for p in paths:
        people.setdefault(os.path.basename(os.path.dirname(p)), []).append(p)
    gallery = [ps[0] for ps in people.values()]
    probes = [p for ps in people.values() for p in ps[1:]]
    table = pq.read_table(os.path.join(work, "a.parquet"))
    for name, subset in (("gallery", gallery), ("probes", probes)):
        pq.write_table(table.filter(pc.is_in(table["path"], value_set=pa.array(subset))),
                       os.path.join(work, name + ".parquet"))
    loader = [sys.executable, os.path.join(TOOLS, "milvus_load.py")]
    db = os.path.join(work, "milvus.db")
    run(loader + ["load", "--uri", db, "--drop", os.path.join(work, "gallery.parquet")])
    with open(os.path.join(work, "milvus.jsonl"), "w") as out:
        run(loader + ["query", "--uri", db, "--top", "1", os.path.join(work, "probes.parquet")], stdout=out)
    wanted = set(gallery)
    with open(os.path.join(work, "gallery.jsonl"), "w") as out:
        out.write("".join(json.dumps(r) + "\n" for r in single if r["path"] in wanted))
    with open(os.path.join(work, "probes.txt"), "w") as out:
        out.write("".join(p + "\n" for p in probes))
    feg = os.path.join(work, "gallery.feg")
    run([args.faceembed, "enroll", "--gallery", feg, os.path.join(work, "gallery.jsonl")], stdout=subprocess.DEVNULL)
    with open(os.path.join(work, "search.jsonl"), "w") as out:
        run([args.faceembed, "search", "--gallery", feg, "--top", "1", "--json", "--threads", "1", "--model",
             args.model, "--files-from", os.path.join(work, "probes.txt")], stdout=out)
    milvus = {r["path"]: r["matches"][0] for r in read_jsonl(os.path.join(work, "milvus.jsonl"))}
    search = {r["path"]: r["matches"][0] for r in read_jsonl(os.path.join(work, "search.jsonl"))}
    same = sum(p in milvus and p in search and milvus[p]["id"] == search[p]["id"] for p in probes)
    both = [p for p in probes if p in milvus and p in search]
    gap = max((abs(milvus[p]["similarity"] - search[p]["similarity"]) for p in both), default=0.0)
    hits = sum(os.path.dirname(search[p]["id"]) == os.path.dirname(p) for p in probes if p in search)
    print("(c) Milvus Lite (COSINE, FLAT): %d gallery rows (%d people with 2+ images, %d distractors), %d probes: "
          "top-1 equal to faceembed search for %d of %d (largest similarity difference %.2g); rank-1 %d/%d"
          % (len(gallery), sum(len(ps) >= 2 for ps in people.values()), sum(len(ps) == 1 for ps in people.values()),
             len(probes), same, len(probes), gap, hits, len(probes)))
    return [] if same == len(probes) else ["(c) Milvus's top-1 differs from faceembed search for %d probes"
                                           % (len(probes) - same)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--faceembed", default=".build/release/faceembed")
    ap.add_argument("--model", default="Models/w600k_mbf.feb")
    ap.add_argument("--lfw", default="../shared/lfw/lfw-112x112")
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--partitions", type=int, default=16)
    ap.add_argument("--master", default="local-cluster[2,1,2048]")
    ap.add_argument("--work", help="working directory (default: a new temporary one, removed on success)")
    args = ap.parse_args()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    args.faceembed, args.model = os.path.abspath(args.faceembed), os.path.abspath(args.model)
    import shutil
    import tempfile
    work = args.work or tempfile.mkdtemp(prefix="faceembed-distributed-")
    os.makedirs(work, exist_ok=True)
    paths = manifest(os.path.abspath(args.lfw), args.images)
    with open(os.path.join(work, "manifest.txt"), "w") as out:
        out.write("".join(p + "\n" for p in paths))
    t0 = time.time()
    with open(os.path.join(work, "single.jsonl"), "w") as out:
        run([args.faceembed, "embed", "--files-from", os.path.join(work, "manifest.txt"), "--threads", "1",
             "--model", args.model], stdout=out)
    single = read_jsonl(os.path.join(work, "single.jsonl"))
    print("one machine: faceembed embed --files-from (%d paths) --threads 1: %d records, %.1f s"
          % (len(paths), len(single), time.time() - t0))
    failures = partition_checks(args, paths, work)
    failures += spark_tests(args, paths, single, work)
    failures += milvus_test(args, paths, single, work)
    for f in failures:
        print("FAIL: " + f)
    if failures:
        print("work files kept in " + work)
        return 1
    if not args.work:
        shutil.rmtree(work)
    print("test_distributed: all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
