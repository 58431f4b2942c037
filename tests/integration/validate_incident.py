#!/usr/bin/python3
"""Validates incident JSON documents against schema/incident.schema.json with an independent
validator (Debian's python3-jsonschema, Draft 2020-12), and checks that the schema's metric names
are exactly faultline's catalog.

usage: validate_incident.py SCHEMA CATALOG_TXT FILE...   (CATALOG_TXT: `faultline detectors metrics`)
Each FILE holds one incident per line (JSON lines). Exits 1 naming the first invalid document.
"""
import json
import sys

from jsonschema import Draft202012Validator, FormatChecker

schema_path, catalog_path, files = sys.argv[1], sys.argv[2], sys.argv[3:]
with open(schema_path) as f:
    schema = json.load(f)
Draft202012Validator.check_schema(schema)
validator = Draft202012Validator(schema, format_checker=FormatChecker())

with open(catalog_path) as f:
    catalog = [line.split()[0] for line in f.read().splitlines()[1:] if line.strip()]
if schema["$defs"]["metric"]["enum"] != catalog:
    sys.exit("FAIL: the schema's metric names differ from the catalog: %s vs %s"
             % (schema["$defs"]["metric"]["enum"], catalog))

count = 0
for path in files:
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            doc = json.loads(line)
            errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
            if errors:
                e = errors[0]
                sys.exit("FAIL: %s:%d: %s at %s" % (path, n, e.message, "/".join(map(str, e.path))))
            count += 1
print("valid=%d" % count)
