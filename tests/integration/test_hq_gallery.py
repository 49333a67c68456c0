"""Gallery packages with the real models and real photos: head office enrols customers
centrally (``branch-edge fleet embed`` run as a program), builds a signed package encrypted
for one branch, and the branch imports it and recognises a customer it never enrolled; a
package for another model pack, a bad signature and a replayed old version are refused with
a clear error, and nothing of them is applied."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.config import EdgeConfig, parse_config
from edge.enrol.enrolment import enrol_folder
from edge.fleet.contract import branch_contract
from edge.fleet.importer import RefusalError, gallery_version, import_package
from edge.fleet.keys import generate_branch_key, load_fleet_keys
from edge.lobby.daemon import load_gallery
from edge.store.crypto import generate_key_file
from edge.store.database import open_configured
from edge.vision.imageio import decode_checked
from hq.contract import pack_contract
from hq.enrol import embed_photos, enrol_templates
from hq.keys import init_keys, load_data_key, load_signing_key
from hq.packages import build_package
from hq.registry import Registry

BRANCH_EDGE = str(Path(sys.executable).parent / "branch-edge")
HQ_PEOPLE = {"C-BRODY": "Adrien_Brody", "C-DION": "Celine_Dion"}  # enrolled at head office only
LOCAL_PERSON = ("C-DIAZ", "Cameron_Diaz")  # enrolled at the branch itself


def write_csv(path: Path, people: dict[str, str], photos: tuple[int, ...] = (1, 2)) -> Path:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["customer_id", "photo", "display_name", "tier", "assigned_rm", "consent_channel",
                         "consent_time"])
        for cid, folder in people.items():
            for n in photos:
                writer.writerow([cid, f"{folder}/{folder}_{n:04d}.jpg", f"Customer {cid[-4:]}", "private",
                                 "RM-01", "kyc-head-office", "2026-01-05T10:00:00+08:00"])
    return path


@pytest.fixture(scope="module")
def hq_templates(tmp_path_factory, data_dir, models_dir):
    """The head-office enrolment station's output for two customers (real models, once)."""
    folder = tmp_path_factory.mktemp("hq-station")
    return embed_photos(data_dir / "faces", customers_csv=write_csv(folder / "c.csv", HQ_PEOPLE),
                        models_dir=models_dir, program=BRANCH_EDGE)


class Site:
    """Head office and one branch, each with its own keys and state."""

    def __init__(self, tmp: Path, models_dir: Path) -> None:
        self.tmp, self.models_dir = tmp, models_dir
        init_keys(tmp / "hq-signing.key", tmp / "hq-data.key", tmp / "hq-signing.pub.pem")
        self.signing = load_signing_key(tmp / "hq-signing.key")
        self.registry = Registry(tmp / "hq.db", load_data_key(tmp / "hq-data.key"))
        generate_key_file(tmp / "store.key")
        generate_branch_key(tmp / "branch.key", tmp / "branch.pub.pem")
        self.cfg: EdgeConfig = parse_config({
            "branch_id": "b1",
            "store": {"path": str(tmp / "edge.db"), "key_file": str(tmp / "store.key")},
            "fleet": {"enabled": True, "hq_public_key": str(tmp / "hq-signing.pub.pem"),
                      "branch_key": str(tmp / "branch.key"), "state_dir": str(tmp / "fleet")},
        })
        with open_configured(self.cfg.store):
            pass
        self.keys = load_fleet_keys(self.cfg.fleet)
        self.contract = branch_contract(self.cfg, models_dir)
        self.registry.add_branch("b1", (tmp / "branch.pub.pem").read_bytes())

    def package(self, contract=None, signing=None) -> bytes:
        row = build_package(self.registry, "b1", contract or pack_contract("default", self.models_dir),
                            signing or self.signing, self.tmp / "packages")
        assert row is not None
        return row.path.read_bytes()

    def import_(self, data: bytes):
        with open_configured(self.cfg.store, create=False) as store:
            return import_package(data, store, branch_id="b1", contract=self.contract, keys=self.keys)

    def version(self) -> int:
        with open_configured(self.cfg.store, create=False) as store:
            return gallery_version(store)

    def template_count(self) -> int:
        with open_configured(self.cfg.store, create=False) as store:
            return len(store.load_templates(self.contract.model_pack)[0])


@pytest.fixture
def site(tmp_path, models_dir):
    s = Site(tmp_path, models_dir)
    yield s
    s.registry.close()


def identify(site: Site, engine, photo: Path) -> tuple[str | None, float]:
    """What the branch's gallery (as the daemon loads it) says of a new photo."""
    observation = engine.analyze(decode_checked(photo.read_bytes()).image)[0]
    with open_configured(site.cfg.store, create=False) as store:
        gallery = load_gallery(store, engine, site.cfg)
    decision = gallery.identify(observation.embedding, site.cfg.recognition.threshold,
                                site.cfg.recognition.margin)
    return decision.customer_id if decision.accepted else None, decision.best.score if decision.best else 0.0


def test_customer_enrolled_only_at_head_office_is_recognised_at_the_branch(
        site, hq_templates, engine, data_dir, edge_config):
    report = enrol_templates(site.registry, hq_templates, pack_contract("default", site.models_dir))
    assert sorted(report.enrolled) == sorted(HQ_PEOPLE) and not report.refused
    site.registry.assign("b1", list(HQ_PEOPLE))
    # the branch enrols one customer of its own, beside head office's
    local = write_csv(site.tmp / "local.csv", dict([LOCAL_PERSON]))
    with open_configured(site.cfg.store, create=False) as store:
        enrolled = enrol_folder(store, engine, site.cfg, data_dir / "faces", customers_csv=local, actor="t")
    assert enrolled.count("accepted") >= 1
    probe = data_dir / "faces" / "Adrien_Brody" / "Adrien_Brody_0003.jpg"
    assert identify(site, engine, probe)[0] is None  # not known here yet

    result = site.import_(site.package())

    assert result.state == "applied" and result.version == 1
    assert (result.customers_added, result.templates_added) == (2, 4)
    assert site.version() == 1
    assert identify(site, engine, probe)[0] == "C-BRODY"
    faces = data_dir / "faces"
    assert identify(site, engine, faces / "Celine_Dion" / "Celine_Dion_0004.jpg")[0] == "C-DION"
    assert identify(site, engine, faces / "Cameron_Diaz" / "Cameron_Diaz_0004.jpg")[0] == "C-DIAZ"
    with open_configured(site.cfg.store, create=False) as store:
        customer = store.get_customer("C-BRODY")
        assert customer is not None and customer.assigned_rm == "RM-01"
        assert store.active_consent("C-BRODY").channel == "kyc-head-office"


def test_package_for_another_model_pack_is_refused_and_nothing_mixed(site, hq_templates):
    enrol_templates(site.registry, hq_templates, pack_contract("default", site.models_dir))
    site.registry.assign("b1", list(HQ_PEOPLE))
    fast = pack_contract("fast", site.models_dir)  # mobilefacenet.onnx: another vector space
    # the same 128-d vectors, claimed to be of the fast pack: the contract alone must refuse them
    site.registry.enrol("C-FAST", display_name="x", tier="t", assigned_rm="RM-01", consent_channel="kyc",
                        consent_time="2026-01-05T10:00:00+08:00", model_pack=fast.model_pack,
                        recognizer_sha256=fast.recognizer_sha256,
                        templates=[("f" * 64, bytes(range(128)) * 4)])
    site.registry.assign("b1", ["C-FAST"])

    with pytest.raises(RefusalError) as err:
        site.import_(site.package(contract=fast))

    assert err.value.reason == "contract_mismatch"
    assert "model pack 'fast'" in str(err.value) and "never mixed" in str(err.value)
    assert site.version() == 0 and site.template_count() == 0


def test_bad_signature_is_refused(site, hq_templates):
    enrol_templates(site.registry, hq_templates, pack_contract("default", site.models_dir))
    site.registry.assign("b1", list(HQ_PEOPLE))

    with pytest.raises(RefusalError) as err:
        site.import_(site.package(signing=Ed25519PrivateKey.generate()))

    assert err.value.reason == "bad_signature"
    assert "head office's public key" in str(err.value)
    assert site.version() == 0 and site.template_count() == 0


def test_replayed_old_version_is_refused_and_the_same_one_is_idempotent(site, hq_templates):
    enrol_templates(site.registry, hq_templates, pack_contract("default", site.models_dir))
    site.registry.assign("b1", ["C-BRODY"])
    first = site.package()
    site.registry.assign("b1", ["C-DION"])
    second = site.package()
    with pytest.raises(RefusalError) as early:
        site.import_(second)  # a delta on top of version 1, which the branch does not have
    assert early.value.reason == "out_of_order"
    assert site.import_(first).state == "applied"
    assert site.import_(second).state == "applied"
    assert site.template_count() == 4

    with pytest.raises(RefusalError) as err:
        site.import_(first)

    assert err.value.reason == "replay"
    assert "no rollback, no replay" in str(err.value)
    assert site.import_(second).state == "already_applied"
    assert site.version() == 2 and site.template_count() == 4


def test_package_erasures_reach_an_air_gapped_branch(site, hq_templates):
    enrol_templates(site.registry, hq_templates, pack_contract("default", site.models_dir))
    site.registry.assign("b1", list(HQ_PEOPLE))
    site.import_(site.package())
    site.registry.issue_erasure("C-DION", "consent withdrawn")

    result = site.import_(site.package())

    assert (result.version, result.erasures_applied, result.templates_added) == (2, 1, 0)
    with open_configured(site.cfg.store, create=False) as store:
        owners, _ = store.load_templates(site.contract.model_pack)
        assert set(owners) == {"C-BRODY"}
        assert store.active_consent("C-DION") is None


def test_cli_import_says_why_a_package_is_refused(site, hq_templates, tmp_path):
    enrol_templates(site.registry, hq_templates, pack_contract("default", site.models_dir))
    site.registry.assign("b1", list(HQ_PEOPLE))
    package = tmp_path / "forged.pkg"
    package.write_bytes(site.package(signing=Ed25519PrivateKey.generate()))
    config = tmp_path / "edge.toml"
    fleet = site.cfg.fleet
    config.write_text(f'branch_id = "b1"\n[store]\npath = "{site.cfg.store.path}"\nkey_file = '
                      f'"{site.cfg.store.key_file}"\n[fleet]\nhq_public_key = "{fleet.hq_public_key}"\n'
                      f'branch_key = "{fleet.branch_key}"\n')

    done = subprocess.run([BRANCH_EDGE, "fleet", "import", str(package), "--config", str(config),
                           "--models", str(site.models_dir)], capture_output=True, text=True, check=False)

    assert done.returncode == 3
    assert "refused (bad_signature)" in done.stderr
    assert site.version() == 0
