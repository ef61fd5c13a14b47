#!/usr/bin/env python3
"""Tests of bench/gpu/report.py: the device check's report from logs (no GPU needed)."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402

GTEST_LOG = """[==========] Running 4 tests from 2 test suites.
[ RUN      ] A.Passes
[       OK ] A.Passes (1 ms)
[ RUN      ] A.Fails
x.cc:10: Failure
Expected equality of these values
[  FAILED  ] A.Fails (2 ms)
[ RUN      ] B.Skips
x.cc:20: Skipped
no CUDA device: cudaErrorNoDevice

[  SKIPPED ] B.Skips (0 ms)
[ RUN      ] B.Aborts
some output before the abort
"""
GTEST_SUMMARY = """[==========] 4 tests ran.
[  PASSED  ] 1 test.
[  SKIPPED ] 1 test, listed below:
[  SKIPPED ] B.Skips
[  FAILED  ] 1 test, listed below:
[  FAILED  ] A.Fails
"""


class ParseGtestTest(unittest.TestCase):
    def test_each_test_counted_once_with_reasons(self):
        finished = GTEST_LOG.split("[ RUN      ] B.Aborts")[0]
        tests = report.parse_gtest(finished + GTEST_SUMMARY)
        self.assertEqual({t: r["result"] for t, r in tests.items()},
                         {"A.Passes": "passed", "A.Fails": "failed", "B.Skips": "skipped"})
        self.assertIn("Expected equality", tests["A.Fails"]["message"])
        self.assertEqual(tests["B.Skips"]["message"], "no CUDA device: cudaErrorNoDevice")

    def test_a_test_that_never_ends_is_a_failure(self):
        tests = report.parse_gtest(GTEST_LOG)
        self.assertEqual(tests["B.Aborts"]["result"], "failed")
        self.assertIn("did not finish", tests["B.Aborts"]["message"])


class AssembleTest(unittest.TestCase):
    def run_report(self, gpu, steps, files):
        with tempfile.TemporaryDirectory() as logs:
            script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "report.py")
            steps_file = os.path.join(logs, "steps.jsonl")
            for name, rc, fields in steps:
                subprocess.run([sys.executable, script, "step", "--file", steps_file,
                                "--name", name, "--rc", str(rc), "--seconds", "1", *fields],
                               check=True)
            for name, text in files.items():
                with open(os.path.join(logs, name), "w") as f:
                    f.write(text)
            out = os.path.join(logs, "report.json")
            rc = subprocess.run([sys.executable, script, "assemble", "--logs", logs, "--out", out,
                                 "--gpu", gpu]).returncode
            with open(out) as f:
                text = f.read()
            return rc, json.loads(text), text

    def test_gpu_visible_and_cuda_tests_skipped_is_a_failure(self):
        log = GTEST_LOG.split("[ RUN      ] B.Aborts")[0].replace(
            "[ RUN      ] A.Fails\nx.cc:10: Failure\nExpected equality of these values\n"
            "[  FAILED  ] A.Fails (2 ms)\n", "")
        steps = [("setup", 0, []), ("cuda_backend_test", 0, [])]
        rc, rep, _ = self.run_report("NVIDIA H100", steps, {"cuda_backend_test.log": log})
        self.assertEqual(rc, 1)
        self.assertFalse(rep["ok"])
        self.assertTrue(any("GPU visible but the CUDA tests skipped: no CUDA device" in f
                            for f in rep["failures"]), rep["failures"])

    def test_without_a_gpu_skips_are_reasons_not_failures(self):
        rc, rep, _ = self.run_report("none", [("setup", 0, []), ("gemm", 2, [])],
                                     {"gemm.json": json.dumps({"skipped": "no CUDA device: none"})})
        self.assertEqual(rc, 0, rep["failures"])
        self.assertEqual(rep["skipped"], {"gemm": "no CUDA device: none"})
        self.assertTrue(rep["rehearsal"])

    def test_exit_codes_decide_and_output_is_strict_json(self):
        rc, rep, text = self.run_report(
            "NVIDIA H100", [("setup", 0, []), ("model", 124, ["log=model.log"]), ("svd", 0, [])],
            {"model.log": "partial", "model.json": '{"forward": {"seconds": NaN}}',
             "svd.json": json.dumps({"ok": True})})
        self.assertEqual(rc, 1)
        self.assertEqual(rep["steps"]["model"]["status"], "timed_out")
        self.assertEqual(rep["steps"]["model"]["log_tail"], "partial")
        self.assertEqual(rep["steps"]["svd"]["status"], "passed")
        self.assertIsNone(rep["sections"]["model"]["forward"]["seconds"])
        self.assertNotIn("NaN", text)

    def test_comparison_ratios(self):
        files = {"model.json": json.dumps({"forward": {"tokens_per_second": 300.0,
                                                       "gemm_tflops": 400.0},
                                           "sweep": {"interventions_per_minute": 600.0}}),
                 "gemm.json": json.dumps({"cublas_bf16_tflops": {"square": 800.0}}),
                 "torch_peer.json": json.dumps({"forward": {"tokens_per_second": 100.0},
                                                "paper": {"interventions_per_minute": 3.0},
                                                "careful": {"interventions_per_minute": 200.0}})}
        steps = [("setup", 0, []), ("model", 0, []), ("gemm", 0, []), ("torch_peer", 0, [])]
        _, rep, _ = self.run_report("NVIDIA H100", steps, files)
        c = rep["comparison"]
        self.assertEqual(c["forward_laserd_over_transformers"], 3.0)
        self.assertEqual(c["forward_fraction_of_bf16_gemm_rate"]["cublas_square"], 0.5)
        self.assertEqual(c["sweep_over_paper"], 200.0)
        self.assertEqual(c["sweep_over_careful"], 3.0)
        self.assertEqual(c["targets"], {"forward_at_least_half_bf16_rate": True,
                                        "sweep_100x_paper": True, "sweep_5x_careful": False})


if __name__ == "__main__":
    unittest.main()
