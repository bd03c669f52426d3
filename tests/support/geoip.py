"""MaxMind-format databases for tests, written with ``mmdb_writer`` (a dev extra).

``RECORDS`` is the probe's data set: Crimea (UA-43) and Kyiv (UA-30) by
subdivision, a US and an Iranian range, a range with only a registered
country, one whose subdivision code is already written whole (``UA-43``) and
one whose subdivision is no ISO 3166-2 code (``UA-99``).
"""

from __future__ import annotations

from pathlib import Path

Record = dict[str, object]

CRIMEA_IP, KYIV_IP, US_IP, IR_IP = "81.2.69.142", "81.2.70.9", "8.8.8.8", "5.5.5.5"
REGISTERED_IR_IP, WHOLE_CODE_IP, BAD_REGION_IP = "9.9.9.9", "7.7.7.7", "6.6.6.6"
RECORDS: list[tuple[str, Record]] = [
    ("81.2.69.0/24", {"country": {"iso_code": "UA"}, "subdivisions": [{"iso_code": "43"}]}),
    ("81.2.70.0/24", {"country": {"iso_code": "UA"}, "subdivisions": [{"iso_code": "30"}]}),
    ("8.8.8.0/24", {"country": {"iso_code": "US"}}),
    ("5.5.5.0/24", {"country": {"iso_code": "IR"}}),
    ("2a02:1::/32", {"country": {"iso_code": "UA"}, "subdivisions": [{"iso_code": "43"}]}),
    ("9.9.9.0/24", {"registered_country": {"iso_code": "IR"}}),
    ("7.7.7.0/24", {"country": {"iso_code": "UA"}, "subdivisions": [{"iso_code": "UA-43"}]}),
    ("6.6.6.0/24", {"country": {"iso_code": "UA"}, "subdivisions": [{"iso_code": "99"}]}),
]
ASN_RECORDS: list[tuple[str, Record]] = [("8.8.8.0/24", {"autonomous_system_number": 15169})]


def write_mmdb(path: Path, database_type: str, records: list[tuple[str, Record]]) -> Path:
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type=database_type,
                        languages=["en"], description="gateway test db")  # fmt: skip
    for network, record in records:
        writer.insert_network(IPSet([network]), record)
    writer.to_db_file(str(path))
    return path


def corrupt_data_section(path: Path) -> None:
    """Overwrite every record's data: the file still opens (its metadata and
    search tree are intact), and every lookup that finds an address raises."""
    import maxminddb

    with maxminddb.open_database(str(path)) as reader:
        meta = reader.metadata()
    data = bytearray(path.read_bytes())
    start = meta.node_count * meta.record_size * 2 // 8 + 16  # after tree and separator
    end = data.rfind(b"\xab\xcd\xefMaxMind.com")
    data[start:end] = b"\xff" * (end - start)
    path.write_bytes(bytes(data))
