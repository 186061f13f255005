"""Image inputs: paths and arrays in, transformed pixel batches and rejects out.

An input is a directory (every non-hidden file below it, recursively), a file, or a
glob pattern. PNG/JPEG files (anything Pillow decodes) are decoded in a ``tf.data``
pipeline (parallel map, prefetch); ``.npy``/``.npz`` files hold arrays of images
[n, H, W] or [n, H, W, C] (uint8 in 0..255, or floats in [0, 1]), one item per image.

``ImageTransform`` (recorded with the model) turns a decoded image into the model's
input: colour conversion to its channel count, resizing to its size, pixels in [0, 1]
flattened in (row, column, channel) order. With ``resize`` or ``convert_color`` off, an
image of another size or channel count is rejected, not altered. Every item that cannot
be used is returned as a reject (item id, reason); the caller writes it down.
"""

from __future__ import annotations

import glob
import itertools
import os
import stat
import threading
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..jobs.paths import is_glob

ARRAY_SUFFIXES = (".npy", ".npz")

# warnings.catch_warnings swaps the process's filter list: the decoding threads take turns.
_OPEN_LOCK = threading.Lock()


class ImageRejected(ValueError):
    """An input item that cannot be scored; the message is the reject reason."""


@dataclass(frozen=True)
class ImageTransform:
    height: int
    width: int
    channels: int
    resize: bool = True
    convert_color: bool = True
    # Turn each image as its EXIF orientation says, as viewers show it (a camera's JPEG
    # stored sideways). False in the images.json of fits before it: read as stored.
    upright: bool = False

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, self.channels)

    @property
    def n_values(self) -> int:
        """Values per flattened image, H * W * C: the model's n_features."""
        return self.height * self.width * self.channels

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ImageTransform:
        """The transform of an images.json entry; ValueError for a value of another JSON
        type (a flag read with bool() would take "false" as true)."""
        transform = cls(**data)
        for name, value in asdict(transform).items():
            wanted = bool if isinstance(getattr(cls, name, None), bool) else int
            if type(value) is not wanted:
                kind = "boolean" if wanted is bool else "integer"
                raise ValueError(f"transform.{name} must be a JSON {kind}, got {value!r}")
        return transform

    def apply(self, image: np.ndarray) -> np.ndarray:
        """[h, w, c] in [0, 1] -> [height, width, channels] float32, or ImageRejected."""
        height, width, channels = image.shape
        if channels != self.channels:
            if not self.convert_color:
                raise ImageRejected(
                    f"other channel count: {channels}, the model expects {self.channels} "
                    "(convert_color is off)"
                )
            image = _convert_channels(image, self.channels)
        if (height, width) != (self.height, self.width):
            if not self.resize:
                raise ImageRejected(
                    f"other size: {height}x{width} pixels, the model expects "
                    f"{self.height}x{self.width} (resize is off)"
                )
            image = _resized(image, self.height, self.width)
        return np.clip(image, 0.0, 1.0).astype(np.float32)


# Channel counts that have a colour meaning: grey, grey + alpha, RGB, RGBA.
CONVERTIBLE_CHANNELS = (1, 2, 3, 4)


def _convert_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """Grey <-> RGB; an alpha channel is dropped (luma: ITU-R 601, as Pillow's "L").
    ImageRejected for a channel count with no colour meaning (an array of 5 bands)."""
    if image.shape[2] not in CONVERTIBLE_CHANNELS:
        raise ImageRejected(
            f"unconvertible channel count: {image.shape[2]} channels are not grey (1), grey "
            f"and alpha (2), RGB (3) or RGBA (4); the model expects {channels}"
        )
    if image.shape[2] in (2, 4):
        image = image[..., :-1]
    if channels == 1 and image.shape[2] == 3:
        return image @ np.array([[0.299], [0.587], [0.114]], dtype=image.dtype)
    if channels == 3 and image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    return image


def _resized(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize with antialiasing (the same for files and arrays)."""
    import tensorflow as tf

    return tf.image.resize(image, (height, width), method="bilinear", antialias=True).numpy()


# ----------------------------------------------------------------------------- inputs


def iter_image_inputs(inputs) -> Iterator[Path]:
    """Files named by ``inputs`` (directories recursively, files, globs), each once, found
    lazily: paths are produced as the batches consume them, so the job never holds the
    list of a folder's files.

    Within a directory, files come in sorted path order; only the listings of the
    directory being walked and of its parents are in memory (hidden files and
    directories are skipped, symbolic links to directories are not followed). A glob's
    matches are listed and sorted at once. With several inputs, the files already
    produced are remembered, so that a file named twice is read once (``_file_key``: its
    folder resolved, its own name kept, so that a symbolic link beside its target is
    read as its own file, as in a single input); that set grows with the files, a single
    input needs none.
    """
    inputs = [str(item) for item in inputs]
    for item in inputs:  # here, before the caller reads or writes anything
        if not os.path.lexists(item) and next(glob.iglob(item, recursive=True), None) is None:
            raise FileNotFoundError(f"--input {item}: no such file or directory.")
    return _unique_files(inputs)


def _unique_files(inputs: list[str]) -> Iterator[Path]:
    # A glob's matches may hold a folder and files below it (data/**): read each once.
    several = len(inputs) > 1 or is_glob(inputs[0])
    seen = set() if several else None
    for item in inputs:
        for path in _files_of(item):
            if seen is not None:
                key = _file_key(path)
                if key in seen:
                    continue
                seen.add(key)
            yield path


def _file_key(path: Path) -> Path:
    """The file's name in its resolved folder: the same for every way of naming one
    directory entry (relative, absolute, through a linked folder), different for a
    symbolic link and its target, which a single input's walk also reads as two files."""
    return Path(os.path.realpath(path.parent)) / path.name


def _files_of(item: str) -> Iterator[Path]:
    """The entries an input names: a folder's walk, the file itself, or a glob's matches
    in sorted order, each matched folder walked as a folder input is. A folder named
    (or matched) through a symbolic link is walked; links to folders found while
    walking are not followed."""
    path = Path(item)
    if not is_glob(item):
        yield from _walk_sorted(path) if path.is_dir() else (path,)
        return
    for match in sorted(glob.glob(item, recursive=True)):
        match = Path(match)
        yield from _walk_sorted(match) if match.is_dir() else (match,)


def _walk_sorted(directory: Path) -> Iterator[Path]:
    """Non-hidden entries below ``directory`` depth first, in name order: the order of
    ``sorted(directory.rglob("*"))``, without listing the whole tree at once.

    Every entry that is not a folder is produced, files or not (a broken symbolic link, a
    FIFO, a symbolic link to a folder), and so is a folder that cannot be listed: the
    reader rejects each with its reason (``unreadable_entry``), so that none is lost."""
    try:
        with os.scandir(directory) as listing:
            entries = sorted(
                ((entry.name, entry.is_dir(follow_symlinks=False)) for entry in listing),
            )
    except OSError:
        yield directory
        return
    for name, is_dir in entries:
        if name.startswith("."):
            continue
        path = directory / name
        if is_dir:
            yield from _walk_sorted(path)
        else:
            yield path


def unreadable_entry(path) -> str | None:
    """Why ``path`` cannot be read as a file, found without opening it (opening a FIFO
    would wait for a writer), or None for a regular file."""
    try:
        mode = os.stat(path).st_mode  # through a symbolic link
    except FileNotFoundError:
        if os.path.islink(path):
            return "a broken symbolic link (its target does not exist)"
        return "not found: removed since the inputs were listed"
    except OSError as error:
        return f"cannot be read: {_described(error)}"
    if stat.S_ISDIR(mode):
        if os.path.islink(path):
            return "a symbolic link to a folder (not followed)"
        try:
            os.scandir(path).close()
        except OSError as error:
            return f"a folder that cannot be listed: {_described(error)}"
        return "a folder"
    if not stat.S_ISREG(mode):
        return "not a regular file (a FIFO, socket or device)"
    return None


def decode_file(path, upright: bool = False) -> np.ndarray:
    """The image in ``path`` as [h, w, c] float in [0, 1], or ImageRejected with the reason;
    ``upright``: turned as its EXIF orientation says (``ImageTransform.upright``).

    Whatever goes wrong decoding the file is the file's reject, not the job's end: only
    MemoryError (and KeyboardInterrupt, SystemExit) propagate. An image of more than
    ``PIL.Image.MAX_IMAGE_PIXELS`` pixels is rejected as too large before its pixels are
    read (Pillow's DecompressionBombWarning, an error here; DecompressionBombError beyond
    twice the limit).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    problem = unreadable_entry(path)
    if problem is not None:
        raise ImageRejected(problem)
    try:
        with _OPEN_LOCK, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(path)  # reads the header only
        with opened as image:
            image.load()
            if upright and _orientation(image) != 1:
                image = ImageOps.exif_transpose(image)
            mode = image.mode
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                pixels = np.asarray(image, dtype=np.float64) / 65535.0
            elif mode == "F":  # 32-bit float (a float TIFF): its values are the pixels
                pixels = np.asarray(image, dtype=np.float64)
            else:
                target = {"1": "L", "L": "L", "LA": "LA", "RGBA": "RGBA"}.get(mode, "RGB")
                if mode == "P":
                    target = "RGBA" if "transparency" in image.info else "RGB"
                pixels = np.asarray(image.convert(target), dtype=np.float64) / 255.0
    except MemoryError:
        raise
    except UnidentifiedImageError:
        raise ImageRejected(_unidentified(path)) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageRejected(f"image too large: {error}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise ImageRejected(f"unreadable or truncated image: {_described(error)}") from None
    except Exception as error:  # a decoder's own failure (Pillow plugins raise many kinds)
        raise ImageRejected(f"image decoder failed: {_described(error)}") from None
    if mode == "F" and not _in_unit_interval(pixels):
        raise ImageRejected(f"{OUTSIDE_UNIT_INTERVAL}: a float image")
    if pixels.ndim == 2:
        pixels = pixels[..., np.newaxis]
    return pixels


OUTSIDE_UNIT_INTERVAL = "pixel values outside [0, 1] (or not finite)"

# The first bytes of the formats whose damaged files Pillow cannot identify.
_SIGNATURES = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG", b"GIF8": "GIF", b"BM": "BMP"}


def _unidentified(path) -> str:
    """The reject reason of a file Pillow does not recognise: empty, a damaged file of a
    known format (by its first bytes), or not an image."""
    with open(path, "rb") as handle:
        head = handle.read(8)
    if not head:
        return "an empty file (0 bytes)"
    for signature, kind in _SIGNATURES.items():
        if head.startswith(signature):
            return f"unreadable or truncated image: a {kind} file Pillow cannot identify"
    return "not an image file (no PNG, JPEG or other known format)"


def _orientation(image) -> int:
    """The EXIF orientation of an opened image (1, as stored, when it has none, or when its
    EXIF cannot be read: the pixels are still good)."""
    try:
        return int(image.getexif().get(0x0112, 1))
    except Exception:
        return 1


def _in_unit_interval(pixels: np.ndarray) -> bool:
    """Whether every pixel value of a float image is finite and in [0, 1]."""
    return bool(np.all(np.isfinite(pixels)) and 0.0 <= pixels.min() and pixels.max() <= 1.0)


def item_id(path) -> str:
    """The id of a file in the outputs: its path, with the bytes of a name that is not
    UTF-8 (legal on Linux) written as ``\\xe9`` escapes, so that every id can be written."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _described(error: BaseException) -> str:
    """'TypeName: message' of an exception, for a reject reason (the undecodable bytes of
    a path in the message escaped, so that the reason can be written)."""
    return f"{type(error).__name__}: {error}".encode("utf-8", "backslashreplace").decode()


def array_images(path: Path) -> Iterator[tuple[str, np.ndarray | str]]:
    """(item id, [h, w, c] image in [0, 1] or a reject reason) for each image of an array file."""
    problem = unreadable_entry(path)
    if problem is not None:
        yield item_id(path), problem
        return
    try:
        # A .npz is read here, through our own handle: np.load leaves its handle open when
        # the archive is damaged. A .npy is memory-mapped.
        with open(path, "rb") as handle:
            is_npz = handle.read(4) == b"PK\x03\x04"
            if is_npz:
                handle.seek(0)
                with np.load(handle, allow_pickle=False) as archive:
                    arrays = list(archive.items())
        if not is_npz:
            arrays = [(None, np.load(path, mmap_mode="r", allow_pickle=False))]
    except MemoryError:
        raise
    except Exception as error:  # OSError, ValueError, a damaged .npz's BadZipFile, zlib.error
        yield item_id(path), f"not a readable .npy/.npz array file: {_described(error)}"
        return
    for key, array in arrays:
        name = item_id(path) if key is None else f"{item_id(path)}:{key}"
        shape = array.shape  # as stored
        if array.ndim == 2:  # one grey image
            array = array[np.newaxis]
        if array.ndim == 3:  # [n, H, W]: grey images (a single colour image needs [1, H, W, C])
            array = array[..., np.newaxis]
        if array.ndim != 4:
            expected = "[n, H, W] or [n, H, W, C]"
            yield name, f"not an array of images: shape {shape}, expected {expected}"
            continue
        if len(array) == 0:
            yield name, f"no image in the array: shape {shape}"
            continue
        for index in range(len(array)):
            image = np.asarray(array[index])
            item = f"{name}#{index}"
            if image.dtype == np.uint8:
                yield item, image.astype(np.float64) / 255.0
            elif not np.issubdtype(image.dtype, np.floating):
                yield (
                    item,
                    f"unsupported pixel type: {image.dtype}, expected uint8 or float in [0, 1]",
                )
            elif not _in_unit_interval(image):
                yield item, OUTSIDE_UNIT_INTERVAL
            else:
                yield item, image.astype(np.float64)


@dataclass
class ImageBatch:
    ids: list[str]  # items scored, in input order
    pixels: np.ndarray  # [len(ids), H * W * C] float32
    rejects: list[tuple[str, str]]  # (item id, reason), in input order
    # Per scored item, bytes that tell it apart where ids may not: a file's path as the
    # file system has it (two names can have one id: a byte that is not UTF-8 is written
    # "\xNN", as a name holding those four characters is). None: the ids' UTF-8.
    sources: list[bytes] | None = None


def image_batches(paths, transform: ImageTransform, batch_size: int) -> Iterator[ImageBatch]:
    """Batches of at most ``batch_size`` items: the image files in input order, then the
    images of the array files. ``paths`` is consumed as the batches are: image files are
    streamed into one tf.data pipeline, so neither the paths nor the pixels in memory
    grow with the number of inputs (only the list of array files is kept)."""
    arrays = []

    def image_files():
        for path in paths:
            if path.suffix.lower() in ARRAY_SUFFIXES:
                arrays.append(path)
            else:
                yield os.fsencode(path)

    yield from _file_batches(image_files, transform, batch_size)
    for path in arrays:
        yield from _batched(array_images(path), transform, batch_size)


def _file_batches(image_files, transform: ImageTransform, batch_size: int) -> Iterator[ImageBatch]:
    """Batches of paths go through tf.data, each decoded by one Python call (decoding
    batches in parallel, prefetching): the per-element costs of ``from_generator`` and
    ``tf.py_function`` are paid once a batch, not once an image."""
    import tensorflow as tf

    size = transform.n_values

    def decode_batch(path_tensors):
        pixels = np.zeros((len(path_tensors), size), np.float32)
        reasons = []
        for i, path in enumerate(path_tensors.numpy()):
            try:
                image = decode_file(os.fsdecode(path), transform.upright)
                pixels[i] = transform.apply(image).reshape(-1)
                reasons.append("")
            except ImageRejected as reason:
                reasons.append(str(reason))
            except MemoryError:
                raise
            except Exception as error:  # one file's failure is its reject, not the job's end
                reasons.append(f"image could not be transformed: {_described(error)}")
        return pixels, tf.constant(reasons, dtype=tf.string, shape=[len(reasons)])

    def load(paths):
        pixels, reasons = tf.py_function(decode_batch, [paths], [tf.float32, tf.string])
        return paths, tf.ensure_shape(pixels, [None, size]), reasons

    def path_batches():
        files = image_files()
        while batch := list(itertools.islice(files, batch_size)):
            yield batch

    dataset = (
        tf.data.Dataset.from_generator(
            path_batches, output_signature=tf.TensorSpec(shape=(None,), dtype=tf.string)
        )
        .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(2)
    )
    for names, pixels, reasons in dataset.as_numpy_iterator():
        keep = reasons == b""
        yield ImageBatch(
            ids=[item_id(n) for n in names[keep]],
            pixels=pixels[keep],
            rejects=[
                (item_id(n), r.decode()) for n, r in zip(names[~keep], reasons[~keep], strict=True)
            ],
            sources=list(names[keep]),
        )


def _batched(items, transform: ImageTransform, batch_size: int) -> Iterator[ImageBatch]:
    ids, pixels, rejects = [], [], []
    for item, image in items:
        if isinstance(image, str):
            rejects.append((item, image))
        else:
            try:
                pixels.append(transform.apply(image).reshape(-1))
                ids.append(item)
            except ImageRejected as reason:
                rejects.append((item, str(reason)))
        if len(ids) + len(rejects) >= batch_size:
            yield _batch(ids, pixels, rejects, transform)
            ids, pixels, rejects = [], [], []
    if ids or rejects:
        yield _batch(ids, pixels, rejects, transform)


def _batch(ids, pixels, rejects, transform) -> ImageBatch:
    stacked = np.stack(pixels) if pixels else np.zeros((0, transform.n_values), np.float32)
    return ImageBatch(ids=ids, pixels=stacked, rejects=rejects)
