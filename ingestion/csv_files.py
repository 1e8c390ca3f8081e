"""The Kaggle CSV files, read into (and written from) the typed tables.

Only *parsing* problems are errors here (missing file, wrong delimiter, bad bytes, a value that
is not a date or a number); business rules are validation's job. Every error names the file, the
line and the column, and says what to do.
"""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ingestion.errors import SourceError
from ingestion.source_data import SourceData
from ingestion.tables import CSV_FILES, SCHEMAS, TABLES

OTHER_DELIMITERS = {";": "semicolon", "\t": "tab", "|": "pipe"}
UTF8_BOM = b"\xef\xbb\xbf"

INT_PATTERN = r"^\s*[+-]?\d+(\.0*)?\s*$"
FLOAT_PATTERN = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"
DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"


# --- CSV folders --------------------------------------------------------------------------------
def check_csv_folder(path: Path) -> Path:
    """`path` resolved, if it is a folder; a `SourceError` saying what to pass otherwise."""
    path = Path(path).resolve()
    if not path.is_dir():
        raise SourceError(
            f"{path} is not a folder: pass `--source dir:PATH` with the folder that holds "
            f"{', '.join(CSV_FILES.values())}."
        )
    return path


def read_csv_folder(path: Path) -> SourceData:
    """The four tables from a folder of the Kaggle CSV files (`data_dictionary.csv` is ignored)."""
    path = check_csv_folder(path)
    tables: dict[str, pa.Table] = {}
    checksums: dict[str, str] = {}
    for name in TABLES:
        file = path / CSV_FILES[name]
        if not file.is_file():
            found = sorted(p.name for p in path.glob("*.csv")) or ["no CSV files"]
            raise SourceError(
                f"{file} is missing (found: {', '.join(found)}). The folder needs "
                f"{', '.join(CSV_FILES.values())}, as in the Kaggle dataset."
            )
        data = file.read_bytes()
        checksums[file.name] = hashlib.sha256(data).hexdigest()
        tables[name] = parse_csv(data, SCHEMAS[name], file.name)
    return SourceData(tables=tables, source=f"dir:{path}", checksums=checksums)


def parse_csv(data: bytes, schema: pa.Schema, file: str) -> pa.Table:
    """CSV bytes -> a table of exactly `schema`; any parsing problem is a `SourceError`."""
    if not data:
        raise SourceError(
            f"{file} is empty (0 bytes): download or export it again; it needs at least the "
            f"header line {','.join(schema.names)}."
        )
    if data.startswith(UTF8_BOM):
        data = data[len(UTF8_BOM) :]
    _check_utf8(data, file)
    _check_header(data, schema, file)
    table = _read_strings(data, schema, file)
    return pa.Table.from_arrays(
        [_convert(table[f.name], f, file, table) for f in schema], schema=schema
    )


def write_csv_folder(tables: dict[str, pa.Table], path: Path) -> Path:
    """Write the four tables as the Kaggle CSV files (dates ISO, nulls empty)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    options = pacsv.WriteOptions(quoting_style="needed")
    for name in TABLES:
        pacsv.write_csv(tables[name], path / CSV_FILES[name], write_options=options)
    return path


# --- parsing steps ----------------------------------------------------------------------------
def _check_utf8(data: bytes, file: str) -> None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise SourceError(
            f"{file} is not UTF-8: byte 0x{data[exc.start]:02x} at byte offset {exc.start} "
            f"(line {line}). Re-save it as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)."
        ) from None


def _check_header(data: bytes, schema: pa.Schema, file: str) -> None:
    first = data.split(b"\n", 1)[0].decode("utf-8").rstrip("\r")
    names = next(csv.reader([first]), [])
    missing = [n for n in schema.names if n not in names]
    if not missing:
        return
    for delimiter, label in OTHER_DELIMITERS.items():
        other = next(csv.reader([first], delimiter=delimiter), [])
        if delimiter in first and set(schema.names) <= set(other):
            shown = "\\t" if delimiter == "\t" else delimiter
            raise SourceError(
                f"{file} looks `{shown}`-delimited ({label}); expected commas. "
                "Re-export it as comma-separated CSV."
            )
    raise SourceError(
        f"{file} lacks column(s) {', '.join(missing)}; its header is {first[:200]!r}. "
        f"Expected the columns {', '.join(schema.names)}: is this the right file?"
    )


def _read_strings(data: bytes, schema: pa.Schema, file: str) -> pa.Table:
    bad_rows: list[pacsv.InvalidRow] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        bad_rows.append(row)
        return "skip"

    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(use_threads=False),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in schema.names},
                include_columns=schema.names,
                strings_can_be_null=True,
                null_values=[""],
                quoted_strings_can_be_null=True,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowException) as exc:
        raise SourceError(f"{file} could not be parsed as CSV: {exc}. Check its format.") from None
    if bad_rows:
        row = bad_rows[0]
        where = f"line {row.number}" if row.number is not None else "a row"
        raise SourceError(
            f"{file} {where} has {row.actual_columns} field(s), expected {row.expected_columns}: "
            f"{row.text[:120]!r}. The file looks truncated or has a stray delimiter "
            f"({len(bad_rows)} such row(s)); download or export it again."
        )
    return table


def _convert(column: pa.ChunkedArray, field: pa.Field, file: str, table: pa.Table) -> pa.Array:
    column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if pa.types.is_string(field.type):
        return column
    if pa.types.is_integer(field.type):
        _reject(column, INT_PATTERN, field, file, table, "a whole number")
        trimmed = pc.replace_substring_regex(pc.utf8_trim_whitespace(column), r"\.0*$", "")
        return pc.cast(trimmed, field.type)
    if pa.types.is_floating(field.type):
        _reject(column, FLOAT_PATTERN, field, file, table, "a number")
        return pc.cast(pc.utf8_trim_whitespace(column), field.type)
    if pa.types.is_date(field.type):
        _reject(column, DATE_PATTERN, field, file, table, "a date YYYY-MM-DD")
        parsed = pc.strptime(column, format="%Y-%m-%d", unit="s", error_is_null=True)
        # strptime rolls 2017-02-30 over to March: a real date must format back to itself.
        same = pc.equal(pc.strftime(parsed, format="%Y-%m-%d"), column)
        invalid = pc.and_(column.is_valid(), pc.invert(pc.fill_null(same, False)))
        _reject_where(invalid, column, field, file, table, "a real calendar date")
        return pc.cast(parsed, field.type)
    raise SourceError(f"{file}: no CSV conversion for {field.name} of type {field.type}.")


def _reject(
    column: pa.Array, pattern: str, field: pa.Field, file: str, table: pa.Table, kind: str
) -> None:
    ok = pc.match_substring_regex(column, pattern)
    _reject_where(pc.and_(column.is_valid(), pc.invert(ok)), column, field, file, table, kind)


def _reject_where(
    bad: pa.Array, column: pa.Array, field: pa.Field, file: str, table: pa.Table, kind: str
) -> None:
    bad = pc.fill_null(bad, False)
    count = pc.sum(bad).as_py() or 0
    if not count:
        return
    row = pc.index(bad, True).as_py()
    key = table.column_names[0]
    first_value = table[key][row].as_py()
    raise SourceError(
        f"{file} line {row + 2} (data row {row + 1}, {key}={first_value!r}): column "
        f"{field.name} has {column[row].as_py()!r}, which is not {kind} ({count} such value(s) "
        f"in the column). Fix the value, or leave it empty for a missing {field.name}."
    )
