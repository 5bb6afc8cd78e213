#!/usr/bin/env python3
"""Tests of the Python module `rackep` (python/rackep_module.cpp), run by ctest with Debian's /usr/bin/python3.

Usage: test_module.py MODULE_DIR RACKEP_BINARY WORK_DIR
"""
import json
import os
import subprocess
import sys
import unittest

MODULE_DIR, RACKEP, WORK = sys.argv[1:4]
sys.path.insert(0, MODULE_DIR)
import numpy as np  # noqa: E402
import rackep  # noqa: E402

TRACE = os.path.join(WORK, "py_trace")


def setUpModule():
    os.makedirs(WORK, exist_ok=True)
    subprocess.run(["rm", "-rf", TRACE], check=True)
    subprocess.run([RACKEP, "--log-level", "warn", "trace", "synth", "--out", TRACE, "--kind", "zipf", "--ranks", "8",
                    "--experts", "32", "--top-k", "4", "--tokens-per-rank", "512", "--layers", "3",
                    "--microbatches", "2", "--imbalance", "2.0", "--seed", "5"], check=True, capture_output=True)


class Plan(unittest.TestCase):
    def test_ultraep_plan_arrays(self):
        rng = np.random.default_rng(1)
        loads = rng.integers(0, 200, size=(8, 32)).astype(np.int32)
        loads[0, :4] += 3000  # a hot rank
        p = rackep.plan(loads, {"slots": 2, "domain": 8}, "ultraep")
        self.assertEqual(p["p2l"].shape, (8, 6))
        self.assertEqual(p["l2p"].shape, (32, 8))
        self.assertEqual(p["lcnt"].shape, (32,))
        # Every token is allocated exactly once, and the busiest rank got lighter.
        self.assertEqual(int(p["alloc_tokens"].sum()), int(loads.sum()))
        self.assertEqual(int(p["rank_loads"].sum()), int(loads.sum()))
        self.assertLess(p["imbalance_after"], p["imbalance_before"])
        self.assertGreater(p["replicas"], 0)
        self.assertEqual(int((p["lcnt"] - 1).sum()), p["replicas"])
        before = loads.reshape(8, 8, 4).sum(axis=(0, 2))  # masters of rank r: experts 4r..4r+3
        self.assertAlmostEqual(p["imbalance_before"], before.max() / before.mean())
        self.assertAlmostEqual(p["imbalance_after"], p["rank_loads"].max() / p["rank_loads"].mean())

    def test_every_balancer_and_records_in_order(self):
        self.assertIn("lplb", rackep.balancers())
        recs = np.stack([r["loads"] for r in rackep.read_trace(TRACE)])
        for name in rackep.balancers():
            out = rackep.plan(recs, (8, 4, 2, 8), name, eplb_window=2)
            self.assertEqual(len(out), recs.shape[0])
            for p, loads in zip(out, recs):
                self.assertEqual(int(p["alloc_tokens"].sum()), int(loads.sum()), name)

    def test_bad_input_names_the_field(self):
        loads = np.ones((8, 32), dtype=np.int32)
        with self.assertRaisesRegex(ValueError, "bogus"):
            rackep.plan(loads, {"slots": 2}, "ultraep", bogus=1)
        with self.assertRaisesRegex(ValueError, "unknown balancer"):
            rackep.plan(loads, {"slots": 2}, "nope")
        with self.assertRaisesRegex(ValueError, "shape"):
            rackep.plan(loads, (8, 3, 2, 8), "none")
        with self.assertRaisesRegex(ValueError, "loads"):
            rackep.plan(-loads, {"slots": 2}, "none")


class ReadTrace(unittest.TestCase):
    def test_records_equal_numpy_view_of_the_chunks(self):
        it = rackep.read_trace(TRACE)
        m = it.manifest
        self.assertEqual((m["num_ranks"], m["num_experts"], m["num_records"]), (8, 32, 6))
        recs = list(it)
        self.assertEqual(len(recs), 6)
        with open(os.path.join(TRACE, "manifest.json")) as f:
            manifest = json.load(f)
        chunk = manifest["chunks"][0]
        loads = np.load(os.path.join(TRACE, chunk["loads"]))
        index = np.load(os.path.join(TRACE, chunk["index"]))
        for i, r in enumerate(recs):
            self.assertEqual(r["loads"].dtype, np.int32)
            np.testing.assert_array_equal(r["loads"], loads[i])
            self.assertEqual((r["layer"], r["microbatch"]), tuple(index[i]))

    def test_missing_directory(self):
        with self.assertRaises(ValueError):
            rackep.read_trace(os.path.join(WORK, "no_such_trace"))


class Simulate(unittest.TestCase):
    CONFIG = {"ranks": 8, "tokens_per_rank": 256, "microbatches": 1, "balancers": ["none", "ultraep", "ideal"]}

    def test_same_report_as_the_cli(self):
        rep = rackep.simulate(dict(self.CONFIG))
        cli = subprocess.run([RACKEP, "--log-level", "warn", "simulate", "--ranks", "8", "--tokens-per-rank", "256",
                              "--microbatches", "1", "--balancers", "none,ultraep,ideal",
                              "--json"], check=True, capture_output=True, text=True)
        self.assertEqual(rep, json.loads(cli.stdout))
        # Twice in one process (each simulation has its own SimGrid engine), with the default ptask fidelity.
        again = rackep.simulate({**self.CONFIG, "fidelity": "ptask"})
        self.assertEqual([b["name"] for b in again["balancers"]], ["none", "ultraep", "ideal"])

    def test_bad_config(self):
        with self.assertRaisesRegex(ValueError, "rankz"):
            rackep.simulate({"rankz": 8})
        with self.assertRaisesRegex(ValueError, "mode"):
            rackep.simulate({"mode": "sideways"})


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
