"""The Python client (clients/python, package mixserve_client) against the real mixserve-server.

Run by CTest with the paths of the server binary, of make_test_repository (writes tiny
random-weight models) and of protoc (compiles the API's .proto files for Python). Exits 77,
CTest's SKIP_RETURN_CODE here, when this python3 has no grpc or protobuf module.
"""

import argparse
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

SKIP = 77

try:
    import grpc  # noqa: F401
    import google.protobuf  # noqa: F401
except ImportError as e:
    print(f"SKIP: python3 lacks the grpc/protobuf modules ({e})")
    sys.exit(SKIP)

ARGS = None
SERVER = None  # (process, address)
WORK = None

PROTOS = ["mixserve/v1/config.proto", "mixserve/v1/translation.proto",
          "mixserve/v1/model_service.proto"]


def generate_protos(protoc, source_dir, out):
    """Compiles the API's messages for Python into `out` (as setup.py does)."""
    os.makedirs(out, exist_ok=True)
    subprocess.check_call([protoc, f"-I{os.path.join(source_dir, 'proto')}",
                           f"--python_out={out}", *PROTOS])
    for d in ("mixserve", "mixserve/v1"):
        open(os.path.join(out, d, "__init__.py"), "a").close()


def start_server(binary, repo, work):
    config = os.path.join(work, "server.pbtxt")
    with open(config, "w") as f:
        f.write(f'model_repository: "{repo}"\n')
    log = open(os.path.join(work, "server.log"), "w")
    proc = subprocess.Popen([binary, f"--config={config}", "--listen=127.0.0.1:0",
                             "--metrics=off"], stdout=subprocess.PIPE, stderr=log)
    # The ready line: "mixserve-server listening on 127.0.0.1:PORT metrics ...".
    deadline = time.time() + 120
    line = b""
    while time.time() < deadline and b"\n" not in line:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 512)
            if not chunk:
                break
            line += chunk
        elif proc.poll() is not None:
            break
    text = line.decode(errors="replace").split("\n")[0]
    if "listening on " not in text:
        proc.kill()
        proc.wait()
        with open(os.path.join(work, "server.log")) as f:
            raise RuntimeError(f"the server did not start: {text!r}\n{f.read()}")
    address = text.split("listening on ")[1].split()[0]
    return proc, address


def setUpModule():
    global SERVER, WORK
    WORK = tempfile.mkdtemp(prefix="python_client_test")
    gen = os.path.join(WORK, "gen")
    generate_protos(ARGS.protoc, ARGS.source_dir, gen)
    sys.path[:0] = [gen, os.path.join(ARGS.source_dir, "clients", "python")]
    repo = os.path.join(WORK, "repo")
    subprocess.check_call([ARGS.make_repository, repo])
    SERVER = start_server(ARGS.server, repo, WORK)


def tearDownModule():
    if SERVER:
        proc, _ = SERVER
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if WORK:
        shutil.rmtree(WORK, ignore_errors=True)


class ClientTest(unittest.TestCase):
    def setUp(self):
        from mixserve_client import Client
        self.client = Client(SERVER[1], timeout=60)

    def tearDown(self):
        self.client.close()

    def test_health(self):
        self.assertEqual(self.client.health(), "SERVING")
        self.assertEqual(self.client.health("mixserve.v1.TranslationService"), "SERVING")

    def test_translate(self):
        r = self.client.translate("A man is riding a bicycle.", "en", "de", max_output_tokens=8,
                                  request_id="py-1")
        self.assertEqual(r.request_id, "py-1")
        self.assertIn(r.variant.name, ("en-de-base", "en-de-alt"))
        self.assertEqual(r.variant.version, 1)
        self.assertIsInstance(r.translation, str)
        self.assertGreater(r.input_tokens, 0)
        self.assertLessEqual(r.output_tokens, 8)

    def test_forced_variant_is_deterministic(self):
        a = self.client.translate("Two dogs play in the snow.", "en", "de", variant="en-de-alt",
                                  max_output_tokens=8)
        b = self.client.translate("Two dogs play in the snow.", "en", "de", variant="en-de-alt",
                                  max_output_tokens=8)
        self.assertEqual(a.variant.name, "en-de-alt")
        self.assertEqual(a.translation, b.translation)

    def test_batch_and_stream(self):
        texts = ["A dog runs.", "A woman reads a book.", "Children play outside."]
        batch = self.client.translate_batch(texts, "en", "de", max_output_tokens=6)
        self.assertEqual(len(batch.translations), len(texts))
        answers = list(self.client.translate_stream(texts, "en", "de", max_output_tokens=6))
        self.assertEqual(sorted(r.request_id for r in answers), ["0", "1", "2"])
        for r in answers:
            self.assertEqual(r.status_code, 0)

    def test_errors_carry_the_status(self):
        from mixserve_client import MixserveError
        with self.assertRaises(MixserveError) as ctx:
            self.client.translate("A dog.", "en", "de", variant="no-such-model")
        self.assertEqual(ctx.exception.code, grpc.StatusCode.NOT_FOUND)
        with self.assertRaises(MixserveError) as ctx:
            self.client.translate("A dog.", "en", "xx")
        self.assertNotEqual(ctx.exception.code, grpc.StatusCode.OK)

    def test_list_models(self):
        names = {m.name for m in self.client.list_models().models}
        self.assertTrue({"en-de-base", "en-de-alt", "de-en-base"} <= names, names)


def main():
    global ARGS
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--make-repository", required=True)
    parser.add_argument("--protoc", required=True)
    parser.add_argument("--source-dir", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0], "-v", *rest])


if __name__ == "__main__":
    main()
