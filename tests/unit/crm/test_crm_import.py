"""CRM import: row-by-row validation with line numbers, idempotence, no half-applied files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.cli import main
from edge.crm.importer import import_file, import_files
from edge.crm.records import CrmError, CrmStore

HEADER = ("customer_id,name,tier,assigned_rm,risk_level,risk_expires_on,birthday,preferred_language,"
          "preferences,id_number,account_number\n")
CUSTOMERS = HEADER + (
    "C1,王小明,贵宾,RM-01,C3,2027-06-30,1980-02-29,zh-CN,偏好电话联系;关注养老规划,"
    "110101198002291234,6222020200112233\n"
) + """C2,李华,财富管理,RM-02,C6,2027-06-30,,,,,
C3,"张
三",私人银行,RM-03,C2,2027-13-01,,fr,,,
,无名,贵宾,RM-01,C1,2027-01-01,,,,,
C4,陈静,贵宾,RM 01,C1,2027-01-01,,en,,,
C1,王小明,贵宾,RM-01,C3,2027-06-30,,,,,
C5,赵四,贵宾,RM-02,C2,2027-01-01,,en,,,
"""

HOLDINGS = """holding_id,customer_id,product_id,category,amount,opened_on,matures_on
H1,C1,TD-1Y,deposit,"200,000",2026-01-15,2027-01-15
H2,C1,CASA,current,80000,2020-01-01,
H3,C9,TD-1Y,deposit,1000,2026-01-15,2027-01-15
H4,C1,TD-1Y,deposit,-5,2026-01-15,2026-01-01
H5,C1,GOLD,metal,abc,yesterday,
"""


@pytest.fixture
def crm(tmp_path: Path) -> CrmStore:
    store = CrmStore.open(tmp_path / "crm.db")
    yield store
    store.close()


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_bad_rows_are_reported_by_line_with_reasons_and_good_rows_applied(crm: CrmStore,
                                                                         tmp_path: Path) -> None:
    report = import_file(crm, "customers", write(tmp_path, "customers.csv", CUSTOMERS))
    rejected = {r.where: r.reasons for r in report.rejected}
    assert report.rows == 7
    assert report.inserted == 2  # C1 and C5
    assert sorted(c.customer_id for c in crm.customers()) == ["C1", "C5"]
    assert rejected["line 3"] == ["risk_level: 'C6' is not one of C1, C2, C3, C4, C5"]
    # the quoted name spans lines 4-5: the row is reported at the line it ends on
    assert any("risk_expires_on" in r for r in rejected["line 5"])
    assert any("preferred_language" in r for r in rejected["line 5"])
    assert rejected["line 6"] == ["customer_id: missing"]
    assert "assigned_rm" in rejected["line 7"][0]
    assert rejected["line 8"] == ["duplicate id 'C1' (first at line 2)"]


def test_holdings_need_known_customers_and_valid_fields(crm: CrmStore, tmp_path: Path) -> None:
    import_file(crm, "customers", write(tmp_path, "customers.csv", CUSTOMERS))
    report = import_file(crm, "holdings", write(tmp_path, "holdings.csv", HOLDINGS))
    rejected = {r.where: r.reasons for r in report.rejected}
    assert [h.holding_id for h in crm.holdings("C1")] == ["H1", "H2"]
    assert crm.holdings("C1")[0].amount == 200_000
    assert "not a known customer" in rejected["line 4"][0]
    assert any("out of range" in r for r in rejected["line 5"])
    assert any("before opened_on" in r for r in rejected["line 5"])
    assert len(rejected["line 6"]) == 3  # category, amount and date all wrong, all reported


def test_import_is_idempotent_and_updates_changed_rows(crm: CrmStore, tmp_path: Path) -> None:
    path = write(tmp_path, "customers.csv", CUSTOMERS)
    import_file(crm, "customers", path)
    version = crm.data_version()
    again = import_file(crm, "customers", path)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)
    assert crm.data_version() == version
    path.write_text(CUSTOMERS.replace("C5,赵四,贵宾,RM-02,C2", "C5,赵四,贵宾,RM-03,C2"), encoding="utf-8")
    third = import_file(crm, "customers", path)
    assert (third.inserted, third.updated, third.unchanged) == (0, 1, 1)
    assert crm.customer("C5").assigned_rm == "RM-03"
    assert crm.data_version() == version + 1


def test_identifiers_are_masked_and_never_stored_in_full(crm: CrmStore, tmp_path: Path) -> None:
    import_file(crm, "customers", write(tmp_path, "customers.csv", CUSTOMERS))
    c1 = crm.customer("C1")
    assert c1.masked_id_number == "1101**********1234"
    assert c1.masked_account == "**** 2233"
    crm.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("crm.db*"))
    assert b"110101198002291234" not in raw
    assert b"6222020200112233" not in raw


def test_json_records_are_validated_like_csv_rows(crm: CrmStore, tmp_path: Path) -> None:
    records = [
        {"customer_id": "J1", "name": "周杰", "tier": "贵宾", "assigned_rm": "RM-01", "risk_level": "C2",
         "risk_expires_on": "2027-01-01", "preferences": ["偏好微信沟通", "关注子女教育"]},
        "not an object",
        {"customer_id": "J2", "name": "吴敏", "tier": "贵宾", "assigned_rm": "RM-01", "risk_level": 3,
         "risk_expires_on": "2027-01-01"},
    ]
    path = write(tmp_path, "c.json", json.dumps({"customers": records}, ensure_ascii=False))
    report = import_file(crm, "customers", path)
    assert [r.where for r in report.rejected] == ["record 2", "record 3"]
    assert report.rejected[0].reasons == ["not a JSON object"]
    assert crm.customer("J1").preferences == ("偏好微信沟通", "关注子女教育")


def test_unusable_files_raise_and_import_nothing(crm: CrmStore, tmp_path: Path) -> None:
    good = write(tmp_path, "customers.csv", CUSTOMERS)
    broken = write(tmp_path, "holdings.csv", "holding_id,customer_id,amount\nH1,C1,5\n")
    with pytest.raises(CrmError, match="missing column"):
        import_files(crm, {"customers": good, "holdings": broken})
    with pytest.raises(CrmError, match="not valid JSON"):
        import_file(crm, "customers", write(tmp_path, "x.json", "{nope"))
    with pytest.raises(CrmError, match="no such file"):
        import_files(crm, {"customers": good, "transactions": tmp_path / "absent.csv"})
    assert crm.customers() == []


def test_cli_import_reports_rejections_and_exits_1(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "customers.csv", CUSTOMERS)
    write(tmp_path, "holdings.csv", HOLDINGS)
    code = main(["crm", "import", "--dir", str(tmp_path), "--db", str(tmp_path / "crm.db"), "--json"])
    reports = json.loads(capsys.readouterr().out)
    assert code == 1
    assert [r["kind"] for r in reports] == ["customers", "holdings"]
    assert reports[1]["inserted"] == 2
    assert reports[1]["rejected"][0]["where"] == "line 4"
    assert main(["crm", "import", "--db", str(tmp_path / "crm.db")]) == 2  # nothing given
