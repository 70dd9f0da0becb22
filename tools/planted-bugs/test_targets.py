#!/usr/bin/env python3
"""Test executables of a CMake build tree, for tools/plant-bugs.

  test_targets.py all BUILD_DIR       every executable a test runs (add_test
                                      commands, gtest_discover_tests includes)
  test_targets.py label BUILD_DIR     those of `ctest --show-only=json-v1`
                                      read from stdin (one label's tests)
"""
import json
import os
import re
import sys


def all_targets(build):
    names = set()
    for root, _, files in os.walk(build):
        if "CTestTestfile.cmake" not in files:
            continue
        with open(os.path.join(root, "CTestTestfile.cmake")) as f:
            for line in f:
                line = line.strip()
                m = re.match(r'include\("(.*)\[1\]_include\.cmake"\)', line)
                if m:
                    names.add(os.path.basename(m.group(1)))
                elif line.startswith("add_test("):
                    for arg in re.findall(r'"([^"]*)"', line):
                        if arg.startswith(build + "/"):
                            names.add(os.path.basename(arg))
    return names


def label_targets(build, listing):
    names = set()
    for t in json.loads(listing).get("tests", []):
        for arg in t.get("command") or []:
            if arg.startswith(build + "/"):
                names.add(os.path.basename(arg))
    return names


if __name__ == "__main__":
    mode, build = sys.argv[1], os.path.abspath(sys.argv[2])
    found = all_targets(build) if mode == "all" else label_targets(build, sys.stdin.read())
    print(" ".join(sorted(found)))
