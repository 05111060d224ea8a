"""The lines of a text file for Client.translate_file: blank lines and undecodable ones marked."""

import os


class Undecodable:
    """A line that is not valid UTF-8; `details` says where."""

    __slots__ = ("details",)

    def __init__(self, details):
        self.details = details


def read_lines(path_or_file):
    """An iterator over the lines, each without its line break: a str, None for a blank (or
    white-space only) line, or Undecodable. Takes a path (opened here, so that a missing file
    fails at once; read as UTF-8 bytes, line by line; closed when the iteration ends) or an
    open file, text or binary."""
    if isinstance(path_or_file, (str, bytes, os.PathLike)):
        return _closing(open(path_or_file, "rb"))
    return _lines(path_or_file)


def _closing(f):
    with f:
        yield from _lines(f)


def _lines(f):
    for line in f:
        if isinstance(line, bytes):
            line = line.rstrip(b"\n").rstrip(b"\r")
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError as e:
                yield Undecodable(
                    f"the line is not valid UTF-8 (byte offset {e.start}: {e.reason})")
                continue
        else:
            line = line.rstrip("\n").rstrip("\r")
        yield line if line.strip() else None
