#!/usr/bin/env python3
"""Writes, or checks, the API's Python message modules in clients/python/mixserve/v1/.

The modules (`*_pb2.py`) are generated from proto/mixserve/v1/*.proto and checked in, so that
`pip install clients/python` needs neither protoc nor the proto/ folder: the package builds
with setuptools alone, from a checkout, an sdist or a wheel. They are generated with Debian 12's
protoc 3.21, whose code runs on the protobuf 4.21 Python runtime (python3-protobuf) and later
4.x releases; a newer protoc writes code that needs a newer runtime.

    python3 clients/python/generate_protos.py [--protoc PROTOC]          # regenerate
    python3 clients/python/generate_protos.py --check [--protoc PROTOC]  # exit 1 if stale

--check compiles the .proto files to a descriptor set and compares every file's descriptor with
the one embedded in the checked-in module (json_name aside, which only protoc's descriptor set
carries), so it does not depend on protoc's version; CTest runs it (python_client_stubs_test).
"""

import argparse
import glob
import importlib
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_ROOT = os.path.normpath(os.path.join(HERE, "..", "..", "proto"))
PACKAGE = os.path.join(HERE, "mixserve", "v1")
REGENERATE = "python3 clients/python/generate_protos.py"


def proto_files():
    """The API's .proto files, relative to proto/ (e.g. mixserve/v1/translation.proto)."""
    found = sorted(glob.glob(os.path.join(PROTO_ROOT, "mixserve", "v1", "*.proto")))
    if not found:
        sys.exit(f"generate_protos: no .proto files in {PROTO_ROOT}/mixserve/v1")
    return [os.path.relpath(p, PROTO_ROOT) for p in found]


def module_file(proto):
    return os.path.join(PACKAGE, os.path.basename(proto)[: -len(".proto")] + "_pb2.py")


def generate(protoc):
    protos = proto_files()
    with tempfile.TemporaryDirectory() as out:
        subprocess.check_call([protoc, f"-I{PROTO_ROOT}", f"--python_out={out}", *protos])
        for stale in glob.glob(os.path.join(PACKAGE, "*_pb2.py")):
            os.remove(stale)
        for proto in protos:
            generated = os.path.join(out, proto[: -len(".proto")] + "_pb2.py")
            shutil.copyfile(generated, module_file(proto))
    print(f"generate_protos: wrote {len(protos)} modules to {os.path.relpath(PACKAGE)}")


def _strip_json_names(file_proto):
    def strip(messages):
        for message in messages:
            for field in list(message.field) + list(message.extension):
                field.ClearField("json_name")
            strip(message.nested_type)

    strip(file_proto.message_type)
    for field in file_proto.extension:
        field.ClearField("json_name")
    return file_proto


def check(protoc):
    try:
        from google.protobuf import descriptor_pb2
    except ImportError as e:
        print(f"SKIP: this python3 has no protobuf module ({e})")
        return 77  # CTest's SKIP_RETURN_CODE for this check

    protos = proto_files()
    problems = []
    with tempfile.TemporaryDirectory() as out:
        descriptor_set = os.path.join(out, "api.pb")
        subprocess.check_call([protoc, f"-I{PROTO_ROOT}",
                               f"--descriptor_set_out={descriptor_set}", *protos])
        with open(descriptor_set, "rb") as f:
            expected = descriptor_pb2.FileDescriptorSet.FromString(f.read())
    sys.path.insert(0, HERE)
    for file_proto in expected.file:
        path = module_file(file_proto.name)
        if not os.path.exists(path):
            problems.append(f"{file_proto.name}: {os.path.relpath(path, HERE)} is missing")
            continue
        name = file_proto.name[: -len(".proto")].replace("/", ".") + "_pb2"
        module = importlib.import_module(name)
        embedded = descriptor_pb2.FileDescriptorProto.FromString(module.DESCRIPTOR.serialized_pb)
        if _strip_json_names(embedded) != _strip_json_names(file_proto):
            problems.append(f"{file_proto.name}: {os.path.relpath(path, HERE)} was generated "
                            "from another version of it")
    wanted = {os.path.basename(module_file(p)) for p in protos}
    for extra in sorted(glob.glob(os.path.join(PACKAGE, "*_pb2.py"))):
        if os.path.basename(extra) not in wanted:
            problems.append(f"{os.path.relpath(extra, HERE)} has no .proto file in "
                            f"{PROTO_ROOT}/mixserve/v1")
    if problems:
        print("generate_protos --check: the checked-in Python modules are out of date:",
              *problems, f"regenerate them with Debian 12's protoc: {REGENERATE}",
              sep="\n  ", file=sys.stderr)
        return 1
    print(f"generate_protos --check: {len(protos)} modules match {PROTO_ROOT}/mixserve/v1")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--protoc", default="protoc", help="the protoc to run (default: PATH's)")
    parser.add_argument("--check", action="store_true",
                        help="compare the checked-in modules with the .proto files; write nothing")
    args = parser.parse_args()
    if args.check:
        return check(args.protoc)
    generate(args.protoc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
