#!/usr/bin/env python3
"""Reads the OpenAPI document and schemathesis's HAR of an API check (both files): prints, per operation, how
many answers were successes (2xx) of how many, and fails when an operation never succeeded."""
import json
import re
import sys
import urllib.parse

document_path, har_path = sys.argv[1], sys.argv[2]
with open(document_path) as document:
    paths = json.load(document)["paths"]
operations = {}
for path, methods in paths.items():
    # Paths hold only letters, digits, "/", "-" and "_" besides their {parameters}.
    pattern = re.compile("^" + re.sub(r"\{[^/}]+\}", "[^/]+", path) + "$")
    for method in methods:
        if method in ("get", "put", "post", "delete", "patch"):
            operations[f"{method.upper()} {path}"] = (method.upper(), pattern, [0, 0])
with open(har_path) as har:
    entries = json.load(har)["log"]["entries"]
for entry in entries:
    method = entry["request"]["method"]
    path = urllib.parse.urlsplit(entry["request"]["url"]).path
    for name, (op_method, pattern, counts) in operations.items():
        if op_method == method and pattern.match(path):
            counts[1] += 1
            counts[0] += 200 <= entry["response"]["status"] < 300
            break
width = max(map(len, operations))
for name, (_, _, (ok, total)) in sorted(operations.items()):
    print(f"{name:<{width}}  {ok:>5} of {total:>5} answers 2xx")
succeeded = sum(1 for _, _, (ok, _) in operations.values() if ok)
print(f"{succeeded} of {len(operations)} operations reached their success path (a 2xx)")
if succeeded < len(operations):
    sys.exit(1)
