"""Safe decoding and album scanning on a generated corpus of good and bad files."""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ferindex.errors import BadImageError
from ferindex.io import decode, scan as scan_mod
from ferindex.io.decode import downscale_for_detection, load_rgb
from ferindex.io.scan import ScanEntry, ScanProblem, content_hash, scan


def _gradient(w: int = 40, h: int = 24) -> np.ndarray:
    """Asymmetric RGB test image: red grows left to right, green top to bottom."""
    x = np.linspace(0, 255, w, dtype=np.uint8)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h, dtype=np.uint8)[:, None].repeat(w, 1)
    return np.stack([x, y, np.full_like(x, 90)], axis=2)


def _jpeg_bytes(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95, **kw)
    return buf.getvalue()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# ---------- good files: each decodes to (H,W,3) uint8 ----------

def test_rgb_jpeg_roundtrip(tmp_path):
    src = _gradient()
    out = load_rgb(_write(tmp_path / "a.jpg", _jpeg_bytes(Image.fromarray(src))))
    assert out.shape == (24, 40, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - src).mean() < 4


def test_exif_orientation_is_applied(tmp_path):
    img = Image.fromarray(_gradient(40, 24))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    out = load_rgb(_write(tmp_path / "rot.jpg", _jpeg_bytes(img, exif=exif.tobytes())))
    assert out.shape == (40, 24, 3)
    # after a clockwise turn the stored top row (green = 0) is the right-hand column
    assert out[:, -1, 1].mean() < 40 and out[:, 0, 1].mean() > 200


def test_cmyk_jpeg(tmp_path):
    img = Image.fromarray(_gradient()).convert("CMYK")
    out = load_rgb(_write(tmp_path / "cmyk.jpg", _jpeg_bytes(img)))
    assert out.shape == (24, 40, 3) and out.dtype == np.uint8
    assert out[:, -1, 0].mean() > out[:, 0, 0].mean() + 100  # red still grows to the right


def test_16bit_png_is_scaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 65535, 64, dtype=np.uint16)[None, :].repeat(8, 0)
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)
    out = load_rgb(path)
    assert out.shape == (8, 64, 3) and out.dtype == np.uint8
    assert out[0, 0, 0] == 0 and out[0, -1, 0] == 255
    assert out[0, 32, 0] == pytest.approx(ramp[0, 32] / 257, abs=1)  # mid-grey, not 255
    assert (np.diff(out[0, :, 0].astype(int)) >= 0).all()


def test_float_and_32bit_modes():
    f = Image.fromarray(np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4), mode="F")
    assert decode._to_rgb(f)[-1, -1, 0] == 255 and decode._to_rgb(f)[0, 0, 0] == 0
    i = Image.fromarray(np.full((4, 4), 1000, np.int32), mode="I")
    assert decode._to_rgb(i)[0, 0, 0] == round(1000 / 257)


def test_rgba_png_composited_on_white(tmp_path):
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[..., 0] = 255  # red everywhere, but only the left half is opaque
    rgba[:, :5, 3] = 255
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path)
    out = load_rgb(path)
    assert out.shape == (10, 10, 3)
    assert (out[:, :5] == [255, 0, 0]).all() and (out[:, 5:] == 255).all()


def test_palette_gray_and_bilevel(tmp_path):
    src = Image.fromarray(_gradient())
    for mode, name in (("P", "pal.png"), ("L", "gray.png"), ("LA", "la.png"), ("1", "bw.bmp")):
        path = tmp_path / name
        (src.convert(mode) if mode != "P" else src.quantize(16)).save(path)
        out = load_rgb(path)
        assert out.shape == (24, 40, 3) and out.dtype == np.uint8, mode


def test_animated_gif_gives_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 6), c) for c in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    out = load_rgb(path)
    assert out.shape == (6, 8, 3)
    assert out[..., 0].min() > 200 and out[..., 2].max() < 50


def test_unicode_filename(tmp_path):
    path = tmp_path / "фото_été_写真.png"
    Image.fromarray(_gradient()).save(path)
    assert load_rgb(path).shape == (24, 40, 3)


# ---------- bad files: each raises BadImageError with a reason ----------

def _truncated_jpeg() -> bytes:
    data = _jpeg_bytes(Image.fromarray(np.random.default_rng(0).integers(
        0, 255, (64, 64, 3), dtype=np.uint8)))
    return data[: len(data) // 2]


BAD_FILES = {
    "corrupt.jpg": b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4,
    "truncated.jpg": _truncated_jpeg(),
    "empty.png": b"",
    "notes.jpg": b"these are my holiday notes, not a photo\n" * 20,
    "short.png": b"\x89PNG\r\n\x1a\n\x00\x00",
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_files_raise_bad_image_error(tmp_path, name):
    path = _write(tmp_path / name, BAD_FILES[name])
    with pytest.raises(BadImageError) as info:
        load_rgb(path)
    assert info.value.path == str(path)
    assert info.value.reason and "\n" not in info.value.reason
    assert str(path) in str(info.value)


def test_empty_file_reason(tmp_path):
    with pytest.raises(BadImageError, match="empty"):
        load_rgb(_write(tmp_path / "zero.jpg", b""))


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(BadImageError, match="not found"):
        load_rgb(tmp_path / "gone.jpg")
    (tmp_path / "folder.jpg").mkdir()
    with pytest.raises(BadImageError):
        load_rgb(tmp_path / "folder.jpg")


def test_decompression_bomb_is_refused(tmp_path):
    path = tmp_path / "big.png"
    Image.new("L", (400, 300)).save(path)
    with pytest.raises(BadImageError, match="decompression bomb"):
        load_rgb(path, max_pixels=100_000)
    assert load_rgb(path, max_pixels=120_000).shape == (300, 400, 3)


def test_png_header_claiming_huge_size_is_refused(tmp_path):
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    # 100,000 x 100,000 gray pixels claimed by a ~60-byte file
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))
    with pytest.raises(BadImageError, match="decompression bomb"):
        load_rgb(_write(tmp_path / "bomb.png", data))


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root reads files regardless of permissions")
def test_unreadable_file(tmp_path):
    path = tmp_path / "secret.png"
    Image.new("RGB", (4, 4)).save(path)
    path.chmod(0)
    try:
        with pytest.raises(BadImageError, match="permission"):
            load_rgb(path)
    finally:
        path.chmod(0o644)


def test_permission_error_reason(tmp_path, monkeypatch):
    """Same as above but works as root: the OS refusal is simulated at open()."""
    path = tmp_path / "secret.png"
    Image.new("RGB", (4, 4)).save(path)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(decode.Image, "open", refuse)
    with pytest.raises(BadImageError, match="permission denied"):
        load_rgb(path)


def test_heic_without_pillow_heif(tmp_path, monkeypatch):
    monkeypatch.setattr(decode, "_register_heif", lambda: False)
    with pytest.raises(BadImageError, match=r"ferindex\[heic\]"):
        load_rgb(_write(tmp_path / "IMG_0001.HEIC", b"\x00\x00\x00\x18ftypheic" + bytes(32)))
    # HEIC content under a .jpg name gets the same hint
    with pytest.raises(BadImageError, match=r"ferindex\[heic\]"):
        load_rgb(_write(tmp_path / "IMG_0002.jpg", b"\x00\x00\x00\x18ftypheic" + bytes(32)))


def test_jpeg_named_heic_decodes_without_pillow_heif(tmp_path, monkeypatch):
    """The format is sniffed from the content: only real HEIF content needs pillow-heif."""
    monkeypatch.setattr(decode, "_register_heif", lambda: False)
    out = load_rgb(_write(tmp_path / "IMG_0003.heic", _jpeg_bytes(Image.fromarray(_gradient()))))
    assert out.shape == (24, 40, 3)


def test_96_megapixel_png_is_under_the_100mp_limit(tmp_path):
    """Pillow warns from 89.5 MP on; the documented limit is 100 MP, so a 96 MP header passes
    the size check (this one then fails as truncated: it holds a few bytes of pixels)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 9800, 9800, 1, 0, 0, 0, 0)  # 96.04 MP, 1-bit gray
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))
    with pytest.raises(BadImageError) as err:
        load_rgb(_write(tmp_path / "panorama.png", data))
    assert "bomb" not in err.value.reason and "truncated" in err.value.reason
    with pytest.raises(BadImageError, match="decompression bomb"):
        load_rgb(tmp_path / "panorama.png", max_pixels=90_000_000)


def test_downscale_for_detection():
    rgb = np.zeros((3000, 1200, 3), np.uint8)
    small, scale = downscale_for_detection(rgb, max_side=1500)
    assert small.shape == (1500, 600, 3) and scale == pytest.approx(0.5)
    same, one = downscale_for_detection(small, max_side=1600)
    assert same is small and one == 1.0


# ---------- scanning ----------

def _album(root: Path) -> None:
    (root / "b").mkdir(parents=True)
    (root / "a").mkdir()
    (root / ".ferindex").mkdir()
    for rel in ("z.JPG", "a/2.png", "a/1.jpeg", "b/x.HeIc", "b/notes.txt", ".ferindex/t.jpg",
                "b/clip.mp4"):
        (root / rel).write_bytes(b"x" * 10)


def test_scan_finds_images_in_deterministic_order(tmp_path):
    _album(tmp_path)
    items = list(scan(tmp_path))
    assert all(isinstance(i, ScanEntry) for i in items)
    rel = [i.path.relative_to(tmp_path).as_posix() for i in items]
    assert rel == ["z.JPG", "a/1.jpeg", "a/2.png", "b/x.HeIc"]
    assert items[0].size == 10 and items[0].mtime_ns > 0
    assert [i.path for i in scan(tmp_path)] == [i.path for i in items]


def test_scan_survives_symlink_loop(tmp_path):
    _album(tmp_path)
    os.symlink(tmp_path, tmp_path / "a" / "loop")
    os.symlink(tmp_path / "nowhere.jpg", tmp_path / "broken.jpg")
    items = list(scan(tmp_path))
    entries = [i for i in items if isinstance(i, ScanEntry)]
    problems = [i for i in items if isinstance(i, ScanProblem)]
    assert len(entries) == 4
    by_name = {p.path.name: p for p in problems}
    assert set(by_name) == {"loop", "broken.jpg"}
    assert not by_name["loop"].unavailable  # skipped on purpose: its photos are seen elsewhere
    assert "broken symlink" in by_name["broken.jpg"].reason and by_name["broken.jpg"].unavailable


def test_scan_reports_broken_folder_link_fifo_and_unstatable_file(tmp_path, monkeypatch):
    """What used to be skipped silently: a folder link whose target is unmounted, a FIFO with an
    image name, and a file whose stat is refused (a folder without search permission)."""
    _album(tmp_path)
    os.symlink(tmp_path / "unmounted" / "photos", tmp_path / "usb")
    os.mkfifo(tmp_path / "pipe.jpg")
    real_stat = os.DirEntry.stat

    class RefusingEntry:
        """Wraps DirEntry: stat() of 'a/2.png' is refused."""

        def __init__(self, entry):
            self._e = entry

        def __getattr__(self, name):
            return getattr(self._e, name)

        def stat(self, **kw):
            if self._e.name == "2.png":
                raise PermissionError(13, "Permission denied", self._e.path)
            return real_stat(self._e, **kw)

    real_scandir = scan_mod.os.scandir

    class Refusing:
        def __init__(self, path):
            self._it = real_scandir(path)

        def __enter__(self):
            return (RefusingEntry(e) for e in self._it.__enter__())

        def __exit__(self, *exc):
            return self._it.__exit__(*exc)

    monkeypatch.setattr(scan_mod.os, "scandir", Refusing)
    items = list(scan(tmp_path))
    problems = {p.path.relative_to(tmp_path).as_posix(): p for p in items
                if isinstance(p, ScanProblem)}
    assert set(problems) == {"usb", "pipe.jpg", "a/2.png"}
    assert problems["usb"].unavailable and "unmounted" in problems["usb"].reason
    assert not problems["pipe.jpg"].unavailable and "FIFO" in problems["pipe.jpg"].reason
    assert problems["a/2.png"].unavailable and problems["a/2.png"].reason == "permission denied"
    assert len([i for i in items if isinstance(i, ScanEntry)]) == 3


def test_scan_reports_file_deleted_mid_scan(tmp_path, monkeypatch):
    _album(tmp_path)
    real_scandir = scan_mod.os.scandir

    class Vanishing:
        """os.scandir whose entries for 'a/1.jpeg' disappear before stat()."""

        def __init__(self, path):
            self._it = real_scandir(path)

        def __enter__(self):
            self._it.__enter__()
            return self

        def __exit__(self, *exc):
            return self._it.__exit__(*exc)

        def __iter__(self):
            for entry in self._it:
                if entry.name == "1.jpeg":
                    os.remove(entry.path)
                yield entry

    monkeypatch.setattr(scan_mod.os, "scandir", Vanishing)
    items = list(scan(tmp_path))
    problems = [i for i in items if isinstance(i, ScanProblem)]
    assert [p.path.name for p in problems] == ["1.jpeg"]
    assert "vanished" in problems[0].reason
    assert len([i for i in items if isinstance(i, ScanEntry)]) == 3


def test_scan_reports_unreadable_folder(tmp_path, monkeypatch):
    _album(tmp_path)
    real_scandir = scan_mod.os.scandir

    def refuse_b(path):
        if Path(path).name == "b":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(scan_mod.os, "scandir", refuse_b)
    items = list(scan(tmp_path))
    problems = [i for i in items if isinstance(i, ScanProblem)]
    assert len(problems) == 1 and problems[0].path.name == "b"
    assert "permission denied" in problems[0].reason
    assert len([i for i in items if isinstance(i, ScanEntry)]) == 3


def test_content_hash(tmp_path):
    a = _write(tmp_path / "a.jpg", b"same bytes" * 100_000)
    b = _write(tmp_path / "b.jpg", b"same bytes" * 100_000)
    c = _write(tmp_path / "c.jpg", b"other bytes")
    assert content_hash(a) == content_hash(b) != content_hash(c)
    assert content_hash(a, chunk_size=7) == content_hash(a)
