"""Where an index lives on disk: FAISS vectors (`vectors`) and the SQLite catalog (`catalog`).

Nothing here knows about torch or models.
"""
