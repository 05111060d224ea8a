"""A small synchronous client over grpcio for mixserve's TranslationService and ModelService.

The message classes (package mixserve.v1) are generated from the project's proto/ files and
checked in beside this package (clients/python/generate_protos.py).
"""

import grpc

from mixserve.v1 import config_pb2, model_service_pb2, translation_pb2
from mixserve_client import lines, ordered
from mixserve_client.errors import MixserveError, TranslationError

_TRANSLATION = "/mixserve.v1.TranslationService/"
_MODELS = "/mixserve.v1.ModelService/"
_HEALTH_CHECK = "/grpc.health.v1.Health/Check"
_HEALTH_STATES = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


def _encode_health_request(service):
    data = service.encode("utf-8")
    if not data:
        return b""
    return b"\x0a" + _varint(len(data)) + data


def _decode_health_response(data):
    # HealthCheckResponse { ServingStatus status = 1; } -> tag 0x08 then a varint.
    if len(data) >= 2 and data[0] == 0x08:
        return _HEALTH_STATES.get(data[1], "UNKNOWN")
    return "UNKNOWN"


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


class Client:
    """Connects to a mixserve server.

    >>> c = Client("localhost:8500")
    >>> c.translate("A man is riding a bike.", "en", "de").translation
    """

    def __init__(self, target="localhost:8500", token=None, credentials=None, timeout=30.0):
        if credentials is not None:
            self._channel = grpc.secure_channel(target, credentials)
        else:
            self._channel = grpc.insecure_channel(target)
        self._timeout = timeout
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        t, m = translation_pb2, model_service_pb2
        self._translate = self._unary(_TRANSLATION + "Translate", t.TranslateRequest, t.TranslateResponse)
        self._batch = self._unary(
            _TRANSLATION + "TranslateBatch", t.TranslateBatchRequest, t.TranslateBatchResponse
        )
        self._document = self._unary(
            _TRANSLATION + "TranslateDocument", t.TranslateDocumentRequest,
            t.TranslateDocumentResponse
        )
        self._stream = self._channel.stream_stream(
            _TRANSLATION + "TranslateStream",
            request_serializer=t.TranslateRequest.SerializeToString,
            response_deserializer=t.TranslateResponse.FromString,
        )
        self._list = self._unary(_MODELS + "ListModels", m.ListModelsRequest, m.ListModelsResponse)
        self._load = self._unary(_MODELS + "LoadModel", m.LoadModelRequest, m.LoadModelResponse)
        self._unload = self._unary(_MODELS + "UnloadModel", m.UnloadModelRequest, m.UnloadModelResponse)
        self._get_routes = self._unary(_MODELS + "GetRoutes", m.GetRoutesRequest, m.GetRoutesResponse)
        self._set_route = self._unary(_MODELS + "SetRoute", m.SetRouteRequest, m.SetRouteResponse)
        self._health = self._channel.unary_unary(
            _HEALTH_CHECK, request_serializer=_encode_health_request,
            response_deserializer=_decode_health_response,
        )

    def _unary(self, method, request_cls, response_cls):
        return self._channel.unary_unary(
            method,
            request_serializer=request_cls.SerializeToString,
            response_deserializer=response_cls.FromString,
        )

    def _call(self, stub, request, timeout, admin=False):
        try:
            return stub(
                request,
                timeout=self._timeout if timeout is None else timeout,
                metadata=self._metadata if admin else (),
            )
        except grpc.RpcError as e:
            raise MixserveError(e.code(), e.details()) from None

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @staticmethod
    def _request(cls, source, target, variant, version, routing_key, beam_size,
                 max_output_tokens, length_penalty, n_best, request_id):
        req = cls(source_language=source, target_language=target, routing_key=routing_key,
                  request_id=request_id)
        if variant:
            req.variant.name = variant
            req.variant.version = version
        req.options.beam_size = beam_size
        req.options.max_output_tokens = max_output_tokens
        req.options.length_penalty = length_penalty
        req.options.n_best = n_best
        return req

    def translate(self, text, source, target, variant=None, version=0, routing_key="",
                  beam_size=0, max_output_tokens=0, length_penalty=0.0, n_best=0,
                  reference="", request_id="", timeout=None):
        """Translates one sentence; returns a mixserve.v1.TranslateResponse."""
        req = self._request(translation_pb2.TranslateRequest, source, target, variant, version,
                            routing_key, beam_size, max_output_tokens, length_penalty, n_best,
                            request_id)
        req.text = text
        req.reference = reference
        return self._call(self._translate, req, timeout)

    def translate_batch(self, texts, source, target, variant=None, version=0, routing_key="",
                        beam_size=0, max_output_tokens=0, length_penalty=0.0, n_best=0,
                        references=(), request_id="", timeout=None):
        """Translates many sentences of one pair; returns a TranslateBatchResponse."""
        req = self._request(translation_pb2.TranslateBatchRequest, source, target, variant,
                            version, routing_key, beam_size, max_output_tokens, length_penalty,
                            n_best, request_id)
        req.texts.extend(texts)
        req.references.extend(references)
        return self._call(self._batch, req, timeout)

    def translate_stream(self, texts, source, target, timeout=None, **options):
        """Streams sentences through TranslateStream; yields responses as they arrive
        (request_id is the sentence's index as a string)."""

        def requests():
            for i, text in enumerate(texts):
                req = self._request(translation_pb2.TranslateRequest, source, target,
                                    options.get("variant"), options.get("version", 0),
                                    options.get("routing_key", ""), options.get("beam_size", 0),
                                    options.get("max_output_tokens", 0),
                                    options.get("length_penalty", 0.0),
                                    options.get("n_best", 0), str(i))
                req.text = text
                yield req

        try:
            yield from self._stream(requests(), timeout=self._timeout if timeout is None else timeout)
        except grpc.RpcError as e:
            raise MixserveError(e.code(), e.details()) from None

    def translate_document(self, text, source, target, variant=None, version=0,
                           routing_key="", beam_size=0, max_output_tokens=0,
                           length_penalty=0.0, return_segments=False, request_id="",
                           timeout=None):
        """Translates a paragraph or a whole document (TranslateDocument): the server splits it
        into sentences and puts the translation back together, white space kept. Returns a
        TranslateDocumentResponse; with return_segments, its `segments` align every source
        sentence with its translation (byte offsets into the UTF-8 texts)."""
        req = self._request(translation_pb2.TranslateDocumentRequest, source, target, variant,
                            version, routing_key, beam_size, max_output_tokens, length_penalty,
                            0, request_id)
        req.text = text
        req.return_segments = return_segments
        return self._call(self._document, req, timeout)

    def translate_many(self, texts, source, target, *, window=64, on_error="raise",
                       variant=None, version=0, routing_key="", beam_size=0,
                       max_output_tokens=0, length_penalty=0.0, n_best=0,
                       request_id_prefix="", timeout=None, max_attempts=10, backoff=0.05,
                       max_backoff=1.0, stats=None):
        """Translates every text of an iterable, one Translate call each, and yields the
        results in input order: a TranslateResponse per text, or, for a text that could not be
        translated, a TranslationError (its index, gRPC code, message and attempts).

        window: at most this many texts between being read and being yielded, hence at most
        this many calls in flight; the iterable is read lazily. RESOURCE_EXHAUSTED and
        UNAVAILABLE are retried after a jittered exponential backoff (`backoff` seconds,
        doubling up to `max_backoff`) while the text's deadline (`timeout` seconds from its
        first call, default the client's) and `max_attempts` (None: until the deadline) allow.
        on_error="raise" raises the first failed text's TranslationError once every earlier
        result has been yielded (the calls still in flight are cancelled); "return" yields it
        in the text's place and goes on. Every text is sent, an empty one too (the server
        refuses it: INVALID_ARGUMENT); one that is not a str (or UTF-8 bytes) fails with
        INVALID_ARGUMENT without a call. request_id_prefix: text i gets request_id PREFIX + i.
        stats: a BatchStats to fill with the run's counts (calls, retries, failures).
        """
        return self._translate_entries(
            texts, source, target, "item", window, on_error, timeout, max_attempts, backoff,
            max_backoff, stats, request_id_prefix,
            (variant, version, routing_key, beam_size, max_output_tokens, length_penalty, n_best))

    def translate_file(self, path_or_file, source, target, *, window=64, on_error="raise",
                       variant=None, version=0, routing_key="", beam_size=0,
                       max_output_tokens=0, length_penalty=0.0, n_best=0,
                       request_id_prefix="", timeout=None, max_attempts=10, backoff=0.05,
                       max_backoff=1.0, stats=None):
        """translate_many for the lines of a text file (a path, read as UTF-8, or an open file,
        text or binary): one result per line, in order, with the same options. A blank (or
        white-space only) line is answered without a call by a TranslateResponse whose
        translation is empty, so the output keeps the input's lines; a line that is not valid
        UTF-8 gets a TranslationError (INVALID_ARGUMENT, attempts 0) without a call. Errors
        name the line by its number (TranslationError.index is that number minus one).
        """

        file_lines = lines.read_lines(path_or_file)

        def entries():
            for i, line in enumerate(file_lines):
                if line is None:
                    yield ordered.Ready(translation_pb2.TranslateResponse())
                elif isinstance(line, lines.Undecodable):
                    yield ordered.Ready(TranslationError(
                        i, grpc.StatusCode.INVALID_ARGUMENT, line.details, 0, "line"))
                else:
                    yield line

        return self._translate_entries(
            entries(), source, target, "line", window, on_error, timeout, max_attempts,
            backoff, max_backoff, stats, request_id_prefix,
            (variant, version, routing_key, beam_size, max_output_tokens, length_penalty, n_best))

    def _translate_entries(self, entries, source, target, what, window, on_error, timeout,
                           max_attempts, backoff, max_backoff, stats, prefix, options):
        """Runs ordered.run over `entries` (texts, or ordered.Ready results)."""
        policy = ordered.Policy(window, self._timeout if timeout is None else timeout,
                                max_attempts, backoff, max_backoff, on_error, what)

        def requests():
            for i, entry in enumerate(entries):
                if isinstance(entry, ordered.Ready):
                    yield entry
                    continue
                req = self._request(translation_pb2.TranslateRequest, source, target, *options,
                                    f"{prefix}{i}" if prefix else "")
                try:
                    req.text = entry
                except (TypeError, ValueError) as e:  # not text, or not valid UTF-8
                    yield ordered.Ready(TranslationError(
                        i, grpc.StatusCode.INVALID_ARGUMENT, f"the text cannot be sent: {e}",
                        0, what))
                    continue
                yield req

        return ordered.run(self._translate, requests(), policy, stats)

    def health(self, service="", timeout=None):
        """Returns the grpc.health.v1 status name, e.g. "SERVING"."""
        return self._call(self._health, service, timeout)

    def list_models(self, name="", timeout=None):
        return self._call(self._list, model_service_pb2.ListModelsRequest(name=name), timeout, True)

    def load_model(self, name, version=0, timeout=None):
        req = model_service_pb2.LoadModelRequest(name=name, version=version)
        return self._call(self._load, req, timeout, True)

    def unload_model(self, name, version=0, timeout=None):
        req = model_service_pb2.UnloadModelRequest(name=name, version=version)
        return self._call(self._unload, req, timeout, True)

    def get_routes(self, timeout=None):
        return self._call(self._get_routes, model_service_pb2.GetRoutesRequest(), timeout, True).routes

    def set_route(self, source, target, targets, shadow=None, shadow_fraction=1.0, timeout=None):
        """targets: {"name" or ("name", version): weight}; shadow: "name" or ("name", version)."""
        route = config_pb2.RouteConfig(source_language=source, target_language=target)
        for variant, weight in targets.items():
            name, version = (variant, 0) if isinstance(variant, str) else variant
            t = route.targets.add(weight=weight)
            t.variant.name, t.variant.version = name, version
        if shadow:
            name, version = (shadow, 0) if isinstance(shadow, str) else shadow
            route.shadow.name, route.shadow.version = name, version
            route.shadow_fraction = shadow_fraction
        req = model_service_pb2.SetRouteRequest(route=route)
        return self._call(self._set_route, req, timeout, True).route
