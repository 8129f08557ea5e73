#!/usr/bin/env python3
"""Make the progressive / CMYK / YCCK / EXIF-orientation JPEG (and PNG eXIf) test set from real photos.

Needs: Pillow (the project's venv). Usage:
    make_jpeg_fixtures.py --out OUT_DIR --shared SHARED_DIR            (OUT_DIR: e.g. Fixtures-local/jpeg-extra)
    make_jpeg_fixtures.py --big OUT.jpg                                 (only the 12-megapixel progressive JPEG)
    make_jpeg_fixtures.py --committed      (small synthetic files into Tests/FaceEmbedTests/Fixtures/images/extra)

Sources: SHARED_DIR/images/portraits/*.jpg and the first 4 (sorted) SHARED_DIR/lfw/lfw-112x112/*/*.jpg.
Writes OUT_DIR/NAME.{jpg,png} with OUT_DIR/NAME_{jpg,png}.rgb = what Pillow returns for
`ImageOps.exif_transpose(Image.open(NAME)).convert("RGB")` (raw width*height*3 bytes), and OUT_DIR/manifest.txt
listing `FILE width height RGB-FILE` per line. Also OUT_DIR/big12mp.jpg (4000x3000 progressive, a portrait
upscaled) with its .rgb, listed last.

Variants per source photo: progressive at qualities 50/75/95, with and without optimize, 4:2:0 / 4:2:2 / 4:4:4,
restart intervals (in blocks and in rows), grayscale progressive, RGB (keep_rgb) progressive; CMYK baseline and
progressive (Pillow writes Adobe transform 0, inverted); YCCK (Adobe transform 2, written by the small encoder in
make_image_fixtures.py since Pillow cannot); EXIF orientation 1-8 (the upright picture rotated/flipped the other
way, so the upright result is known) as JPEG baseline, JPEG progressive and PNG with an eXIf chunk.
"""
import argparse
import glob
import io
import os
import sys

from PIL import Image, ImageOps

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_image_fixtures as mif  # noqa: E402  (its tiny encoder writes the YCCK files)

# The transpose that undoes orientation o (what exif_transpose applies), and its inverse (to make the stored file).
UNDO = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_90}
INVERSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
           5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE,
           8: Image.Transpose.ROTATE_270}


def save(im, fmt, **kw):
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def pillow_rgb(data):
    im = Image.open(io.BytesIO(data))
    im.load()
    return ImageOps.exif_transpose(im).convert("RGB")


class Writer:
    def __init__(self, out):
        self.out = out
        self.lines = []
        os.makedirs(out, exist_ok=True)

    def add(self, name, data):
        with open(os.path.join(self.out, name), "wb") as f:
            f.write(data)
        rgb = pillow_rgb(data)
        rgb_name = name.replace(".", "_") + ".rgb"
        with open(os.path.join(self.out, rgb_name), "wb") as f:
            f.write(rgb.tobytes())
        self.lines.append(f"{name} {rgb.width} {rgb.height} {rgb_name}")

    def finish(self):
        with open(os.path.join(self.out, "manifest.txt"), "w") as f:
            f.write("# file width height pillow-rgb (made by Tools/make_jpeg_fixtures.py)\n")
            f.write("\n".join(self.lines) + "\n")


def progressive_variants(w, stem, im):
    for q in (50, 75, 95):
        for opt in (False, True):
            for sub, tag in ((2, "420"), (1, "422"), (0, "444")):
                name = f"{stem}_p{tag}_q{q}{'_opt' if opt else ''}.jpg"
                w.add(name, save(im, "JPEG", quality=q, optimize=opt, progressive=True, subsampling=sub))
    w.add(f"{stem}_p420_rst7.jpg", save(im, "JPEG", quality=85, progressive=True, restart_marker_blocks=7))
    w.add(f"{stem}_p444_rstrow.jpg", save(im, "JPEG", quality=85, progressive=True, subsampling=0,
                                          restart_marker_rows=1))
    w.add(f"{stem}_pgray.jpg", save(im.convert("L"), "JPEG", quality=80, progressive=True))
    w.add(f"{stem}_pgray_rst.jpg", save(im.convert("L"), "JPEG", quality=80, progressive=True, optimize=True,
                                        restart_marker_blocks=5))
    w.add(f"{stem}_prgb.jpg", save(im, "JPEG", quality=80, progressive=True, keep_rgb=True, subsampling=0))


def cmyk_variants(w, stem, im):
    cmyk = im.convert("CMYK")
    w.add(f"{stem}_cmyk.jpg", save(cmyk, "JPEG", quality=85))
    w.add(f"{stem}_cmyk_prog.jpg", save(cmyk, "JPEG", quality=75, progressive=True, optimize=True))


def ycck_variants(w, stem, im):
    # A small crop keeps the pure-Python encoder quick. Planes: YCbCr of the photo and a K made from its luma.
    small = im.resize((45, 37), Image.Resampling.BILINEAR)
    ycc = small.convert("YCbCr")
    width, height = small.size
    ys, cbs, crs = (list(p.tobytes()) for p in ycc.split())
    ks = [255 - (v * 3 // 4) for v in ys]
    planes = [[p[r * width:(r + 1) * width] for r in range(height)] for p in (ys, cbs, crs, ks)]
    for factors, tag in ((((1, 1),) * 4, "11"), (((2, 2), (1, 1), (1, 1), (2, 2)), "2112")):
        data = mif.encode_jpeg(planes, width, height, list(factors), ids=(1, 2, 3, 4), jfif=False, adobe=2, q=3)
        w.add(f"{stem}_ycck{tag}.jpg", data)
    data = mif.encode_jpeg(planes, width, height, [(1, 1)] * 4, ids=(1, 2, 3, 4), jfif=False, adobe=None, q=3)
    w.add(f"{stem}_cmyk_noadobe.jpg", data)


def orientation_variants(w, stem, im):
    upright = im.crop((0, 0, min(im.width, 301), min(im.height, 207)))
    for o in range(1, 9):
        stored = upright if o == 1 else upright.transpose(INVERSE[o])
        exif = Image.Exif()
        exif[0x0112] = o
        w.add(f"{stem}_exif{o}.jpg", save(stored, "JPEG", quality=90, exif=exif))
        w.add(f"{stem}_exif{o}_prog.jpg", save(stored, "JPEG", quality=90, exif=exif, progressive=True))
        w.add(f"{stem}_exif{o}.png", save(stored, "PNG", exif=exif))


def committed(out):
    """Small synthetic variants of everything above (each file a few kB), committed as test and fuzz seeds."""
    w = Writer(out)
    im = mif.pattern(61, 45, 7)
    for q, opt, sub, tag in ((75, False, 2, "420"), (90, True, 1, "422"), (50, False, 0, "444")):
        w.add(f"p{tag}_q{q}.jpg", save(im, "JPEG", quality=q, optimize=opt, progressive=True, subsampling=sub))
    w.add("p420_rst3.jpg", save(im, "JPEG", quality=85, progressive=True, restart_marker_blocks=3))
    w.add("p444_rstrow.jpg", save(im, "JPEG", quality=85, progressive=True, subsampling=0, restart_marker_rows=1))
    w.add("pgray.jpg", save(im.convert("L"), "JPEG", quality=80, progressive=True))
    w.add("pgray_rst.jpg", save(im.convert("L"), "JPEG", quality=80, progressive=True, optimize=True,
                                restart_marker_blocks=5))
    w.add("prgb.jpg", save(im, "JPEG", quality=80, progressive=True, keep_rgb=True, subsampling=0))
    w.add("p420_tiny.jpg", save(mif.pattern(3, 5, 8), "JPEG", quality=90, progressive=True))
    w.add("p420_1x1.jpg", save(mif.pattern(1, 1, 9), "JPEG", quality=90, progressive=True))
    w.add("cmyk.jpg", save(im.convert("CMYK"), "JPEG", quality=85))
    w.add("cmyk_prog.jpg", save(im.convert("CMYK"), "JPEG", quality=75, progressive=True))
    ycck_variants(w, "syn", im)
    upright = mif.pattern(33, 17, 10)
    for o in range(1, 9):
        stored = upright if o == 1 else upright.transpose(INVERSE[o])
        exif = Image.Exif()
        exif[0x0112] = o
        w.add(f"exif{o}.jpg", save(stored, "JPEG", quality=90, exif=exif, progressive=o % 2 == 0))
        if o in (3, 6, 8):
            w.add(f"exif{o}.png", save(stored, "PNG", exif=exif))
    w.finish()
    print(f"{len(w.lines)} images in {out}")


def big(path, source):
    im = Image.open(source).convert("RGB").resize((4000, 3000), Image.Resampling.BICUBIC)
    data = save(im, "JPEG", quality=90, progressive=True, optimize=True)
    with open(path, "wb") as f:
        f.write(data)
    return data


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out")
    ap.add_argument("--shared")
    ap.add_argument("--big")
    ap.add_argument("--committed", action="store_true")
    args = ap.parse_args()
    if args.committed:
        committed(os.path.join(mif.FIXTURES, "extra"))
        return
    if args.big:
        big(args.big, sorted(glob.glob(os.path.join(args.shared or "../shared", "images/portraits/*.jpg")))[0])
        return
    if not args.out or not args.shared:
        ap.error("--out and --shared are required")
    portraits = sorted(glob.glob(os.path.join(args.shared, "images/portraits/*.jpg")))
    lfw = sorted(glob.glob(os.path.join(args.shared, "lfw/lfw-112x112/*/*.jpg")))[:4]
    if not portraits:
        sys.exit(f"no portraits in {args.shared}/images/portraits")
    w = Writer(args.out)
    for i, path in enumerate(portraits + lfw):
        stem = ("lfw%d" % (i - len(portraits))) if i >= len(portraits) else os.path.splitext(os.path.basename(path))[0]
        im = Image.open(path).convert("RGB")
        progressive_variants(w, stem, im)
        cmyk_variants(w, stem, im)
        if i < 2:
            ycck_variants(w, stem, im)
            orientation_variants(w, stem, im)
    w.add("big12mp.jpg", big(os.path.join(args.out, "big12mp.jpg"), portraits[0]))
    w.finish()
    print(f"{len(w.lines)} images in {args.out}")


if __name__ == "__main__":
    main()
