#!/usr/bin/env python3
"""Prints the id (Module.Suite/test()) of every failed test in a Swift Testing xUnit file."""
import sys
import xml.etree.ElementTree as ET

root = ET.parse(sys.argv[1]).getroot()
seen = []
for case in root.iter("testcase"):
    if case.find("failure") is not None or case.find("error") is not None:
        test_id = f"{case.get('classname')}/{case.get('name')}"
        if test_id not in seen:
            seen.append(test_id)
print("\n".join(seen))
