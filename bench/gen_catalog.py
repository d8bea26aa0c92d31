#!/usr/bin/env python3
"""Writes N realistic manifests into a folder: the built-in catalog's files, cycled, each with a unique id and name,
and a benchmark connector `bench-pat` whose verify probe points at a loopback provider.

usage: gen_catalog.py OUT_DIR N [PROVIDER_URL]
"""
import os
import re
import sys

out, n = sys.argv[1], int(sys.argv[2])
provider = sys.argv[3] if len(sys.argv) > 3 else "http://127.0.0.1:9/user"
here = os.path.dirname(os.path.abspath(__file__))
src = os.path.join(here, "..", "catalog")
os.makedirs(out, exist_ok=True)
for f in os.listdir(out):
    os.remove(os.path.join(out, f))
files = sorted(f for f in os.listdir(src) if f.endswith((".yaml", ".yml")))
texts = [open(os.path.join(src, f), encoding="utf-8").read() for f in files]
with open(os.path.join(out, "0000-bench-pat.yaml"), "w", encoding="utf-8") as fh:
    fh.write(f"""id: bench-pat
name: Bench PAT
description: A pat connector whose verify probe hits a loopback provider
category: developer-tools
brand: {{logo: github, color: "#181717"}}
auth_mode: pat
fields:
  - {{key: token, label: Token, type: password, required: true}}
mcp:
  transport: streamable-http
  endpoint: https://api.githubcopilot.com/mcp/
  headers: {{Authorization: "Bearer ${{field.token}}"}}
verify:
  http:
    url: {provider}
    headers: {{Authorization: "Bearer ${{field.token}}"}}
""")
for i in range(max(n - 1, 0)):
    text = texts[i % len(texts)]
    text = re.sub(r"(?m)^id: *(\S+)", lambda m: f"id: {m.group(1)}-{i:05d}", text, count=1)
    text = re.sub(
        r"(?m)^name: *(.+)$",
        lambda m: 'name: "%s %d"' % (m.group(1).strip().strip("'\"").replace('"', ""), i),
        text,
        count=1,
    )
    with open(os.path.join(out, f"{i + 1:05d}.yaml"), "w", encoding="utf-8") as fh:
        fh.write(text)
