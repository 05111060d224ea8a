"""Builds the mixserve_client package; compiles the API's .proto files with protoc first."""

import os
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_ROOT = os.path.normpath(os.path.join(HERE, "..", "..", "proto"))
PROTOS = ["mixserve/v1/config.proto", "mixserve/v1/translation.proto",
          "mixserve/v1/model_service.proto"]


class BuildWithProtos(build_py):
    def run(self):
        out = os.path.join(HERE, "generated")
        os.makedirs(out, exist_ok=True)
        subprocess.check_call(["protoc", f"-I{PROTO_ROOT}", f"--python_out={out}", *PROTOS])
        for d in ("mixserve", "mixserve/v1"):
            open(os.path.join(out, d, "__init__.py"), "a").close()
        super().run()


setup(
    name="mixserve-client",
    version="0.1.0",
    description="Python client for the mixserve translation server",
    packages=["mixserve_client", "mixserve", "mixserve.v1"],
    package_dir={"mixserve_client": "mixserve_client", "mixserve": "generated/mixserve"},
    install_requires=["grpcio", "protobuf"],
    cmdclass={"build_py": BuildWithProtos},
    python_requires=">=3.8",
)
