"""A throwaway PostgreSQL cluster for tests (hq.pgserver: ``initdb``/``pg_ctl`` from Debian's
``postgresql``, which ``make test`` installs through SYSTEM_DEPS in the Makefile; as root it
runs as the ``postgres`` user)::

    @pytest.fixture
    def postgres():
        yield from running_postgres()    # started; .dsn, .stop(mode), .start(), .restart()
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hq.errors import HqError
from hq.pgserver import TempPostgres


def running_postgres() -> Iterator[TempPostgres]:
    try:
        server = TempPostgres()
    except HqError as err:
        pytest.fail(f"{err} (`make test` installs it: SYSTEM_DEPS in the Makefile)")
    try:
        server.start()
        yield server
    finally:
        server.remove()
