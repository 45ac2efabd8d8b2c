"""Source modules: each exposes ``batches(...)``, a generator of :class:`ingest.loader.Batch`.

A batch carries records with a key (``record_id`` column or a content hash) and, for incremental
sources, the cursor value it reaches. One module per kind of source.
"""
