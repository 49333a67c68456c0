"""A real X server for the PAD's display tests: Xvfb on a display number it picks itself, and
what is on its screen read back from the framebuffer file Xvfb keeps (``-fbdir``, XWD format),
so a screenshot shows what the X server shows, not what the app says it drew.

    with xvfb(tmp_path, (1280, 800)) as screen:
        env = {"DISPLAY": screen.display, "QT_QPA_PLATFORM": "xcb"}
        ...
        pixels = screen.grab()         # (height, width, 3) uint8, RGB
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

XWD_HEADER = struct.Struct(">25I")
START_TIMEOUT_S = 30.0


def xvfb_binary() -> str:
    found = shutil.which("Xvfb")
    if found is None:
        pytest.fail("Xvfb is not installed (`make test` installs it: SYSTEM_DEPS in the Makefile)")
    return found


@dataclass(frozen=True)
class Screen:
    display: str
    framebuffer: Path

    def grab(self) -> np.ndarray:
        return read_xwd(self.framebuffer.read_bytes())


def read_xwd(data: bytes) -> np.ndarray:
    """The pixels of an XWD dump of a 24/32-bit TrueColor screen, as RGB."""
    (header_size, _version, _format, depth, width, height, _xoffset, byte_order, _unit, _bit_order,
     _pad, bits_per_pixel, bytes_per_line, _visual, red_mask, green_mask, blue_mask, _bits_rgb,
     _entries, ncolours, *_window) = XWD_HEADER.unpack_from(data)
    if bits_per_pixel != 32 or depth not in (24, 32):
        raise ValueError(f"unexpected XWD pixel format: {bits_per_pixel} bits per pixel, depth {depth}")
    start = header_size + ncolours * 12  # XWDColor: pixel, r, g, b, flags, pad
    dtype = np.dtype("<u4" if byte_order == 0 else ">u4")  # 0: LSBFirst
    rows = np.frombuffer(data, dtype, count=height * bytes_per_line // 4, offset=start)
    pixels = rows.reshape(height, bytes_per_line // 4)[:, :width]
    channels = []
    for mask in (red_mask, green_mask, blue_mask):
        shift = (mask & -mask).bit_length() - 1
        channels.append(((pixels & mask) >> shift).astype(np.uint8))
    return np.stack(channels, axis=-1)


@contextlib.contextmanager
def xvfb(folder: Path, size: tuple[int, int]) -> Iterator[Screen]:
    """Xvfb at ``size`` (24-bit), on the first free display number (``-displayfd``)."""
    fbdir = folder / "xvfb"
    fbdir.mkdir(parents=True, exist_ok=True)
    read_fd, write_fd = os.pipe()
    log = (folder / "xvfb.log").open("wb")
    proc = subprocess.Popen(
        [xvfb_binary(), "-displayfd", str(write_fd), "-screen", "0", f"{size[0]}x{size[1]}x24",
         "-nolisten", "tcp", "-fbdir", str(fbdir)],
        pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=log)
    os.close(write_fd)
    try:
        ready, _, _ = select.select([read_fd], [], [], START_TIMEOUT_S)
        number = os.read(read_fd, 64).decode().strip() if ready else ""
        if not number:
            proc.kill()
            proc.wait(5)
            pytest.fail(f"Xvfb did not start: {(folder / 'xvfb.log').read_text(errors='replace')[-2000:]}")
        yield Screen(f":{number}", fbdir / "Xvfb_screen0")
    finally:
        os.close(read_fd)
        log.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
