"""Python client for the mixserve translation server (gRPC, API mixserve.v1)."""

from mixserve_client.client import Client
from mixserve_client.errors import MixserveError, TranslationError
from mixserve_client.ordered import BatchStats

__all__ = ["BatchStats", "Client", "MixserveError", "TranslationError"]
