"""One exception hierarchy for the whole library.

The library raises these; the CLI and the TUI catch `SearchkitError` once and show
its message on one line. Anything else escaping is a bug and keeps its traceback.
"""


class SearchkitError(Exception):
    """Base class: a problem the user can act on, described in one line."""


class BadInput(SearchkitError, ValueError):
    """A value given by the user is out of range or malformed.

    Made by `bad_value` when it is about one parameter: the message then names it as a
    Python caller wrote it (`chunk_tokens=5: ...`), and `param`, `value` and `why` let the
    CLI name the flag instead (`--chunk-tokens 5: ...`).
    """

    def __init__(self, message: str, param: str | None = None, value=None, why: str = ""):
        super().__init__(message)
        self.param, self.value, self.why = param, value, why

    def __reduce__(self):  # keep the fields when pickled (multiprocessing, Ray workers)
        return (type(self), (str(self), self.param, self.value, self.why))


def bad_value(param: str, value, why: str) -> BadInput:
    """BadInput for one parameter's value: `param=value: why`.

    >>> str(bad_value("k", 0, "must be a positive integer"))
    'k=0: must be a positive integer'
    """
    return BadInput(f"{param}={value!r}: {why}", param=param, value=value, why=why)


class ModelNotFound(SearchkitError):
    """A model name or folder does not resolve to a local checkpoint."""


class ModelLoadError(SearchkitError):
    """A checkpoint exists but cannot be loaded (bad config, missing or misshapen weights)."""


class IndexNotFound(SearchkitError):
    """No index at the given folder."""


class IndexCorrupt(SearchkitError):
    """The index files are unreadable or disagree with each other."""


class ModelMismatch(SearchkitError):
    """An index was built with a different model or settings than the ones asked for."""


class IndexLocked(SearchkitError):
    """Another process is writing to this index."""


class ReadOnlyIndex(SearchkitError):
    """The index folder (or its catalog) cannot be written: searches work, ingests do not."""


class DiskFull(SearchkitError):
    """The disk filled up while writing; what was committed before stays as it was."""


class MissingDependency(SearchkitError):
    """An optional package (transformers, matplotlib, faiss-gpu) is needed but absent."""


class SkipFile(SearchkitError):
    """A file is left out of an ingest; `reason` says why in a few words ("binary", "empty")."""

    def __init__(self, path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self):  # keep both fields when pickled (multiprocessing, Ray workers)
        return (type(self), (self.path, self.reason))
