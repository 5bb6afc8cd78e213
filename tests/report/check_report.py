#!/usr/bin/env python3
"""Checks the HTML reports of `rackep plan|simulate|sweep --report` against the JSON the same commands print.

Usage: check_report.py RACKEP_BINARY WORK_DIR
For each command: the page parses as XML (so it is well-formed XHTML with inline SVG), references nothing
outside itself (no src/href to a network or file, no <script>), holds every chart the command promises, and
every data-value drawn equals the number in the --json output of the same run.
"""
import json
import math
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

SVG = "{http://www.w3.org/2000/svg}"
XHTML = "{http://www.w3.org/1999/xhtml}"
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


def run(rackep, args):
    p = subprocess.run([rackep, "--log-level", "warn"] + args, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("rackep %s failed (%d):\n%s%s" % (" ".join(args), p.returncode, p.stdout, p.stderr))
    return json.loads(p.stdout)


def load_page(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    root = ET.fromstring(text)  # raises on anything that is not well-formed
    check(root.tag == XHTML + "html", path + ": root is not <html>")
    for el in root.iter():
        check(not el.tag.endswith("script"), path + ": has a <script>")
        for attr in ("src", "href", "{http://www.w3.org/1999/xlink}href"):
            check(attr not in el.attrib, path + ": external reference %s=%s" % (attr, el.attrib.get(attr)))
    check("http://" not in text.replace("http://www.w3.org/", ""), path + ": mentions a network address")
    charts = {svg.get("data-chart"): svg for svg in root.iter(SVG + "svg")}
    return charts


def same(a, b):
    return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=1e-12)


def bars(chart, key):
    return {r.get("data-category"): float(r.get("data-value"))
            for r in chart.iter(SVG + "rect") if r.get("data-key") == key}


def check_plan(rackep, work):
    page = os.path.join(work, "plan.html")
    j = run(rackep, ["plan", "--ranks", "8", "--no-timing", "--json", "--report", page])
    charts = load_page(page)
    names = [b["name"] for b in j["balancers"]]
    expected = {"balancer-imbalance", "balancer-replicas", "heatmap-before", "replicas-per-layer"}
    expected |= {"heatmap-after-" + n for n in names}
    check(expected <= set(charts), "plan: charts missing: %s" % sorted(expected - set(charts)))
    drawn = bars(charts["balancer-imbalance"], "imbalance_after.mean")
    for b in j["balancers"]:
        check(same(drawn.get(b["name"], "nan"), b["imbalance_after"]["mean"]), "plan: bar of " + b["name"])
    # Heatmap cells: one per record, value = the record's imbalance after balancing.
    rec = j["records"]
    layers = list(dict.fromkeys(rec["layer"]))
    mbs = list(dict.fromkeys(rec["microbatch"]))
    for b in j["balancers"]:
        cells = {(int(c.get("data-row")), int(c.get("data-col"))): float(c.get("data-value"))
                 for c in charts["heatmap-after-" + b["name"]].iter(SVG + "rect") if c.get("class") == "cell"}
        check(len(cells) == len(rec["layer"]), "plan: %s heatmap has %d cells for %d records"
              % (b["name"], len(cells), len(rec["layer"])))
        for i, v in enumerate(b["per_record"]["imbalance_after"]):
            key = (layers.index(rec["layer"][i]), mbs.index(rec["microbatch"][i]))
            check(same(cells.get(key, "nan"), v), "plan: %s heatmap cell %s" % (b["name"], key))
    # Replicas per layer: mean over microbatches of each layer.
    pts = {}
    for c in charts["replicas-per-layer"].iter(SVG + "circle"):
        pts[(c.get("data-series"), int(float(c.get("data-x"))))] = float(c.get("data-value"))
    for b in j["balancers"]:
        for li, layer in enumerate(layers):
            vals = [v for v, l in zip(b["per_record"]["replicas"], rec["layer"]) if l == layer]
            check(same(pts.get((b["name"], li), "nan"), sum(vals) / len(vals)),
                  "plan: replicas of %s layer %d" % (b["name"], layer))


def check_simulate(rackep, work):
    page = os.path.join(work, "simulate.html")
    j = run(rackep, ["simulate", "--ranks", "8", "--tokens-per-rank", "256", "--microbatches", "2",
                     "--balancers", "none,ultraep,ideal", "--json", "--report", page])
    charts = load_page(page)
    expected = {"pct-of-ideal", "step-split", "timeline"}
    check(expected <= set(charts), "simulate: charts missing: %s" % sorted(expected - set(charts)))
    pct = bars(charts["pct-of-ideal"], "pct_of_ideal")
    over = bars(charts["step-split"], "exposed_overhead_s")
    comp = bars(charts["step-split"], "compute_s")
    comm = bars(charts["step-split"], "communication_s")
    for b in j["balancers"]:
        n = b["name"]
        check(same(pct.get(n, "nan"), b["pct_of_ideal"]), "simulate: %% of ideal of %s" % n)
        check(same(over.get(n, "nan"), b["exposed_overhead_s"] * 1e3), "simulate: overhead of %s" % n)
        check(comp.get(n, 0) > 0, "simulate: no compute time for %s" % n)
        # The three parts make up the step (communication is the rest, never negative).
        check(math.isclose(comp[n] + comm[n] + over[n], b["step_s"] * 1e3, rel_tol=1e-9)
              or comm[n] == 0, "simulate: split of %s does not add up to the step" % n)
    spans = [r for r in charts["timeline"].iter(SVG + "rect") if r.get("class") == "span"]
    check(len(spans) > 0, "simulate: empty timeline excerpt")


def check_sweep(rackep, work):
    page = os.path.join(work, "sweep.html")
    j = run(rackep, ["sweep", "--ranks", "8", "--tokens-per-rank", "256", "--microbatches", "1", "--balancers",
                     "none,ultraep,ideal", "--grid", "slots=0,1,2", "--json", "--report",
                     page])
    charts = load_page(page)
    expected = {"sweep-pct_of_ideal", "sweep-step_s"}
    check(expected <= set(charts), "sweep: charts missing: %s" % sorted(expected - set(charts)))
    pts = {(c.get("data-series"), float(c.get("data-x"))): float(c.get("data-value"))
           for c in charts["sweep-pct_of_ideal"].iter(SVG + "circle")}
    check(len(pts) == sum(len(r["result"]["balancers"]) for r in j["runs"]), "sweep: point count")
    for r in j["runs"]:
        for b in r["result"]["balancers"]:
            check(same(pts.get((b["name"], float(r["values"][0])), "nan"), b["pct_of_ideal"]),
                  "sweep: %s at slots=%s" % (b["name"], r["values"][0]))


def main():
    rackep, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    which = sys.argv[3] if len(sys.argv) > 3 else "all"
    for name, fn in (("plan", check_plan), ("simulate", check_simulate), ("sweep", check_sweep)):
        if which in ("all", name):
            page = os.path.join(work, name + ".html")
            if os.path.exists(page):  # a previous run's page: --report refuses to overwrite it
                os.remove(page)
            fn(rackep, work)
    if failures:
        print("\n".join(failures[:40]))
        sys.exit(1)
    print("report pages OK")


if __name__ == "__main__":
    main()
