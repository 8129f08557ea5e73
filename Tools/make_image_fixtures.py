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


# ---------------------------------------------------------------------------------------------------------------
# A tiny baseline JPEG encoder (pure Python) for layouts Pillow cannot write: unusual sampling factors,
# non-interleaved scans, Adobe/RGB colour. It borrows the standard Huffman tables from a Pillow-written JPEG.

def _segments(data):
    """(marker, payload) pairs of a JPEG's header segments up to SOS."""
    out, p = [], 2
    while p + 4 <= len(data):
        m = data[p + 1]
        n = int.from_bytes(data[p + 2:p + 4], "big")
        out.append((m, data[p + 4:p + 2 + n]))
        if m == 0xDA:
            break
        p += 2 + n
    return out


def _standard_tables():
    """{(class, id): (bits, values)} from the DHT segments Pillow writes (the Annex K tables)."""
    tables = {}
    for m, seg in _segments(save(Image.new("RGB", (8, 8)), "JPEG", quality=90)):
        if m != 0xC4:
            continue
        q = 0
        while q < len(seg):
            tc, th = seg[q] >> 4, seg[q] & 15
            bits = list(seg[q + 1:q + 17])
            vals = list(seg[q + 17:q + 17 + sum(bits)])
            tables[(tc, th)] = (bits, vals)
            q += 17 + sum(bits)
    return tables


def _codes(bits, vals):
    code, k, out = 0, 0, {}
    for length in range(1, 17):
        for _ in range(bits[length - 1]):
            out[vals[k]] = (code, length)
            code += 1
            k += 1
        code <<= 1
    return out


ZIGZAG = [0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7,
          14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46,
          53, 60, 61, 54, 47, 55, 62, 63]


def _fdct(block):
    import math
    out = [0.0] * 64
    cos = [[math.cos((2 * x + 1) * u * math.pi / 16) for x in range(8)] for u in range(8)]
    for v in range(8):
        for u in range(8):
            s = 0.0
            for y in range(8):
                row = block[y * 8:(y + 1) * 8]
                cy = cos[v][y]
                s += cy * sum(row[x] * cos[u][x] for x in range(8))
            cu = math.sqrt(0.5) if u == 0 else 1.0
            cv = math.sqrt(0.5) if v == 0 else 1.0
            out[v * 8 + u] = 0.25 * cu * cv * s
    return out


class _BitWriter:
    def __init__(self):
        self.out = bytearray()
        self.acc = 0
        self.n = 0

    def put(self, value, length):
        for i in range(length - 1, -1, -1):
            self.acc = (self.acc << 1) | ((value >> i) & 1)
            self.n += 1
            if self.n == 8:
                self.out.append(self.acc)
                if self.acc == 0xFF:
                    self.out.append(0)
                self.acc = 0
                self.n = 0

    def flush(self):
        while self.n:
            self.put(1, 1)


def encode_jpeg(planes, width, height, factors, ids=(1, 2, 3), scans=None, restart=0, jfif=True, adobe=None, q=4):
    """Encodes full-resolution component planes (lists of rows) as baseline JPEG.

    factors: (h, v) per component; scans: lists of component indices (default: one interleaved scan);
    restart: restart interval in MCUs; adobe: APP14 transform value or None; q: quantizer step for all terms."""
    n = len(planes)
    hmax = max(h for h, _ in factors)
    vmax = max(v for _, v in factors)
    mcus_x = -(-width // (8 * hmax))
    mcus_y = -(-height // (8 * vmax))
    std = _standard_tables()
    coefs = []  # per component: dict (bx, by) -> zigzag-ordered quantized coefficients
    dims = []
    for ci, (h, v) in enumerate(factors):
        cw, ch = -(-width * h // hmax), -(-height * v // vmax)
        fx, fy = hmax // h, vmax // v
        comp = [[0] * cw for _ in range(ch)]
        for y in range(ch):
            for x in range(cw):
                acc = cnt = 0
                for yy in range(y * fy, min(height, y * fy + fy)):
                    for xx in range(x * fx, min(width, x * fx + fx)):
                        acc += planes[ci][yy][xx]
                        cnt += 1
                comp[y][x] = acc / cnt
        bw, bh = mcus_x * h, mcus_y * v
        blocks = {}
        for by in range(bh):
            for bx in range(bw):
                blk = [comp[min(by * 8 + y, ch - 1)][min(bx * 8 + x, cw - 1)] - 128 for y in range(8) for x in range(8)]
                d = _fdct(blk)
                blocks[(bx, by)] = [int(round(d[ZIGZAG[k]] / q)) for k in range(64)]
        coefs.append(blocks)
        dims.append((cw, ch))
    data = bytearray(b"\xff\xd8")

    def seg(marker, payload):
        data.extend(bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload)

    if jfif:
        seg(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    if adobe is not None:
        seg(0xEE, b"Adobe\x00\x64\x00\x00\x00\x00" + bytes([adobe]))
    seg(0xDB, bytes([0]) + bytes([q] * 64))
    sof = bytes([8]) + height.to_bytes(2, "big") + width.to_bytes(2, "big") + bytes([n])
    for ci, (h, v) in enumerate(factors):
        sof += bytes([ids[ci], h << 4 | v, 0])
    seg(0xC0, sof)
    dht = b""
    for (tc, th), (bits, vals) in sorted(std.items()):
        dht += bytes([tc << 4 | th]) + bytes(bits) + bytes(vals)
    seg(0xC4, dht)
    if restart:
        seg(0xDD, restart.to_bytes(2, "big"))
    dc_codes = {t: _codes(*std[(0, t)]) for t in (0, 1)}
    ac_codes = {t: _codes(*std[(1, t)]) for t in (0, 1)}
    for scan in scans or [list(range(n))]:
        payload = bytes([len(scan)])
        for ci in scan:
            t = 0 if ci == 0 else 1
            payload += bytes([ids[ci], t << 4 | t])
        seg(0xDA, payload + bytes([0, 63, 0]))
        bw = _BitWriter()
        preds = {ci: 0 for ci in scan}

        def block(ci, key):
            t = 0 if ci == 0 else 1
            c = coefs[ci][key]
            diff = c[0] - preds[ci]
            preds[ci] = c[0]
            size = abs(diff).bit_length()
            code, length = dc_codes[t][size]
            bw.put(code, length)
            if size:
                bw.put(diff if diff > 0 else diff + (1 << size) - 1, size)
            run = 0
            last = max([k for k in range(1, 64) if c[k]] or [0])
            for k in range(1, last + 1):
                if c[k] == 0:
                    run += 1
                    continue
                while run > 15:
                    bw.put(*ac_codes[t][0xF0])
                    run -= 16
                size = abs(c[k]).bit_length()
                bw.put(*ac_codes[t][run << 4 | size])
                bw.put(c[k] if c[k] > 0 else c[k] + (1 << size) - 1, size)
                run = 0
            if last < 63:
                bw.put(*ac_codes[t][0x00])

        if len(scan) == 1:
            ci = scan[0]
            cw, ch = dims[ci]
            units = [[(ci, (x, y))] for y in range(-(-ch // 8)) for x in range(-(-cw // 8))]
        else:
            units = [[(ci, (mx * factors[ci][0] + bx, my * factors[ci][1] + by))
                      for ci in scan for by in range(factors[ci][1]) for bx in range(factors[ci][0])]
                     for my in range(mcus_y) for mx in range(mcus_x)]
        for i, unit in enumerate(units):
            if restart and i and i % restart == 0:
                bw.flush()
                bw.out.extend(bytes([0xFF, 0xD0 + (i // restart - 1) % 8]))
                preds = {ci: 0 for ci in scan}
            for ci, key in unit:
                block(ci, key)
        bw.flush()
        data.extend(bw.out)
    data.extend(b"\xff\xd9")
    return bytes(data)


def planes_of(im):
    """Rows of each band of an image, as lists."""
    w, h = im.size
    return [[list(band.tobytes()[y * w:(y + 1) * w]) for y in range(h)] for band in im.split()]


# ---------------------------------------------------------------------------------------------------------------
# A small PNG writer for what Pillow does not write: Adam7 interlacing, 16-bit colour, low-bit gray, every filter.

def encode_png(rows_of_samples, width, height, color_type, depth, interlace=False, palette=None):
    """rows_of_samples[y][x] is a tuple of samples (already at `depth` bits). Filters cycle through 0..4 per row."""
    import struct
    import zlib

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color_type]
    bpp = max(1, channels * depth // 8)
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)] \
        if interlace else [(0, 0, 1, 1)]
    raw = bytearray()
    row_index = 0
    for x0, y0, dx, dy in passes:
        xs = list(range(x0, width, dx))
        ys = list(range(y0, height, dy))
        if not xs or not ys:
            continue
        prev = None
        for y in ys:
            bits = []
            for x in xs:
                for s in rows_of_samples[y][x]:
                    bits.append((s, depth))
            line = bytearray()
            acc = n = 0
            for s, d in bits:
                if d == 16:
                    line += s.to_bytes(2, "big")
                else:
                    acc = (acc << d) | s
                    n += d
                    if n == 8:
                        line.append(acc)
                        acc = n = 0
            if n:
                line.append(acc << (8 - n))
            prev = prev or bytearray(len(line))
            f = row_index % 5
            row_index += 1
            out = bytearray()
            for i, b in enumerate(line):
                a = line[i - bpp] if i >= bpp else 0
                up = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                if f == 0:
                    pred = 0
                elif f == 1:
                    pred = a
                elif f == 2:
                    pred = up
                elif f == 3:
                    pred = (a + up) // 2
                else:
                    p = a + up - c
                    pa, pb, pc = abs(p - a), abs(p - up), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else (up if pb <= pc else c)
                out.append((b - pred) & 0xFF)
            raw += bytes([f]) + out
            prev = line
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0,
                                                                int(interlace)))
    if palette:
        png += chunk(b"PLTE", bytes(palette))
    z = zlib.compress(bytes(raw), 9)
    png += chunk(b"IDAT", z[:len(z) // 2]) + chunk(b"IDAT", z[len(z) // 2:]) + chunk(b"IEND", b"")
    return png


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
    lines.append(write("jprogressive.jpg", rgb, save(rgb, "JPEG", quality=85, progressive=True)))

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

    # Layouts written by the small encoders above (decoded by Pillow for the reference).
    ycc = rgb.convert("YCbCr")
    yp = planes_of(ycc)
    bigp = planes_of(big.convert("YCbCr"))
    lines.append(write("e_h1v2.jpg", rgb, encode_jpeg(yp, 33, 17, [(1, 2), (1, 1), (1, 1)])))
    lines.append(write("e_mixed.jpg", rgb, encode_jpeg(yp, 33, 17, [(2, 1), (1, 2), (1, 1)])))
    lines.append(write("e_separate_scans.jpg", big, encode_jpeg(bigp, 61, 45, [(2, 2), (1, 1), (1, 1)],
                                                                  scans=[[0], [1], [2]], restart=5)))
    lines.append(write("e_two_scans.jpg", big, encode_jpeg(bigp, 61, 45, [(2, 2), (1, 1), (1, 1)],
                                                             scans=[[0], [2, 1]], restart=2)))
    lines.append(write("e_adobe_rgb.jpg", rgb, encode_jpeg(planes_of(rgb), 33, 17, [(1, 1)] * 3, jfif=False, adobe=0)))
    lines.append(write("e_rgb_ids.jpg", rgb, encode_jpeg(planes_of(rgb), 33, 17, [(1, 1)] * 3, ids=(82, 71, 66),
                                                         jfif=False)))
    lines.append(write("e_gray_2x2.jpg", rgb, encode_jpeg(planes_of(rgb.convert("L")), 33, 17, [(2, 2)])))
    b = rgb.tobytes()
    px = [tuple(b[i:i + 3]) for i in range(0, len(b), 3)]
    rows = [[px[y * 33 + x] for x in range(33)] for y in range(17)]
    lines.append(write("e_interlaced_rgb.png", rgb, encode_png(rows, 33, 17, 2, 8, interlace=True)))
    rows16 = [[tuple(min(65535, v * 257 + (x * 31 + y) % 256) for v in p) + (40000,) for x, p in enumerate(r)]
              for y, r in enumerate(rows)]
    lines.append(write("e_rgba16.png", rgb, encode_png(rows16, 33, 17, 6, 16)))
    lines.append(write("e_rgb16_interlaced.png", rgb, encode_png([[t[:3] for t in r] for r in rows16], 33, 17, 2, 16,
                                                                 interlace=True)))
    gray4 = [[((p[0] + p[1]) // 32,) for p in r] for r in rows]
    lines.append(write("e_gray4_interlaced.png", rgb, encode_png(gray4, 33, 17, 0, 4, interlace=True)))
    gray2 = [[(p[1] // 64,) for p in r] for r in rows]
    lines.append(write("e_gray2.png", rgb, encode_png(gray2, 33, 17, 0, 2)))
    pal = [[((p[0] // 64) * 4 + p[2] // 64,) for p in r] for r in rows]
    lines.append(write("e_palette4_interlaced.png", rgb, encode_png(pal, 33, 17, 3, 4, interlace=True,
                                                                    palette=[(i * 37) % 256 for i in range(48)])))
    lines.append(write("e_tiny_interlaced.png", tiny, encode_png([[px[0]] * 3] * 5, 3, 5, 2, 8, interlace=True)))
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
