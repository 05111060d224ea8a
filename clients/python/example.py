"""Translates a sentence with a running mixserve server: python3 example.py [HOST:PORT]"""

import sys

from mixserve_client import Client, MixserveError

target = sys.argv[1] if len(sys.argv) > 1 else "localhost:8500"
with Client(target) as client:
    print("health:", client.health())
    r = client.translate("A man is riding a bike.", "en", "de")
    print(f"{r.translation!r} by {r.variant.name}:{r.variant.version} in {r.timings.total_ms:.1f} ms")
    for model in client.list_models().models:
        print(model.name, [v.version for v in model.versions])
    try:
        client.translate("", "en", "de")
    except MixserveError as e:
        print("empty text is refused:", e.code.name)
