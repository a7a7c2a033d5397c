"""Hash-grid neural scenes (Instant-NGP snapshots and holoscope's compressed form): issue 11,
in progress. So far: the bounded MessagePack codec their containers need (msgpack.py), the grid's
level layout (levels.py), snapshot reading with the parameter-count check (snapshot.py) and
the torch hash encoding (neural/encoding.py)."""
