"""Culling: the catalog, marks, ranking, burst groups, export and rejects.  numpy only:
no torch, no Qt."""
