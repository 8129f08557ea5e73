#!/usr/bin/env python3
"""Make the image-decoder fixtures: small synthetic JPEG/PNG files plus Pillow's decoded RGB.

Needs: Pillow (pip install Pillow).

Default (no arguments): writes synthetic images into Tests/FaceEmbedTests/Fixtures/images/ (committed), each
with NAME.rgb next to it (Pillow's img.convert("RGB") as raw width*height*3 bytes) and index.txt listing
`file width height expect` per line, where expect is `ok` or `refuse`.

With --local OUT_DIR --shared SHARED_DIR: writes Pillow's decoded RGB of SHARED_DIR/images/portraits/*.jpg and
of the first 200 (sorted) SHARED_DIR/lfw/lfw-112x112/*/*.jpg into OUT_DIR/pillow/, with OUT_DIR/pillow/manifest.txt
listing `source-path-relative-to-SHARED width height rgb-path-relative-to-OUT_DIR/pillow` per line.
"""
import argparse
import glob
import io
import os
import random
import sys

from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "Tests", "FaceEmbedTests", "Fixtures", "images")


def pattern(w, h, seed):
    """A seeded RGB gradient with noise and a few sharp edges (exercises chroma upsampling)."""
    rng = random.Random(seed)
    im = Image.new("RGB", (w, h))
    px = []
    for y in range(h):
        for x in range(w):
            r = (x * 255 // max(1, w - 1) + rng.randint(-20, 20))
            g = (y * 255 // max(1, h - 1) + rng.randint(-20, 20))
            b = ((x + y) * 7 % 256 + rng.randint(-30, 30))
            if (x // 5 + y // 4) % 3 == 0:
                r, b = b, 255 - r
            px.append(tuple(max(0, min(255, v)) for v in (r, g, b)))
    im.putdata(px)
    return im


def write(name, im, data, expect="ok"):
    with open(os.path.join(FIXTURES, name), "wb") as f:
        f.write(data)
    dec = Image.open(io.BytesIO(data))
    if expect == "ok":
        dec.load()
    rgb = dec.convert("RGB")
    base = os.path.splitext(name)[0] + "_" + os.path.splitext(name)[1][1:]
    with open(os.path.join(FIXTURES, base + ".rgb"), "wb") as f:
        f.write(rgb.tobytes())
    return f"{name} {rgb.width} {rgb.height} {base}.rgb {expect}"


def save(im, fmt, **kw):
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def synthetic():
    os.makedirs(FIXTURES, exist_ok=True)
    lines = []
    rgb = pattern(33, 17, 1)
    big = pattern(61, 45, 2)
    tiny = pattern(3, 5, 3)
    lines.append(write("j444.jpg", rgb, save(rgb, "JPEG", quality=90, subsampling=0)))
    lines.append(write("j422.jpg", rgb, save(rgb, "JPEG", quality=85, subsampling=1)))
    lines.append(write("j420.jpg", rgb, save(rgb, "JPEG", quality=80, subsampling=2)))
    lines.append(write("j420_big.jpg", big, save(big, "JPEG", quality=75, subsampling=2)))
    lines.append(write("j420_q100.jpg", big, save(big, "JPEG", quality=100, subsampling=2)))
    lines.append(write("j420_tiny.jpg", tiny, save(tiny, "JPEG", quality=90, subsampling=2)))
    lines.append(write("j422_tiny.jpg", tiny, save(tiny, "JPEG", quality=90, subsampling=1)))
    lines.append(write("jgray.jpg", rgb, save(rgb.convert("L"), "JPEG", quality=90)))
    lines.append(write("j420_restart.jpg", big, save(big, "JPEG", quality=85, subsampling=2, restart_marker_blocks=3)))
    lines.append(write("j444_restart_rows.jpg", rgb, save(rgb, "JPEG", quality=85, subsampling=0, restart_marker_rows=1)))
    lines.append(write("j420_optimized.jpg", big, save(big, "JPEG", quality=85, subsampling=2, optimize=True)))
    exif = Image.Exif()
    exif[0x010F] = "FaceEmbed test camera"
    exif[0x0110] = "Model X"
    exif[0x0112] = 1
    lines.append(write("j420_exif.jpg", rgb, save(rgb, "JPEG", quality=85, exif=exif.tobytes(), comment=b"a comment")))
    lines.append(write("jprogressive.jpg", rgb, save(rgb, "JPEG", quality=85, progressive=True), expect="refuse"))

    lines.append(write("pgray.png", rgb, save(rgb.convert("L"), "PNG")))
    lines.append(write("pgray_alpha.png", rgb, save(rgb.convert("LA"), "PNG")))
    lines.append(write("prgb.png", rgb, save(rgb, "PNG")))
    rgba = rgb.copy()
    rgba.putalpha(pattern(33, 17, 9).convert("L"))
    lines.append(write("prgba.png", rgba, save(rgba, "PNG")))
    pal = big.quantize(colors=200)
    lines.append(write("ppalette.png", pal, save(pal, "PNG")))
    pal16 = rgb.quantize(colors=16)
    lines.append(write("ppalette4.png", pal16, save(pal16, "PNG", bits=4)))
    pal4 = rgb.quantize(colors=4)
    lines.append(write("ppalette2.png", pal4, save(pal4, "PNG", bits=2)))
    bw = rgb.convert("1")
    lines.append(write("pbilevel.png", bw, save(bw, "PNG")))
    lines.append(write("prgb_big_fast.png", big, save(big, "PNG", compress_level=1)))
    lines.append(write("prgb_big_stored.png", big, save(big, "PNG", compress_level=0)))
    lines.append(write("prgb_tiny.png", tiny, save(tiny, "PNG")))
    with open(os.path.join(FIXTURES, "index.txt"), "w") as f:
        f.write("# file width height pillow-rgb expect (made by Tools/make_image_fixtures.py)\n")
        f.write("\n".join(lines) + "\n")
    total = sum(os.path.getsize(p) for p in glob.glob(os.path.join(FIXTURES, "*")))
    print(f"wrote {len(lines)} fixtures to {FIXTURES} ({total} bytes)")


def local(out_dir, shared):
    out = os.path.join(out_dir, "pillow")
    os.makedirs(out, exist_ok=True)
    sources = sorted(glob.glob(os.path.join(shared, "images", "portraits", "*.jpg")))
    lfw = sorted(glob.glob(os.path.join(shared, "lfw", "lfw-112x112", "*", "*.jpg")))[:200]
    if not sources or not lfw:
        sys.exit(f"no images found under {shared}")
    lines = []
    for src in sources + lfw:
        rel = os.path.relpath(src, shared)
        im = Image.open(src).convert("RGB")
        dst = os.path.splitext(rel)[0] + ".rgb"
        os.makedirs(os.path.dirname(os.path.join(out, dst)), exist_ok=True)
        with open(os.path.join(out, dst), "wb") as f:
            f.write(im.tobytes())
        lines.append(f"{rel} {im.width} {im.height} {dst}")
    with open(os.path.join(out, "manifest.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {len(lines)} decoded images to {out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--local", metavar="OUT_DIR", help="write Pillow decodes of the shared images here")
    ap.add_argument("--shared", metavar="SHARED_DIR", help="the shared data folder (with --local)")
    a = ap.parse_args()
    if a.local:
        if not a.shared:
            ap.error("--local needs --shared")
        local(a.local, a.shared)
    else:
        synthetic()


if __name__ == "__main__":
    main()
