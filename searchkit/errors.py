"""One exception hierarchy for the whole library.

The library raises these; the CLI and the TUI catch `SearchkitError` once and show
its message on one line. Anything else escaping is a bug and keeps its traceback.
"""


class SearchkitError(Exception):
    """Base class: a problem the user can act on, described in one line."""


class BadInput(SearchkitError, ValueError):
    """A value given by the user is out of range or malformed."""


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
