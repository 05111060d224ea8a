"""The exceptions of the client: a failed call, and a failed item of a many-item translation."""


class MixserveError(Exception):
    """An RPC failed; `code` is the grpc.StatusCode and `details` the server's message."""

    def __init__(self, code, details):
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


class TranslationError(MixserveError):
    """One item of translate_many / translate_file could not be translated.

    `index` is the item's position in the input (0-based; for translate_file, the line number
    minus one), `code` the grpc.StatusCode of its last attempt, `details` the message, and
    `attempts` the calls made for it (0 when the client refused it without a call). Raised
    with on_error="raise"; given in the item's place with on_error="return".
    """

    def __init__(self, index, code, details, attempts, what="item"):
        self.index = index
        self.attempts = attempts
        self.what = what
        super().__init__(code, details)
        tries = "" if attempts <= 1 else f" (after {attempts} attempts)"
        self.args = (f"{what} {index + 1 if what == 'line' else index}: "
                     f"{code.name}: {details}{tries}",)

    def __repr__(self):
        return (f"TranslationError(index={self.index}, code={self.code.name}, "
                f"details={self.details!r}, attempts={self.attempts})")
