"""Analyses of the one decode that are not the NIMA networks: faces and eyes, focus, exposure (and noise).

Each module here is a pure function of an upright RGB image (numpy / Pillow / ONNX Runtime;
no torch, no Qt) returning a small result that ``scoring.py`` stores in one field of
``ScoreResult`` and the catalog keeps as JSON.
"""
