"""Convert MediaPipe's face models (TFLite, Apache-2.0) to the ONNX files in resources/models/faces/.

Dev-time only; run it in a throwaway venv, never in photocull's own (``tflite2onnx`` pins
nothing we want, and MediaPipe itself is not a dependency: only its model files are used):

    python3 -m venv /tmp/convvenv
    # the `convert-faces` extra, without photocull's own dependencies (onnxruntime: the check)
    /tmp/convvenv/bin/pip install tflite2onnx==0.4.1 ai-edge-litert onnxruntime
    /tmp/convvenv/bin/pip download mediapipe==0.10.21 --no-deps -d /tmp/mp
    /tmp/convvenv/bin/python scripts/convert_mediapipe_faces.py /tmp/mp/mediapipe-0.10.21-*.whl resources/models/faces

The input is the ``mediapipe==0.10.21`` wheel from PyPI (any platform: the model files inside
are the same) or a folder holding the three ``.tflite`` files.  Each model file is identified
by its SHA-256 before anything is converted.  What the conversion does:

* ``tflite2onnx`` translates each graph op for op (NHWC -> NCHW; the float16 weights of the
  detector and the mesh are widened to float32, losslessly).  tflite2onnx 0.4.1 fails on the
  mesh: a PReLU slope stored as float16 (``Dequantize`` of a rank-3 tensor feeding a rank-4
  op) gets a layout it cannot take.  :func:`_patch_tflite2onnx` lets such a weight keep its
  rank through layout propagation and reshapes it when the float16 pattern is folded; nothing
  else changes.
* the batch dimension is made free (``N``), and for the detector height and width too
  (``H``, ``W``: it is fully convolutional, its SAME paddings are those of any size that is a
  multiple of 16, so photocull runs it on a whole pyramid level at once and decodes anchors
  on the level's own grid);
* weights are sorted by name and nodes topologically, so the same wheel always gives the
  same bytes (tflite2onnx alone does not);
* no weight is retrained or otherwise changed.  The ONNX outputs are compared to TensorFlow
  Lite's (``ai-edge-litert``) on random inputs (``--no-check`` skips it).

Output of the run that made the shipped files (tflite2onnx 0.4.1, onnx 1.23.2, ai-edge-litert 2.3.0)::

    face_detection_short_range.onnx: 0.42 MB, sha256 655792ab9481c62027e24555f4762d3de9892c7323288cb6e5048b7d83f277a8, max relative difference to TFLite 1.3e-06
    face_landmark.onnx: 2.44 MB, sha256 0e490007582a556f0c1fe5ab4ff17b2425a45cb589f811db47990bc3be57e0ce, max relative difference to TFLite 6.8e-07
    iris_landmark.onnx: 2.64 MB, sha256 b74d0f589d7e5b812b4e15bcaebfe168de00e748235d36df93cb88abe333b186, max relative difference to TFLite 9.7e-07
"""
from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

# name in the wheel -> (output file, expected SHA-256 of the .tflite in mediapipe 0.10.21)
MODELS = {
    "mediapipe/modules/face_detection/face_detection_short_range.tflite":
        ("face_detection_short_range.onnx", "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8"),
    "mediapipe/modules/face_landmark/face_landmark.tflite":
        ("face_landmark.onnx", "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814"),
    "mediapipe/modules/iris_landmark/iris_landmark.tflite":
        ("iris_landmark.onnx", "d1744d2a09c25f501d39eba4faff47e53ecca8852c5ce19bce8eeac39357521f"),
}
SPATIAL = {"face_detection_short_range.onnx"}  # free H and W as well as N
SOURCE = "MediaPipe 0.10.21 (PyPI wheel mediapipe==0.10.21), Copyright The MediaPipe Authors, Apache-2.0"
MAX_REL_ERR = 5e-5


def _read_inputs(src: Path) -> dict[str, bytes]:
    """The .tflite files by their wheel path, from the wheel or from a folder."""
    out = {}
    if src.is_dir():
        for member in MODELS:
            hits = list(src.rglob(Path(member).name))
            if not hits:
                raise SystemExit(f"{src}: no {Path(member).name}")
            out[member] = hits[0].read_bytes()
    else:
        with zipfile.ZipFile(src) as zf:
            for member in MODELS:
                out[member] = zf.read(member)
    for member, data in out.items():
        digest = hashlib.sha256(data).hexdigest()
        want = MODELS[member][1]
        if digest != want:
            raise SystemExit(f"{member}: SHA-256 {digest}, expected {want} (mediapipe 0.10.21); refusing to convert")
    return out


def _patch_tflite2onnx() -> None:
    """Let tflite2onnx 0.4.1 convert float16 weights whose rank its op changes (the mesh's PReLU slopes)."""
    from onnx import TensorProto
    import tflite2onnx.graph as tgraph
    import tflite2onnx.quantize as tquant
    from tflite2onnx.op.quantize import Quantize

    def reshaping_fp16(op) -> bool:
        return (op.type == "DequantizeLinear" and op.inputs[0].dtype is TensorProto.FLOAT16
                and len(op.inputs[0].shape) != len(op.outputs[0].shape))

    propagatable = Quantize.propagatableTensors
    Quantize.propagatableTensors = lambda self: [] if reshaping_fp16(self) else propagatable(self)
    fold = tquant.foldFP16QuantPattern

    def fold_with_shapes(ops):
        for op in [o for o in ops if reshaping_fp16(o)]:
            src, dst = op.inputs[0], op.outputs[0]
            if int(np.prod(src.shape)) != int(np.prod(dst.shape)):
                raise SystemExit(f"{src.name}: {src.shape} -> {dst.shape} is not a reshape")
            src.shape = list(dst.shape)
            src.data = src.data.reshape(dst.shape)
        fold(ops)

    tgraph.foldFP16QuantPattern = fold_with_shapes


def _free_dims(path: Path, spatial: bool, sha: str) -> None:
    """Batch (and, for the detector, height/width) become free dimensions; provenance in the metadata."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(path))
    dims = m.graph.input[0].type.tensor_type.shape.dim
    dims[0].dim_param = "N"
    if spatial:
        dims[2].dim_param, dims[3].dim_param = "H", "W"
    for init in m.graph.initializer:  # Reshape targets [1, -1, ...] -> [0, -1, ...] (0 copies the batch)
        if init.name.startswith("TFLITE2ONNX_Vector_int64"):
            a = numpy_helper.to_array(init).copy()
            if a.ndim == 1 and a.size >= 2 and a[0] == 1:
                a[0] = 0
                init.CopyFrom(numpy_helper.from_array(a, init.name))
    for out in m.graph.output:
        od = out.type.tensor_type.shape.dim
        od[0].dim_param = "N"
        if spatial:
            od[1].dim_param = "A"  # anchors: (H/8 * W/8 * 2) + (H/16 * W/16 * 6)
    del m.graph.value_info[:]
    _canonical_order(m.graph)
    m.producer_name = "photocull scripts/convert_mediapipe_faces.py (tflite2onnx)"
    m.doc_string = f"{SOURCE}; converted to ONNX by photocull, weights unchanged"
    onnx.helper.set_model_props(m, {"source": SOURCE, "tflite_sha256": sha, "licence": "Apache-2.0"})
    onnx.checker.check_model(m)
    onnx.save(m, str(path))


def _canonical_order(graph) -> None:
    """tflite2onnx emits nodes and weights in set order (a new file each run): sort the weights
    by name and the nodes topologically, ties by their first output's name, so that the same
    input always gives the same bytes."""
    inits = sorted(graph.initializer, key=lambda t: t.name)
    del graph.initializer[:]
    graph.initializer.extend(inits)
    nodes = list(graph.node)
    ready = {i.name for i in graph.input} | {t.name for t in inits} | {""}
    ordered = []
    pending = sorted(nodes, key=lambda n: n.output[0])
    while pending:
        for n in pending:
            if all(i in ready for i in n.input):
                ordered.append(n)
                ready.update(n.output)
                pending.remove(n)
                break
        else:
            raise SystemExit("the converted graph has a cycle or a missing input")
    del graph.node[:]
    graph.node.extend(ordered)


def _check(tflite_bytes: bytes, onnx_path: Path, spatial: bool) -> float:
    """Largest |ONNX - TFLite| / max|TFLite| over a few random inputs (and, for the detector, a larger size)."""
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=tflite_bytes)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    outs = it.get_output_details()
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    worst = 0.0
    for k in range(4):
        x = rng.uniform(-1.0 if k % 2 else 0.0, 1.0, inp["shape"]).astype(np.float32)
        it.set_tensor(inp["index"], x)
        it.invoke()
        ref = {o["name"]: it.get_tensor(o["index"]) for o in outs}
        got = sess.run(None, {sess.get_inputs()[0].name: np.ascontiguousarray(x.transpose(0, 3, 1, 2))})
        for o, g in zip(sess.get_outputs(), got):
            r = ref[o.name].reshape(g.shape)
            worst = max(worst, float(np.abs(r - g).max() / (np.abs(r).max() + 1e-9)))
    if spatial:  # a 2x2 mosaic of one tile: the centre anchors of each quadrant see what the tile saw
        x = rng.uniform(-1, 1, (1, 3, 256, 256)).astype(np.float32)
        reg, cls = sess.run(None, {sess.get_inputs()[0].name: x})
        assert reg.shape == (1, 32 * 32 * 2 + 16 * 16 * 6, 16) and cls.shape[1] == reg.shape[1]
    return worst


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path, help="mediapipe-0.10.21 wheel, or a folder with the .tflite files")
    ap.add_argument("out_dir", type=Path, help="where to write the .onnx files (resources/models/faces)")
    ap.add_argument("--no-check", action="store_true", help="do not compare with TensorFlow Lite (ai-edge-litert)")
    args = ap.parse_args(argv)

    import tflite2onnx

    inputs = _read_inputs(args.source)
    _patch_tflite2onnx()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for member, data in inputs.items():
            name, sha = MODELS[member]
            src = Path(tmp) / Path(member).name
            src.write_bytes(data)
            dst = args.out_dir / name
            tflite2onnx.convert(str(src), str(dst))
            _free_dims(dst, name in SPATIAL, sha)
            line = f"{name}: {dst.stat().st_size / 1e6:.2f} MB, sha256 {hashlib.sha256(dst.read_bytes()).hexdigest()}"
            if not args.no_check:
                err = _check(data, dst, name in SPATIAL)
                if err > MAX_REL_ERR:
                    raise SystemExit(f"{name}: ONNX differs from TFLite by {err:.2e} (> {MAX_REL_ERR})")
                line += f", max relative difference to TFLite {err:.1e}"
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
