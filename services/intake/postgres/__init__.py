"""The intake's shared state in PostgreSQL (``LEDGER_DSN``), for intake replicas behind one proxy.

- ``database.py``: the connection pool, the per-instanceID exclusion across replicas, the
  schema's migrations (``schemas/postgres/``) and how a failing server is answered.
- ``ledger.py``, ``blobs.py``, ``nonce_counts.py``: the adapters of the ``Ledger``,
  ``BlobStore`` and ``NonceCounts`` ports over it.
"""
