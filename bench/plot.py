#!/usr/bin/env python3
"""Summaries of wshub-bench RESULT lines, as scripts/bench.sh writes them.

usage: plot.py table RESULTS            side-by-side table of medians, ratios wshub/peer
       plot.py png RESULTS OUT.png      fan-out latency (p50, p99) vs subscribers per server

RESULTS holds lines "RESULT server=NAME case=CASE rep=R rc=RC key=value ..." (the bench's own
RESULT line with scripts/bench.sh's keys in front); other lines are ignored. Only runs with
rc=0 count. The PNG comes from the fixed-rate fan-out cases (fanout-rate-S).

Python 3 standard library only: the PNG is drawn on a small RGB canvas with a 5x7 bitmap font
and written with zlib, so that `make bench` needs no matplotlib.
"""

import math
import statistics
import struct
import sys
import zlib

SERVER_ORDER = ["wshub", "uws", "uws-deferred", "ws", "socketio", "nats"]


def load(path):
    """Returns {(server, case): [dict of key -> str]} for the successful runs in path."""
    runs = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.startswith("RESULT "):
                continue
            kv = {}
            for tok in line.split()[1:]:
                key, sep, val = tok.partition("=")
                if sep:
                    kv[key] = val
            if "server" not in kv or "case" not in kv or kv.get("rc", "0") != "0":
                continue
            runs.setdefault((kv["server"], kv["case"]), []).append(kv)
    return runs


def median(runs, key):
    vals = []
    for r in runs:
        try:
            v = float(r[key])
        except (KeyError, ValueError):
            continue
        if math.isfinite(v):
            vals.append(v)
    return statistics.median(vals) if vals else None


def servers_of(runs):
    present = {s for s, _ in runs}
    return [s for s in SERVER_ORDER if s in present] + sorted(present - set(SERVER_ORDER))


def case_key(case):
    """Sorts cases as bench.sh runs them: idle, echo, fan-out by subscribers, churn."""
    order = {"idle": 0, "echo": 1, "churn": 9}
    if case.startswith("fanout-"):
        kind, _, subs = case[len("fanout-"):].partition("-")
        return (2, int(subs) if subs.isdigit() else 0, kind)
    return (order.get(case, 8), 0, case)


# ---- the table -------------------------------------------------------------------------------

def fmt_count(v):
    for div, suf in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g}{suf}"
    return f"{v:.3g}"


def fmt_us(v):
    if v >= 1e6:
        return f"{v / 1e6:.3g} s"
    if v >= 1e3:
        return f"{v / 1e3:.3g} ms"
    return f"{v:.3g} us"


def fmt_plain(v):
    return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"


def fmt_pct(v):
    return f"{v * 100:.2g}%"


# (case prefix, key, label, better, formatter). better: "hi", "lo" or "" (informational).
METRICS = [
    ("idle", "rss_per_conn", "server RSS per connection, B", "lo", fmt_plain),
    ("idle", "anon_per_conn", "server RssAnon per connection, B", "lo", fmt_plain),
    ("idle", "conn_per_s", "connections opened /s (paced at 4000/s)", "", fmt_count),
    ("echo", "msgs_per_s", "echoes /s", "hi", fmt_count),
    ("echo", "p99_us", "round trip p99", "lo", fmt_us),
    ("echo", "srv_cpu_us_per_msg", "server CPU per echo, us", "lo", fmt_plain),
    ("echo", "cli_cpu_s", "client CPU s (of the window)", "", fmt_plain),
    ("fanout-max", "deliveries_per_s", "deliveries /s", "hi", fmt_count),
    ("fanout-max", "srv_cpu_us_per_msg", "server CPU per delivery, us", "lo", fmt_plain),
    ("fanout-max", "p99_us", "latency p99 (queueing)", "lo", fmt_us),
    ("fanout-max", "loss", "loss", "lo", fmt_pct),
    ("fanout-max", "cli_cpu_s", "client CPU s", "", fmt_plain),
    ("fanout-rate", "p50_us", "latency p50 @50 msg/s", "lo", fmt_us),
    ("fanout-rate", "p99_us", "latency p99 @50 msg/s", "lo", fmt_us),
    ("fanout-rate", "loss", "loss", "lo", fmt_pct),
    ("fanout-rate", "cli_cpu_s", "client CPU s", "", fmt_plain),
    ("churn", "conn_per_s", "connect+close cycles /s", "hi", fmt_count),
    ("churn", "cycle_p99_us", "cycle p99", "lo", fmt_us),
]


def case_title(case, runs):
    if case == "idle":
        n = median(runs, "conns")
        return f"idle, {n:.0f} connections" if n else "idle"
    if case == "echo":
        return "echo, 50 connections x 64 B"
    if case == "churn":
        return "churn, 20 parallel loops"
    kind, _, subs = case[len("fanout-"):].partition("-")
    sent = median(runs, "sent")
    what = f"{sent:.0f} msgs as fast as possible" if kind == "max" else "50 msg/s"
    if kind == "max" and sent is None:
        what = "as fast as possible"
    return f"fan-out 1 -> {subs} subscribers, ~100 B, {what}"


def table(path):
    runs = load(path)
    if not runs:
        print(f"plot.py: no successful RESULT lines in {path}")
        return 1
    servers = servers_of(runs)
    cases = sorted({c for _, c in runs}, key=case_key)
    reps = max(len(v) for v in runs.values())
    rows = []
    for case in cases:
        any_runs = [r for s in servers for r in runs.get((s, case), [])]
        rows.append((case_title(case, any_runs), None))
        for prefix, key, label, better, fmt in METRICS:
            if not (case == prefix or case.startswith(prefix + "-")):
                continue
            meds = {s: median(runs.get((s, case), []), key) for s in servers}
            if all(v is None for v in meds.values()):
                continue
            cells = []
            base = meds.get("wshub")
            for s in servers:
                v = meds[s]
                if v is None:
                    cells.append("-" if (s, case) not in runs else "n/a")
                    continue
                cell = fmt(v)
                if s != "wshub" and base is not None and v != 0 and better:
                    cell += f" ({base / v:.3g})"
                cells.append(cell)
            tag = {"hi": " [hi]", "lo": " [lo]"}.get(better, "")
            rows.append(("  " + label + tag, cells))
    w0 = max(len(r[0]) for r in rows if r[1] is not None)
    w0 = max(w0, len("metric"))
    widths = [max([len(s)] + [len(r[1][i]) for r in rows if r[1] is not None])
              for i, s in enumerate(servers)]
    print(f"wshub vs peers: medians of up to {reps} runs per cell ({path})")
    print("(x.xx) = wshub / peer; [hi] higher is better, [lo] lower is better; "
          "client CPU shows how busy the load generator was on the shared cores")
    print("metric".ljust(w0) + "".join("  " + s.rjust(w) for s, w in zip(servers, widths)))
    for label, cells in rows:
        if cells is None:
            print(label)
            continue
        print(label.ljust(w0) + "".join("  " + c.rjust(w) for c, w in zip(cells, widths)))
    return 0


# ---- the PNG ---------------------------------------------------------------------------------

# 5x7 font (the classic "glcdfont"), ASCII 0x20..0x7E: five column bytes per glyph, bit 0 at
# the top, bit 7 for descenders.
_FONT = bytes.fromhex(
    "0000000000" "00005f0000" "0007000700" "147f147f14" "242a7f2a12" "2313086462" "3649562050"
    "0008070300" "001c224100" "0041221c00" "2a1c7f1c2a" "08083e0808" "0080703000" "0808080808"
    "0000606000" "2010080402" "3e5149453e" "00427f4000" "7249494946" "2141494d33" "1814127f10"
    "2745454539" "3c4a494931" "4121110907" "3649494936" "464949291e" "0000140000" "0040340000"
    "0008142241" "1414141414" "0041221408" "0201590906" "3e415d594e" "7c1211127c" "7f49494936"
    "3e41414122" "7f4141413e" "7f49494941" "7f09090901" "3e41415173" "7f0808087f" "00417f4100"
    "2040413f01" "7f08142241" "7f40404040" "7f021c027f" "7f0408107f" "3e4141413e" "7f09090906"
    "3e4151215e" "7f09192946" "2649494932" "03017f0103" "3f4040403f" "1f2040201f" "3f4038403f"
    "6314081463" "0304780403" "6159494d43" "007f414141" "0204081020" "004141417f" "0402010204"
    "4040404040" "0003070800" "2054547840" "7f28444438" "3844444428" "384444287f" "3854545418"
    "00087e0902" "18a4a49c78" "7f08040478" "00447d4000" "2040403d00" "7f10284400" "00417f4000"
    "7c04780478" "7c08040478" "3844444438" "fc18242418" "18242418fc" "7c08040408" "4854545424"
    "04043f4424" "3c4040207c" "1c2040201c" "3c4030403c" "4428102844" "4c9090907c" "4464544c44"
    "0008364100" "0000770000" "0041360800" "0201020402"
)

PALETTE = {
    "wshub": (214, 39, 40),
    "uws": (31, 119, 180),
    "uws-deferred": (23, 190, 207),
    "ws": (44, 160, 44),
    "socketio": (148, 103, 189),
    "nats": (255, 127, 14),
}
EXTRA_COLOURS = [(140, 86, 75), (127, 127, 127), (188, 189, 34), (227, 119, 194)]


class Canvas:
    """An RGB raster with just what a line chart needs."""

    def __init__(self, w, h, bg=(255, 255, 255)):
        self.w, self.h = w, h
        self.px = bytearray(bytes(bg) * (w * h))

    def set(self, x, y, c):
        if 0 <= x < self.w and 0 <= y < self.h:
            i = (y * self.w + x) * 3
            self.px[i:i + 3] = bytes(c)

    def rect(self, x0, y0, x1, y1, c):
        for y in range(max(0, y0), min(self.h, y1 + 1)):
            for x in range(max(0, x0), min(self.w, x1 + 1)):
                self.set(x, y, c)

    def dot(self, x, y, r, c):
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                if dx * dx + dy * dy <= r * r + r:
                    self.set(x + dx, y + dy, c)

    def line(self, x0, y0, x1, y1, c, width=1, dash=0):
        """A line `width` pixels thick; dash > 0 draws dash-pixel strokes with equal gaps."""
        n = max(abs(x1 - x0), abs(y1 - y0), 1)
        seg = math.hypot(x1 - x0, y1 - y0) / n
        for i in range(n + 1):
            if dash and int(i * seg / dash) % 2:
                continue
            x = round(x0 + (x1 - x0) * i / n)
            y = round(y0 + (y1 - y0) * i / n)
            if width <= 1:
                self.set(x, y, c)
            else:
                self.dot(x, y, width // 2, c)

    def text(self, x, y, s, c, scale=2, anchor="l"):
        """Draws s with its top at y; anchor l/c/r is where x is. Returns the width."""
        w = len(s) * 6 * scale - scale
        if anchor == "c":
            x -= w // 2
        elif anchor == "r":
            x -= w
        for k, ch in enumerate(s):
            o = ord(ch) - 0x20
            if not 0 <= o < len(_FONT) // 5:
                o = ord("?") - 0x20
            for col in range(5):
                bits = _FONT[o * 5 + col]
                for row in range(8):
                    if bits >> row & 1:
                        self.rect(x + (k * 6 + col) * scale, y + row * scale,
                                  x + (k * 6 + col) * scale + scale - 1,
                                  y + row * scale + scale - 1, c)
        return w

    def png(self, path):
        raw = bytearray()
        stride = self.w * 3
        for y in range(self.h):
            raw.append(0)
            raw += self.px[y * stride:(y + 1) * stride]

        def chunk(kind, data):
            body = kind + data
            return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

        with open(path, "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n")
            f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", self.w, self.h, 8, 2, 0, 0, 0)))
            f.write(chunk(b"IDAT", zlib.compress(bytes(raw), 9)))
            f.write(chunk(b"IEND", b""))


def fmt_ms(v):
    if v >= 1000:
        return f"{v / 1000:g} s"
    return f"{v:g} ms"


def png(path, out):
    runs = load(path)
    series = {}  # server -> [(subs, p50_ms, p99_ms)]
    for (server, case), rs in runs.items():
        if not case.startswith("fanout-rate-"):
            continue
        subs = case[len("fanout-rate-"):]
        p50, p99 = median(rs, "p50_us"), median(rs, "p99_us")
        if not subs.isdigit() or p50 is None or p99 is None:
            continue
        series.setdefault(server, []).append((int(subs), p50 / 1000, p99 / 1000))
    if not series:
        print(f"plot.py: no fanout-rate results in {path}; no plot", file=sys.stderr)
        return 1
    servers = [s for s in servers_of(runs) if s in series]
    subs_all = sorted({p[0] for s in servers for p in series[s]})
    vals = [v for s in servers for p in series[s] for v in p[1:] if v > 0]
    lo = 10 ** math.floor(math.log10(min(vals)))
    hi = 10 ** math.ceil(math.log10(max(vals)))
    if hi <= lo:
        hi = lo * 10

    W, H = 1000, 640
    L, R, T, B = 110, 230, 70, 90  # plot margins: right side holds the legend
    cv = Canvas(W, H)
    black, grey, light = (0, 0, 0), (110, 110, 110), (225, 225, 225)
    x0, x1, y0, y1 = L, W - R, T, H - B

    def xpos(n):
        if len(subs_all) == 1:
            return (x0 + x1) // 2
        a, b = math.log10(subs_all[0]), math.log10(subs_all[-1])
        return round(x0 + 40 + (math.log10(n) - a) / (b - a) * (x1 - x0 - 80))

    def ypos(v):
        v = max(v, lo)
        return round(y1 - (math.log10(v) - math.log10(lo)) / math.log10(hi / lo) * (y1 - y0))

    cv.text(W // 2, 18, "fan-out latency vs subscribers (1 publisher, ~100 B, 50 msg/s)", black,
            2, "c")
    # grid and y axis (decades)
    d = lo
    while d <= hi * 1.0001:
        y = ypos(d)
        cv.line(x0, y, x1, y, light)
        cv.line(x0 - 6, y, x0, y, black)
        cv.text(x0 - 10, y - 7, fmt_ms(float(f"{d:.3g}")), black, 2, "r")
        d *= 10
    for n in subs_all:
        x = xpos(n)
        cv.line(x, y0, x, y1, light)
        cv.line(x, y1, x, y1 + 6, black)
        cv.text(x, y1 + 12, f"{n:,}".replace(",", " "), black, 2, "c")
    cv.line(x0, y0, x0, y1, black)
    cv.line(x0, y1, x1, y1, black)
    cv.line(x0, y0, x1, y0, black)
    cv.line(x1, y0, x1, y1, black)
    cv.text((x0 + x1) // 2, y1 + 44, "subscribers (log scale)", black, 2, "c")
    cv.text(12, y0 - 30, "latency, log scale", black, 2, "l")

    colours = {}
    for i, s in enumerate(servers):
        colours[s] = PALETTE.get(s, EXTRA_COLOURS[i % len(EXTRA_COLOURS)])
    for s in servers:
        pts = sorted(series[s])
        c = colours[s]
        for idx, dash, width in ((2, 0, 3), (1, 9, 2)):  # p99 solid, p50 dashed
            xy = [(xpos(p[0]), ypos(p[idx])) for p in pts]
            for (xa, ya), (xb, yb) in zip(xy, xy[1:]):
                cv.line(xa, ya, xb, yb, c, width, dash)
            for x, y in xy:
                if idx == 2:
                    cv.dot(x, y, 5, c)
                else:
                    cv.rect(x - 4, y - 4, x + 4, y + 4, c)
                    cv.rect(x - 2, y - 2, x + 2, y + 2, (255, 255, 255))
    # legend
    lx, ly = x1 + 20, y0 + 4
    for s in servers:
        cv.line(lx, ly + 7, lx + 36, ly + 7, colours[s], 3)
        cv.dot(lx + 18, ly + 7, 5, colours[s])
        cv.text(lx + 46, ly, s, black, 2)
        ly += 28
    ly += 16
    cv.line(lx, ly + 7, lx + 36, ly + 7, grey, 3)
    cv.dot(lx + 18, ly + 7, 5, grey)
    cv.text(lx + 46, ly, "p99", black, 2)
    ly += 28
    cv.line(lx, ly + 7, lx + 36, ly + 7, grey, 2, 9)
    cv.rect(lx + 14, ly + 3, lx + 22, ly + 11, grey)
    cv.rect(lx + 16, ly + 5, lx + 20, ly + 9, (255, 255, 255))
    cv.text(lx + 46, ly, "p50", black, 2)
    cv.text(W - 8, H - 22, "wshub-bench, scripts/bench.sh", grey, 1, "r")
    cv.png(out)
    return 0


def main(argv):
    if len(argv) == 3 and argv[1] == "table":
        return table(argv[2])
    if len(argv) == 4 and argv[1] == "png":
        return png(argv[2], argv[3])
    print(__doc__.split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
