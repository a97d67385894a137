"""The version of the index folder's format: what a commit records in the catalog's
settings, and the highest one this searchkit reads (settings.py refuses newer)."""

# 1: one vectors.<generation>.faiss file rewritten by every commit; 2: segments.
FORMAT_VERSION = 2
