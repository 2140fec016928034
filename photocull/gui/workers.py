"""Background work: a plain generator run in a QThread, each yield becomes a signal.

After superqt's ``GeneratorWorker`` (pyapp-kit/superqt ``utils/_qthreading.py``):

- ``started()`` when the work begins;
- ``yielded(object)`` for each ``yield`` (yield once per batch: cancellation is checked
  between yields);
- ``returned(object)`` with the generator's return value, if it ran to its end;
- ``errored(object)`` with the exception object, if it raised;
- ``aborted()`` if it stopped because :meth:`GeneratorWorker.cancel` was asked;
- ``finished()`` last, exactly once, whatever happened: the one place to reset the UI.

The generator function is called with ``cancelled`` (a callable) so the core never sees
a QObject; a plain function (not a generator) is run as a generator that yields nothing,
and checks ``cancelled`` itself.  Connect the signals to slots of objects living in the
GUI thread (a lambda connected to them runs in the worker's thread).  :meth:`run` drives
the generator in the calling thread, so tests need no thread.
"""
from __future__ import annotations

import inspect
import logging
import os
import threading
import traceback
from collections import OrderedDict
from typing import Callable

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot
from PySide6.QtGui import QImage, QImageReader

log = logging.getLogger(__name__)


def error_text(exc: BaseException) -> str:
    """A failed job as the user reads it: ``"OSError: disk full"``."""
    return f"{type(exc).__name__}: {exc}"


class GeneratorWorker(QObject):
    started = Signal()
    yielded = Signal(object)
    returned = Signal(object)
    errored = Signal(object)  # the exception object
    aborted = Signal()
    finished = Signal()  # always, last, once
    message = Signal(str)  # words about a slow step, from inside the generator (with_report=True)

    def __init__(self, func: Callable, *args, with_report: bool = False, **kwargs):
        super().__init__()
        self._func, self._args, self._kwargs = func, args, kwargs
        if with_report:
            self._kwargs["report"] = self.message.emit
        self._cancel = threading.Event()
        self._thread: QThread | None = None

    def cancel(self) -> None:
        """Ask the generator to stop (any thread); it stops at its next yield."""
        self._cancel.set()

    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def work(self):
        """Drive the generator to its end in the calling thread, emitting ``yielded``;
        returns its return value (None once cancelled) and raises what it raises."""
        gen = self._func(*self._args, cancelled=self.cancelled, **self._kwargs)
        if not inspect.isgenerator(gen):
            return gen  # a plain function's result
        try:
            while not self._cancel.is_set():
                try:
                    value = next(gen)
                except StopIteration as stop:
                    return stop.value
                self.yielded.emit(value)
            return None
        finally:
            gen.close()  # runs the generator's finally blocks if it stopped at a yield

    @Slot()
    def run(self) -> None:
        """Run the work and emit the signals (``start`` calls this in the worker's thread)."""
        self.started.emit()
        try:
            result = self.work()
        except Exception as exc:  # noqa: BLE001 - reported to the GUI, never raised into Qt
            log.error("background task failed:\n%s", traceback.format_exc())
            self.errored.emit(exc)
        else:
            if self._cancel.is_set():
                self.aborted.emit()
            else:
                self.returned.emit(result)
        finally:
            self.finished.emit()

    def start(self, parent: QObject | None = None) -> QThread:
        """Run in a new QThread.

        The QThread is parented (to ``parent`` or the application) so that Python's
        garbage collector can never destroy it while it runs; it deletes itself once
        finished.  The worker keeps a reference to itself until then.
        """
        from PySide6.QtCore import QCoreApplication

        t = QThread(parent or QCoreApplication.instance())
        self._thread = t
        self._self_ref = self
        self.moveToThread(t)
        t.started.connect(self.run)
        # direct: QThread.quit is thread-safe, and a queued quit would wait for the GUI
        # thread, which may be blocked in wait() (closing the window after a job ends)
        self.finished.connect(t.quit, Qt.ConnectionType.DirectConnection)
        t.finished.connect(self._release)
        t.finished.connect(t.deleteLater)
        t.start()
        return t

    def _release(self) -> None:
        self._self_ref = None

    def is_running(self) -> bool:
        t = self._thread
        try:
            return t is not None and t.isRunning()
        except RuntimeError:  # already deleted: it finished
            return False

    def wait(self, ms: int = 10000) -> bool:
        t = self._thread
        try:
            return True if t is None else t.wait(ms)
        except RuntimeError:
            return True


JPEG_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe"})
SCREEN_FORMATS = (QImage.Format.Format_RGB32, QImage.Format.Format_ARGB32, QImage.Format.Format_Grayscale8)


def decode_full(path: str) -> QImage:
    """Every pixel of ``path``, upright, as a QImage that owns its pixels: what the loupe
    shows at 100 %.  Run in the loader's thread, never the GUI's.

    A JPEG is decoded by Qt's reader straight into the 32-bit format the screen paints
    (the same libjpeg decode as Pillow's, pixel for pixel, EXIF orientation applied, and one
    buffer instead of Pillow's image + bytes + copy: ~0.1 s less per 24 MP photo); anything
    else, or a JPEG Qt cannot read (CMYK, too large for its allocation limit), goes through
    ``loaders.open_full`` as every other decode does.  Raises ``ImageError``."""
    from photocull.media.loaders import check_readable, open_full

    check_readable(path)  # never open a FIFO named x.jpg
    if os.path.splitext(path)[1].lower() in JPEG_SUFFIXES:
        reader = QImageReader(path)
        reader.setAutoTransform(True)
        qi = reader.read()
        if not qi.isNull() and qi.format() in SCREEN_FORMATS:
            return qi
    return pil_to_qimage(open_full(path))


def pil_to_qimage(im) -> QImage:
    """PIL RGB image -> QImage that owns its pixels (safe to pass across threads)."""
    im = im.convert("RGB")
    data = im.tobytes("raw", "RGB")
    qi = QImage(data, im.width, im.height, im.width * 3, QImage.Format.Format_RGB888)
    return qi.copy()


class ImageLoader(QObject):
    """Decodes thumbnails, previews and full-resolution images in its own thread, most
    recent request first: previews, then full resolution, then thumbnails.

    ``request(path, size)`` may be called from the GUI thread at any rate (it only
    appends to a queue); ``ready(path, size, QImage)`` or ``failed(path, size, reason)``
    come back as signals.  ``size`` :attr:`FULL` (0) is every pixel (:func:`decode_full`),
    asked with :meth:`want_full`.  With a preview (size > 256) comes ``sized(path, w, h)``,
    the size of the full-resolution image, read from the file's headers, so the loupe can
    lay out 100 % before those pixels exist, and ``exif_read(path, ExifInfo)``, the shooting
    settings the detail panel shows (read here, for the photo looked at, never per photo in the
    GUI thread).  The delegate's ``paint`` never decodes.
    """

    ready = Signal(str, int, QImage)
    failed = Signal(str, int, str)
    sized = Signal(str, int, int)
    exif_read = Signal(str, object)  # (path, media.exif.ExifInfo), read with every preview
    _wake = Signal()

    MAX_QUEUE = 400
    FULL = 0

    def __init__(self):
        super().__init__()
        self._lock = threading.Lock()
        self._queue: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._event = threading.Event()
        self._stop = threading.Event()
        self._working = False  # decoding one now
        self._thread = threading.Thread(target=self._loop, name="image-loader", daemon=True)
        self._thread.start()

    def request(self, path: str, size: int) -> None:
        with self._lock:
            key = (path, size)
            self._queue.pop(key, None)
            self._queue[key] = None  # newest at the end: served first
            while len(self._queue) > self.MAX_QUEUE:
                self._queue.popitem(last=False)
        self._event.set()

    def want_full(self, paths: list[str]) -> None:
        """Full resolution for ``paths`` (the last one first); full-resolution requests
        for any other photo are dropped (the user has moved on: 72 MB each)."""
        with self._lock:
            for key in [k for k in self._queue if k[1] == self.FULL and k[0] not in paths]:
                del self._queue[key]
        for path in paths:
            self.request(path, self.FULL)

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    def idle(self) -> bool:
        """Nothing queued and nothing being decoded (any thread may ask)."""
        with self._lock:
            return not self._queue and not self._working

    def stop(self) -> None:
        self._stop.set()
        self._event.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        from photocull.media.exif import exif_thumbnail, read_any_exif
        from photocull.media.loaders import ImageError, full_size, open_image

        while not self._stop.is_set():
            self._event.wait(0.5)
            while not self._stop.is_set():
                with self._lock:
                    self._working = False
                    if not self._queue:
                        self._event.clear()
                        break
                    self._working = True
                    # previews (the photo the user is looking at), then its full resolution
                    # (asked for by a zoom to 100 %), then thumbnails
                    big = next((k for k in reversed(self._queue) if k[1] > 256), None)
                    if big is None:
                        big = next((k for k in reversed(self._queue) if k[1] == self.FULL), None)
                    if big is not None:
                        del self._queue[big]
                        path, size = big
                    else:
                        (path, size), _ = self._queue.popitem(last=True)
                try:
                    if size == self.FULL:
                        self.ready.emit(path, size, decode_full(path))
                        continue
                    if size > 256:
                        wh = full_size(path)
                        if wh is not None:
                            self.sized.emit(path, *wh)
                        self.exif_read.emit(path, read_any_exif(path))  # best effort: never raises
                    im = None
                    if size <= 256:
                        im = exif_thumbnail(path)
                        if im is not None and max(im.size) < size * 0.6:
                            im = None  # too small to look good
                    if im is None:
                        im = open_image(path, max_side=size)
                    if max(im.size) > size:
                        im.thumbnail((size, size))
                    self.ready.emit(path, size, pil_to_qimage(im))
                except ImageError as exc:
                    self.failed.emit(path, size, str(exc))
                except Exception as exc:  # noqa: BLE001
                    log.exception("thumbnail for %s", path)
                    self.failed.emit(path, size, str(exc))


class FullImageCache:
    """The last few full-resolution images (a 24 MP photo is 96 MB on screen), by path:
    flipping back and forth at 100 % decodes nothing twice, and memory stays bounded."""

    def __init__(self, size: int = 2):
        self.size = size
        self._images: OrderedDict[str, QImage] = OrderedDict()

    def get(self, key: str) -> QImage | None:
        image = self._images.get(key)
        if image is not None:
            self._images.move_to_end(key)
        return image

    def put(self, key: str, image: QImage) -> None:
        self._images[key] = image
        self._images.move_to_end(key)
        while len(self._images) > self.size:
            self._images.popitem(last=False)

    def clear(self) -> None:
        self._images.clear()

    def __len__(self) -> int:
        return len(self._images)
