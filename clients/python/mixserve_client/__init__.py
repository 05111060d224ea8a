"""Python client for the mixserve translation server (gRPC, API mixserve.v1)."""

from mixserve_client.client import Client, MixserveError

__all__ = ["Client", "MixserveError"]
