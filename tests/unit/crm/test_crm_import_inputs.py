"""CRM files as banks export them: GB18030 from Excel, formula cells, control and bidi characters.

The data is stored exactly as given; only what people read is neutralised: the
console output of ``crm import`` / ``crm show`` and the CSV report of ``report``.
A file that cannot be read creates no database.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from edge.cli import main
from edge.crm.importer import import_file
from edge.crm.outcomes import write_csv
from edge.crm.records import CrmError, CrmStore

HEADER = "customer_id,name,tier,assigned_rm,risk_level,risk_expires_on\n"
ROWS = "C1,王小明,贵宾,RM-01,C3,2027-06-30\nC2,李华,财富管理,RM-02,C4,2027-06-30\n"


@pytest.fixture
def crm(tmp_path: Path) -> CrmStore:
    store = CrmStore.open(tmp_path / "crm.db")
    yield store
    store.close()


def write_bytes(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("encoding", ["gb18030", "gbk", "utf-8", "utf-8-sig", "utf-16"])
def test_excel_encodings_are_detected(crm: CrmStore, tmp_path: Path, encoding: str) -> None:
    path = write_bytes(tmp_path, "customers.csv", (HEADER + ROWS).encode(encoding))
    report = import_file(crm, "customers", path)
    assert (report.inserted, report.rejected) == (2, [])
    assert {c.customer_id: c.name for c in crm.customers()} == {"C1": "王小明", "C2": "李华"}


def test_an_undecodable_file_is_a_clear_error_naming_the_encodings(crm: CrmStore, tmp_path: Path) -> None:
    path = write_bytes(tmp_path, "customers.csv", HEADER.encode() + b"C1,\x80\xff\x80,x\n")
    with pytest.raises(CrmError, match=r"neither UTF-8 nor GB18030 .*--encoding"):
        import_file(crm, "customers", path)
    assert crm.customers() == []


def test_a_given_encoding_is_used_and_named_when_it_does_not_fit(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = write_bytes(tmp_path, "customers.csv", (HEADER + ROWS).encode("gb18030"))
    db = tmp_path / "crm.db"
    assert main(["crm", "import", "--customers", str(path), "--db", str(db), "--encoding", "utf-8"]) == 2
    assert "not valid utf-8" in capsys.readouterr().err
    assert main(["crm", "import", "--customers", str(path), "--db", str(db), "--encoding", "nope"]) == 2
    assert "unknown encoding 'nope'" in capsys.readouterr().err
    assert main(["crm", "import", "--customers", str(path), "--db", str(db), "--encoding", "gbk"]) == 0
    with CrmStore.open(db) as crm:
        assert crm.customer("C1") is not None


@pytest.mark.parametrize("content", [
    b"customer_id,name\nC1,x\n",  # missing columns
    HEADER.encode() + b"C1,\x80\xff\x80,x\n",  # not decodable
])
def test_a_failing_import_creates_no_database(tmp_path: Path, content: bytes,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = write_bytes(tmp_path, "customers.csv", content)
    db = tmp_path / "new" / "crm.db"
    db.parent.mkdir()
    assert main(["crm", "import", "--customers", str(path), "--db", str(db)]) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert list(db.parent.iterdir()) == []


def test_devices_and_fifos_are_refused(crm: CrmStore, tmp_path: Path) -> None:
    fifo = tmp_path / "customers.csv"
    os.mkfifo(fifo)
    for path in (Path("/dev/zero"), fifo):
        with pytest.raises(CrmError, match="not a regular file"):
            import_file(crm, "customers", path)


FORMULA = "=2+5+cmd|' /C calc'!A0"  # the classic DDE payload


def test_formula_and_control_cells_are_stored_as_given_and_neutralised_on_output(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    evil_name = "王\u202eevil\x1b[2J"
    rows = [HEADER.strip(), f"C1,{evil_name},{FORMULA},RM-01,C3,2027-06-30",
            "C2,@SUM(1+1),-2+3,RM-01,C9,2027-06-30"]  # C2 is rejected: its risk level is unknown
    path = write_bytes(tmp_path, "customers\x1b[31m.csv", "\n".join(rows).encode())
    db = tmp_path / "crm.db"
    assert main(["crm", "import", "--customers", str(path), "--db", str(db)]) == 1
    out = capsys.readouterr().out
    assert "\x1b" not in out and "customers\\x1b[31m.csv" in out
    with CrmStore.open(db) as crm:
        stored = crm.customer("C1")
    assert stored is not None and (stored.name, stored.tier) == (evil_name, FORMULA)  # as given

    report = tmp_path / "outcomes.csv"
    write_csv([{"dimension": "segment", "key": FORMULA, "recommended": 1, "converted": 0,
                "conversion_rate": 0.0, "sales_amount": 0.0, "reported_sold": 0},
               {"dimension": "rm", "key": "-1+1", "recommended": 1, "converted": 1,
                "conversion_rate": 1.0, "sales_amount": -5.0, "reported_sold": 0},
               {"dimension": "product", "key": "基金\u202e", "recommended": 2, "converted": 1,
                "conversion_rate": 0.5, "sales_amount": 10.0, "reported_sold": 1}], report)
    with report.open(newline="", encoding="utf-8") as handle:
        cells = list(csv.DictReader(handle))
    assert [c["key"] for c in cells] == ["'" + FORMULA, "'-1+1", "基金\\u202e"]
    assert cells[1]["sales_amount"] == "-5.0"  # numbers stay numbers
