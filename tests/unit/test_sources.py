"""Reading CSV folders: types, quirks kept as they are, and a clear error for each bad input."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pyarrow as pa
import pytest

from ingestion.csv_files import parse_csv, read_csv_folder, write_csv_folder
from ingestion.errors import SourceError
from ingestion.source_data import SourceData
from ingestion.sources import load_source
from ingestion.synthetic import generate
from ingestion.tables import ACCOUNTS, PRODUCTS, SALES_PIPELINE, SCHEMAS, TABLES, ignored_columns

PIPELINE_HEADER = (
    "opportunity_id,sales_agent,product,account,deal_stage,engage_date,close_date,close_value"
)


@pytest.fixture(scope="module")
def synthetic() -> SourceData:
    return generate(600, seed=5)


@pytest.fixture
def folder(tmp_path: Path, synthetic: SourceData) -> Path:
    return write_csv_folder(synthetic.tables, tmp_path / "csv")


def parse_pipeline(text: str | bytes) -> pa.Table:
    data = text.encode() if isinstance(text, str) else text
    return parse_csv(data, SCHEMAS[SALES_PIPELINE], "sales_pipeline.csv")


def replace_in(folder: Path, name: str, data: bytes) -> None:
    (folder / f"{name}.csv").write_bytes(data)


def test_round_trip_through_csv_keeps_every_value(folder: Path, synthetic: SourceData) -> None:
    data = read_csv_folder(folder)
    for name in TABLES:
        assert data.tables[name].schema.equals(SCHEMAS[name]), name
        assert data.tables[name].equals(synthetic.tables[name]), name
    assert data.source == f"dir:{folder.resolve()}"
    assert data.ground_truth is None
    for name in TABLES:
        file = folder / f"{name}.csv"
        assert data.checksums[file.name] == hashlib.sha256(file.read_bytes()).hexdigest()


def test_real_style_csv_is_typed(tmp_path: Path) -> None:
    table = parse_pipeline(
        PIPELINE_HEADER + "\n"
        "1C1I7A6R,Moses Frase,GTX Plus Basic,Cancity,Won,2016-10-20,2017-03-01,1054\n"
        "Z063OYW0,Darcel Schlecht,GTXPro,Isdom,Won,2016-10-25,2017-03-11,4514.0\n"
        "HAXMC4IX,James Ascencio,MG Advanced,,Engaging,2016-10-25,,\n"
        "6KRS0QXN,Anna Snelling,GTX Basic,,Prospecting,,,\n"
    )
    assert table.schema.equals(SCHEMAS[SALES_PIPELINE])
    assert table["close_value"].to_pylist() == [1054, 4514, None, None]
    assert table["engage_date"].to_pylist()[:2] == [dt.date(2016, 10, 20), dt.date(2016, 10, 25)]
    assert table["account"].to_pylist()[2:] == [None, None]
    assert table["product"].to_pylist()[1] == "GTXPro"


def test_quirks_survive_reading(folder: Path) -> None:
    data = read_csv_folder(folder)
    assert "GTXPro" in data.tables[SALES_PIPELINE]["product"].to_pylist()
    assert "technolgy" in data.tables[ACCOUNTS]["sector"].to_pylist()
    assert "Philipines" in data.tables[ACCOUNTS]["office_location"].to_pylist()


def test_business_rule_violations_still_parse() -> None:
    table = parse_pipeline(
        PIPELINE_HEADER + "\n"
        "AAAAAAAA,Nobody,Unknown Product,Cancity,Maybe,2017-05-01,2017-04-01,-50\n"
        "AAAAAAAA,Nobody,Unknown Product,Cancity,Maybe,2017-05-01,2017-04-01,-50\n"
        "BBBBBBBB,Somebody,GTX Basic,Cancity,Won,2017-05-01,2017-06-01,0\n"
    )
    assert table.num_rows == 3
    assert table["close_value"].to_pylist() == [-50, -50, 0]
    assert table["deal_stage"].to_pylist()[0] == "Maybe"


def test_header_only_file_gives_an_empty_typed_table() -> None:
    table = parse_pipeline(PIPELINE_HEADER + "\n")
    assert table.num_rows == 0
    assert table.schema.equals(SCHEMAS[SALES_PIPELINE])


def test_byte_order_mark_crlf_and_dictionary_are_accepted(folder: Path) -> None:
    raw = (folder / "products.csv").read_bytes()
    replace_in(folder, PRODUCTS, b"\xef\xbb\xbf" + raw.replace(b"\n", b"\r\n"))
    (folder / "data_dictionary.csv").write_text("Table,Field,Description\nx;y;z\n")
    table = read_csv_folder(folder).tables[PRODUCTS]
    assert table.num_rows == 7
    assert table.column("product")[0].as_py() == "GTX Basic"


def test_extra_columns_are_not_landed_but_recorded_for_validation() -> None:
    table = parse_csv(
        b"product,series,sales_price,notes\nGTX Basic,GTX,550,hello\n",
        SCHEMAS[PRODUCTS],
        "products.csv",
    )
    assert table.to_pylist() == [{"product": "GTX Basic", "series": "GTX", "sales_price": 550}]
    assert ignored_columns(table) == ["notes"]
    assert table.schema.equals(SCHEMAS[PRODUCTS])  # metadata aside, the landing schema


# --- issue 12, defect 7: inputs that ended in a traceback (retried by Prefect) -----------------
ROW = "AAAAAAAA,Moses Frase,GTX Basic,Cancity,Won,2016-10-20,2017-03-01,{value}"


@pytest.mark.parametrize(("value", "parsed"), [("+5", 5), ("+5.0", 5), (" +7 ", 7), ("-0", 0)])
def test_a_plus_sign_is_a_number(value: str, parsed: int) -> None:
    table = parse_pipeline(f"{PIPELINE_HEADER}\n{ROW.format(value=value)}\n")
    assert table["close_value"].to_pylist() == [parsed]


def test_a_plus_sign_on_a_float() -> None:
    data = (
        b"account,sector,year_established,revenue,employees,office_location,subsidiary_of\n"
        b"Acme,retail,1990,+12.5,+100,United States,\n"
    )
    table = parse_csv(data, SCHEMAS[ACCOUNTS], "accounts.csv")
    assert table["revenue"].to_pylist() == [12.5] and table["employees"].to_pylist() == [100]


@pytest.mark.parametrize("value", ["9223372036854775808", "-9223372036854775809", "1" + "0" * 30])
def test_a_whole_number_beyond_64_bits_names_line_column_and_value(value: str) -> None:
    rows = [ROW.format(value=1), ROW.format(value=value).replace("AAAAAAAA", "BBBBBBBB")]
    with pytest.raises(SourceError) as info:
        parse_pipeline("\n".join([PIPELINE_HEADER, *rows]) + "\n")
    message = str(info.value)
    assert message.startswith("sales_pipeline.csv line 3 (data row 2, opportunity_id='BBBBBBBB')")
    assert f"close_value has '{value}'" in message and "9223372036854775807" in message


def test_the_largest_64_bit_numbers_still_parse() -> None:
    rows = [ROW.format(value=2**63 - 1), ROW.format(value=-(2**63)).replace("AAAA", "BBBB")]
    table = parse_pipeline("\n".join([PIPELINE_HEADER, *rows]) + "\n")
    assert table["close_value"].to_pylist() == [2**63 - 1, -(2**63)]


@pytest.mark.parametrize("newline", ["\r", "\r\n", "\n"])
def test_any_line_ending_parses_the_same(newline: str) -> None:
    rows = [PIPELINE_HEADER, ROW.format(value=1), ROW.format(value=2).replace("AAAA", "BBBB")]
    table = parse_pipeline(newline.join(rows) + newline)
    assert table["close_value"].to_pylist() == [1, 2]


def test_old_mac_line_endings_name_the_right_line_on_an_error() -> None:
    rows = [PIPELINE_HEADER, ROW.format(value=1), ROW.format(value="x").replace("AAAA", "BBBB")]
    with pytest.raises(SourceError, match="line 3 .*close_value has 'x'"):
        parse_pipeline("\r".join(rows) + "\r")


def test_a_duplicated_header_column_is_refused() -> None:
    header = PIPELINE_HEADER.replace("close_value", "close_value,close_value")
    with pytest.raises(SourceError) as info:
        parse_pipeline(f"{header}\n{ROW.format(value=1)},2\n")
    assert str(info.value).startswith(
        "sales_pipeline.csv line 1: column 'close_value' appears twice in the header "
        "(fields 8 and 9)"
    )


def test_a_quote_never_closed_at_the_end_of_the_file_is_refused() -> None:
    """pyarrow swallows the rest of the file into one value when the quote opens on the last
    row(s): nothing would be reported and the rows after it would silently vanish."""
    data = "\n".join(
        [
            "product,series,sales_price",
            "GTX Basic,GTX,550",
            'GTX Pro,"GTX,4821',
        ]
    )
    with pytest.raises(SourceError, match="products.csv line 3, column series: .*never closed"):
        parse_csv(data.encode(), SCHEMAS[PRODUCTS], "products.csv")
    data2 = 'product,series,sales_price\nGTX Pro,GTX,"4821\nMG,MG,55\n'
    with pytest.raises(SourceError, match="line 2, column sales_price: .*never closed"):
        parse_csv(data2.encode(), SCHEMAS[PRODUCTS], "products.csv")


def test_a_nul_byte_names_line_and_column() -> None:
    data = b"product,series,sales_price\nGTX Basic,GTX,550\nGTX Pro,G\x00TX,4821\n"
    with pytest.raises(SourceError, match=r"products.csv line 3, column series: a NUL byte"):
        parse_csv(data, SCHEMAS[PRODUCTS], "products.csv")


def test_non_utf8_names_the_column_too() -> None:
    data = (PIPELINE_HEADER + "\nAAAAAAAA,Jos").encode() + b"\xe9" + b",GTX Basic,,Engaging,,,\n"
    with pytest.raises(SourceError, match="line 2, column sales_agent"):
        parse_pipeline(data)


def test_infinity_parses_and_is_left_to_the_contracts() -> None:
    data = (
        b"account,sector,year_established,revenue,employees,office_location,subsidiary_of\n"
        b"Acme,retail,1990,1e999,100,United States,\n"
    )
    assert parse_csv(data, SCHEMAS[ACCOUNTS], "accounts.csv")["revenue"].to_pylist() == [
        float("inf")
    ]


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="is not a folder"):
        read_csv_folder(tmp_path / "nowhere")


def test_missing_file_is_named(folder: Path) -> None:
    (folder / "sales_teams.csv").unlink()
    with pytest.raises(SourceError, match=r"sales_teams\.csv is missing") as info:
        read_csv_folder(folder)
    assert "accounts.csv" in str(info.value)  # lists what was found


def test_empty_file(folder: Path) -> None:
    replace_in(folder, PRODUCTS, b"")
    with pytest.raises(SourceError, match=r"products\.csv is empty \(0 bytes\)"):
        read_csv_folder(folder)


def test_missing_column() -> None:
    with pytest.raises(SourceError, match="lacks column.*close_value") as info:
        parse_pipeline(PIPELINE_HEADER.replace(",close_value", "") + "\n")
    assert "right file" in str(info.value)


@pytest.mark.parametrize(("delimiter", "shown"), [(";", "`;`"), ("\t", "`\\t`"), ("|", "`|`")])
def test_wrong_delimiter_is_detected(delimiter: str, shown: str) -> None:
    text = (
        PIPELINE_HEADER + "\n1C1I7A6R,Moses Frase,GTX Basic,Cancity,Won,2016-10-20,2017-03-01,5\n"
    )
    with pytest.raises(SourceError, match="looks .*-delimited") as info:
        parse_pipeline(text.replace(",", delimiter))
    assert shown in str(info.value)
    assert "comma-separated" in str(info.value)


def test_non_utf8_bytes_name_line_and_offset() -> None:
    data = (PIPELINE_HEADER + "\nAAAAAAAA,Jos").encode() + b"\xe9" + b",GTX Basic,,Engaging,,,\n"
    offset = data.index(b"\xe9")
    with pytest.raises(SourceError, match="not UTF-8") as info:
        parse_pipeline(data)
    assert f"byte offset {offset}" in str(info.value)
    assert "line 2" in str(info.value)
    assert "0xe9" in str(info.value)


def test_truncated_file_names_the_line(folder: Path) -> None:
    raw = (folder / "sales_pipeline.csv").read_bytes()
    replace_in(folder, SALES_PIPELINE, raw[: raw.rstrip(b"\n").rfind(b",") - 12])
    lines = (folder / "sales_pipeline.csv").read_bytes().count(b"\n") + 1
    with pytest.raises(SourceError, match="truncated") as info:
        read_csv_folder(folder)
    assert f"line {lines}" in str(info.value)
    assert "expected 8" in str(info.value)


def test_unparseable_date_names_column_row_and_value() -> None:
    text = (
        PIPELINE_HEADER + "\n"
        "AAAAAAAA,Moses Frase,GTX Basic,Cancity,Won,2016-10-20,2017-03-01,5\n"
        "BBBBBBBB,Moses Frase,GTX Basic,Cancity,Won,2016-10-20,03/05/2017,5\n"
    )
    with pytest.raises(SourceError) as info:
        parse_pipeline(text)
    message = str(info.value)
    assert "close_date" in message and "'03/05/2017'" in message
    assert "line 3" in message and "BBBBBBBB" in message
    assert "YYYY-MM-DD" in message


def test_impossible_calendar_date_is_rejected() -> None:
    text = PIPELINE_HEADER + "\nAAAAAAAA,Moses Frase,GTX Basic,,Engaging,2017-02-30,,\n"
    with pytest.raises(SourceError, match="engage_date has '2017-02-30'.*real calendar date"):
        parse_pipeline(text)


@pytest.mark.parametrize(("value", "kind"), [("12abc", "whole number"), ("10.5", "whole number")])
def test_non_numeric_value_names_column_row_and_value(value: str, kind: str) -> None:
    row = f"AAAAAAAA,Moses Frase,GTX Basic,Cancity,Won,2016-10-20,2017-03-01,{value}"
    text = f"{PIPELINE_HEADER}\n{row}\n"
    with pytest.raises(SourceError, match=f"close_value has '{value}'.*{kind}") as info:
        parse_pipeline(text)
    assert "line 2" in str(info.value)


def test_non_numeric_float_column() -> None:
    data = (
        b"account,sector,year_established,revenue,employees,office_location,subsidiary_of\n"
        b"Acme,retail,1990,12.5,100,United States,\n"
        b"Betatech,retail,1990,lots,100,United States,\n"
    )
    with pytest.raises(SourceError, match="line 3 .*revenue has 'lots'.*not a number"):
        parse_csv(data, SCHEMAS[ACCOUNTS], "accounts.csv")


def test_load_source_specs(folder: Path) -> None:
    synthetic = load_source("synthetic", opportunities=300, seed=1)
    assert synthetic.tables[SALES_PIPELINE].num_rows == 300
    assert synthetic.ground_truth is not None
    assert load_source("synthetic", opportunities=None, seed=1).tables[SALES_PIPELINE].num_rows == (
        8800
    )
    from_dir = load_source(f"dir:{folder}", opportunities=None, seed=1)
    assert from_dir.source == f"dir:{folder.resolve()}"


def test_load_source_unknown_spec_lists_valid_ones() -> None:
    with pytest.raises(SourceError, match="Unknown source 's3://x'") as info:
        load_source("s3://x", opportunities=None, seed=1)
    for valid in ("synthetic", "kaggle", "dir:PATH"):
        assert valid in str(info.value)


def test_load_source_rejects_opportunities_for_real_data(folder: Path) -> None:
    with pytest.raises(SourceError, match="only applies to `--source synthetic`"):
        load_source(f"dir:{folder}", opportunities=100, seed=1)
