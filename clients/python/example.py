"""Translates with a running mixserve server: python3 example.py [HOST:PORT]

Install the package first (README.md, "Python client"), or run this from clients/python.
"""

import sys

from mixserve_client import Client, MixserveError, TranslationError

target = sys.argv[1] if len(sys.argv) > 1 else "localhost:8500"
with Client(target) as client:
    print("health:", client.health())
    r = client.translate("A man is riding a bike.", "en", "de")
    print(f"{r.translation!r} by {r.variant.name}:{r.variant.version} in {r.timings.total_ms:.1f} ms")
    for model in client.list_models().models:
        print(model.name, [v.version for v in model.versions])
    # Many sentences, at most 16 in flight, answered in order; the empty one is refused by the
    # server and comes back as an error in its place (on_error="raise" would raise it).
    texts = ["Two dogs play in the snow.", "", "A woman reads a book."]
    for result in client.translate_many(texts, "en", "de", window=16, on_error="return"):
        if isinstance(result, TranslationError):
            print("failed:", result)
        else:
            print(f"{result.translation!r}")
    try:
        client.translate("", "en", "de")
    except MixserveError as e:
        print("empty text is refused:", e.code.name)
