"""Readers used through their vendor SDK (loaded with ctypes only when configured).

- :class:`SdtApiReader`: the standard ``SDT_*`` API (sdtapi.dll, libsdtapi.so,
  libzysdtapi.so).  It returns the raw text and photo blocks, so the same
  parser as the serial driver builds the :class:`IdCard`.
- :class:`TermbReader`: China Vision ``termb`` / ``libtermb.so`` (``CVR_*`` and
  field getters returning GBK strings).  It writes personal data to files in
  its working directory, so it runs in a private temporary directory that is
  emptied after every read.

Port numbers follow the vendors: 1-16 = COM1-COM16, 1001-1016 = USB 1-16.
Vendor libraries are not known to be thread-safe: use one reader per process.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import tempfile
from pathlib import Path
from typing import ClassVar

from ui.devices.idcard.card import CardReadError, IdCard, card_from_blocks, card_from_text
from ui.devices.idcard.protocol import SW_FOUND, SW_OK, status_error


def load_library(path: str | Path) -> ctypes.CDLL:
    """The vendor library, or a CardReadError that says what is missing."""
    lib_path = Path(path)
    if not lib_path.is_file():
        raise CardReadError(f"the reader SDK library {lib_path} does not exist; install the reader "
                            "vendor's SDK and point --sdk at it", "sdk_missing")
    try:
        return ctypes.CDLL(str(lib_path))
    except OSError as exc:
        raise CardReadError(f"cannot load the reader SDK library {lib_path}: {exc}", "sdk_missing") from exc


def _bind(lib: ctypes.CDLL, name: str, argtypes: list[type]) -> ctypes._NamedFuncPointer:
    try:
        func: ctypes._NamedFuncPointer = getattr(lib, name)
    except AttributeError as exc:
        raise CardReadError(f"the reader SDK library has no function {name}; is it the right SDK?",
                            "sdk_missing") from exc
    func.argtypes, func.restype = argtypes, ctypes.c_int
    return func


class SdtApiReader:
    _SIGNATURES: ClassVar[dict[str, list[type]]] = {
        "SDT_OpenPort": [ctypes.c_int],
        "SDT_ClosePort": [ctypes.c_int],
        "SDT_StartFindIDCard": [ctypes.c_int, ctypes.c_char_p, ctypes.c_int],
        "SDT_SelectIDCard": [ctypes.c_int, ctypes.c_char_p, ctypes.c_int],
        "SDT_ReadBaseMsg": [ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(ctypes.c_uint),
                            ctypes.c_char_p, ctypes.POINTER(ctypes.c_uint), ctypes.c_int],
    }

    def __init__(self, library: str | Path, port: int = 1001) -> None:
        lib = load_library(library)
        self._f = {name: _bind(lib, name, args) for name, args in self._SIGNATURES.items()}
        self.port = port

    def read_card(self) -> IdCard:
        if self._f["SDT_OpenPort"](self.port) != SW_OK:
            raise CardReadError(f"the reader on SDK port {self.port} cannot be opened", "port_unavailable")
        try:
            scratch = ctypes.create_string_buffer(16)
            if (status := self._f["SDT_StartFindIDCard"](self.port, scratch, 0)) != SW_FOUND:
                raise status_error(status, "find card")
            if (status := self._f["SDT_SelectIDCard"](self.port, scratch, 0)) != SW_OK:
                raise status_error(status, "select card")
            text, photo = ctypes.create_string_buffer(256), ctypes.create_string_buffer(1024)
            text_len, photo_len = ctypes.c_uint(0), ctypes.c_uint(0)
            status = self._f["SDT_ReadBaseMsg"](self.port, text, ctypes.byref(text_len), photo,
                                                ctypes.byref(photo_len), 0)
            if status != SW_OK:
                raise status_error(status, "read card")
            return card_from_blocks(text.raw[:text_len.value], photo.raw[:photo_len.value])
        finally:
            self._f["SDT_ClosePort"](self.port)


class TermbReader:
    """China Vision termb: CVR_InitComm / CVR_Authenticate / CVR_Read_Content + getters."""

    _GETTERS: ClassVar[dict[str, str]] = {
        "name": "GetPeopleName", "gender_text": "GetPeopleSex", "birth": "GetPeopleBirthday",
                "address": "GetPeopleAddress", "id_number": "GetPeopleIDCode",
                "authority": "GetDepartment", "valid_from": "GetStartDate", "valid_to": "GetEndDate",
                "nation_code": "GetNationCode"}

    def __init__(self, library: str | Path, port: int = 1001) -> None:
        lib = load_library(library)
        self._init = _bind(lib, "CVR_InitComm", [ctypes.c_int])
        self._auth = _bind(lib, "CVR_Authenticate", [])
        self._read = _bind(lib, "CVR_Read_Content", [ctypes.c_int])
        self._close = _bind(lib, "CVR_CloseComm", [])
        getter_args: list[type] = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_int)]
        self._get = {field: _bind(lib, name, getter_args) for field, name in self._GETTERS.items()}
        self.port = port

    def _field(self, name: str) -> str:
        buf, size = ctypes.create_string_buffer(256), ctypes.c_int(256)
        if self._get[name](buf, ctypes.byref(size)) != 1:
            raise CardReadError(f"the reader SDK could not return the {name}", "read_failed")
        return buf.raw[:max(0, size.value)].split(b"\0")[0].decode("gbk", errors="replace").strip()

    def read_card(self) -> IdCard:
        workdir = tempfile.mkdtemp(prefix="termb-")
        cwd = os.getcwd()
        if self._init(self.port) != 1:
            raise CardReadError(f"the reader on SDK port {self.port} cannot be opened", "port_unavailable")
        try:
            os.chdir(workdir)  # the SDK drops wz.txt / zp.bmp here; removed below
            if self._auth() != 1:
                raise status_error(0x80, "find card")
            if self._read(1) != 1:
                raise status_error(0x41, "read card")
            values = {name: self._field(name) for name in self._GETTERS}
        finally:
            os.chdir(cwd)
            with contextlib.suppress(OSError):
                self._close()
            shutil.rmtree(workdir, ignore_errors=True)
        gender = {"男": "1", "女": "2"}.get(values.pop("gender_text"), "0")
        for name in ("birth", "valid_from", "valid_to"):  # some builds print 2020.01.31
            if values[name] != "长期":
                values[name] = "".join(ch for ch in values[name] if ch.isdigit())
        return card_from_text({**values, "card_type": " ", "gender": gender})
