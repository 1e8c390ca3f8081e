"""The Kaggle CSV files, read into (and written from) the typed tables.

Only *parsing* problems are errors here (missing file, wrong delimiter, bad bytes, a duplicated
column, an unclosed quote, a value that is not a date or a number, or a whole number too large
for 64 bits); business rules are validation's job. Every error is one line that names the file,
the line and the column, and says what to do. Line endings may be LF, CRLF or old Mac CR; a sign
`+` is accepted on numbers. Columns beyond the schema are not landed: their names travel in the
table's schema metadata (`ingestion.tables.IGNORED_COLUMNS`) and validation reports them.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ingestion.errors import SourceError
from ingestion.source_data import SourceData
from ingestion.tables import CSV_FILES, IGNORED_COLUMNS, SCHEMAS, TABLES

OTHER_DELIMITERS = {";": "semicolon", "\t": "tab", "|": "pipe"}
UTF8_BOM = b"\xef\xbb\xbf"

INT_PATTERN = r"^\s*[+-]?\d+(\.0*)?\s*$"
FLOAT_PATTERN = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"
DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
INT64_RANGE = (-(2**63), 2**63 - 1)
LINE_BREAK = re.compile(rb"\r\n|\r|\n")
NUL = b"\x00"


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
    header = _check_header(data, schema, file)
    _check_nul(data, header, file)
    table = _read_strings(data, schema, header, file)
    typed = pa.Table.from_arrays(
        [_convert(table[f.name], f, file, table) for f in schema], schema=schema
    )
    extra = [name for name in header if name not in schema.names]
    if extra:
        typed = typed.replace_schema_metadata({IGNORED_COLUMNS: json.dumps(extra).encode()})
    return typed


def write_csv_folder(tables: dict[str, pa.Table], path: Path) -> Path:
    """Write the four tables as the Kaggle CSV files (dates ISO, nulls empty)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    options = pacsv.WriteOptions(quoting_style="needed")
    for name in TABLES:
        pacsv.write_csv(tables[name], path / CSV_FILES[name], write_options=options)
    return path


# --- parsing steps ----------------------------------------------------------------------------
def _line_of(data: bytes, offset: int) -> int:
    """1-based line of byte `offset`, whatever the line endings (LF, CRLF, CR)."""
    return len(LINE_BREAK.findall(data, 0, offset)) + 1


def _column_at(data: bytes, offset: int, header: list[str]) -> str:
    """Header name of the field byte `offset` is in (counting the commas before it on its line)."""
    start = max(data.rfind(b"\n", 0, offset), data.rfind(b"\r", 0, offset)) + 1
    prefix = data[start:offset].decode("utf-8", errors="replace")
    index = len(next(csv.reader([prefix]), [""])) - 1 if prefix else 0
    return header[index] if 0 <= index < len(header) else f"field {index + 1}"


def _check_utf8(data: bytes, file: str) -> None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = _line_of(data, exc.start)
        first = LINE_BREAK.split(data[: exc.start], maxsplit=1)[0] if line > 1 else b""
        names = next(csv.reader([first.decode("utf-8", errors="replace")]), []) if first else []
        column = f", column {_column_at(data, exc.start, names)}" if names else ""
        raise SourceError(
            f"{file} is not UTF-8: byte 0x{data[exc.start]:02x} at byte offset {exc.start} "
            f"(line {line}{column}). Re-save it as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)."
        ) from None


def _check_nul(data: bytes, header: list[str], file: str) -> None:
    offset = data.find(NUL)
    if offset >= 0:
        raise SourceError(
            f"{file} line {_line_of(data, offset)}, column {_column_at(data, offset, header)}: "
            f"a NUL byte (byte offset {offset}, {data.count(NUL)} in the file). This is not "
            "a text CSV (a binary or a UTF-16 file?): export it again as UTF-8 CSV."
        )


def _check_header(data: bytes, schema: pa.Schema, file: str) -> list[str]:
    """The header's column names; a `SourceError` if contract columns are absent or repeated."""
    first = LINE_BREAK.split(data, maxsplit=1)[0].decode("utf-8")
    names = next(csv.reader([first]), [])
    seen: dict[str, int] = {}
    for position, name in enumerate(names, start=1):
        if name and name in seen:
            raise SourceError(
                f"{file} line 1: column {name!r} appears twice in the header (fields "
                f"{seen[name]} and {position}); which copy holds the data cannot be told. Remove "
                "or rename one of them."
            )
        seen[name] = position
    missing = [n for n in schema.names if n not in names]
    if not missing:
        return names
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


def _read_strings(data: bytes, schema: pa.Schema, header: list[str], file: str) -> pa.Table:
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
        # A quote never closed swallows the delimiters (and line breaks) after it.
        if row.text.count('"') % 2 or "\n" in row.text or "\r" in row.text:
            field = max(row.actual_columns - 1, 0)
            column = header[field] if field < len(header) else f"field {field + 1}"
            raise SourceError(
                f'{file} {where}, column {column}: a quote `"` opened in this field is never '
                f"closed, so the lines after it ran into one value ({row.text[:80]!r}). Fix the "
                'quoting (a quote inside a quoted value is written `""`) and export it again.'
            )
        raise SourceError(
            f"{file} {where} has {row.actual_columns} field(s), expected {row.expected_columns}: "
            f"{row.text[:120]!r}. The file looks truncated or has a stray delimiter "
            f"({len(bad_rows)} such row(s)); download or export it again."
        )
    _check_single_line_values(table, file)
    return table


def _check_single_line_values(table: pa.Table, file: str) -> None:
    """No value spans lines: the parser only lets one through when a quote is never closed,
    and then it swallows the rest of the file into that one value."""
    for name in table.column_names:
        column = table[name]
        spans = pc.fill_null(pc.match_substring_regex(column, r"[\r\n]"), False)
        if not pc.any(spans).as_py():
            continue
        row = pc.index(spans, True).as_py()
        value = str(column[row].as_py())
        raise SourceError(
            f"{file} line {row + 2}, column {name}: the value starting {value[:40]!r} runs over "
            f'{value.count(chr(10)) + 1} lines, so a quote `"` is probably never closed. Fix '
            'the quoting (a quote inside a quoted value is written `""`) and export it again.'
        )


def _convert(column: pa.ChunkedArray, field: pa.Field, file: str, table: pa.Table) -> pa.Array:
    column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if pa.types.is_string(field.type):
        return column
    if pa.types.is_integer(field.type):
        _reject(column, INT_PATTERN, field, file, table, "a whole number")
        trimmed = pc.replace_substring_regex(pc.utf8_trim_whitespace(column), r"\.0*$", "")
        trimmed = pc.replace_substring_regex(trimmed, r"^\+", "")
        try:
            return pc.cast(trimmed, field.type)
        except pa.ArrowInvalid as exc:  # a whole number beyond 64 bits: find it, name it
            too_big = [v is not None and not _fits_int64(v) for v in trimmed.to_pylist()]
            low, high = INT64_RANGE
            _reject_where(
                pa.array(too_big), column, field, file, table, f"a whole number in {low}..{high}"
            )
            raise SourceError(
                f"{file}: column {field.name} could not be read as whole numbers ({exc}). Check "
                "its values."
            ) from None
    if pa.types.is_floating(field.type):
        _reject(column, FLOAT_PATTERN, field, file, table, "a number")
        unsigned = pc.replace_substring_regex(pc.utf8_trim_whitespace(column), r"^\+", "")
        return pc.cast(unsigned, field.type)
    if pa.types.is_date(field.type):
        _reject(column, DATE_PATTERN, field, file, table, "a date YYYY-MM-DD")
        parsed = pc.strptime(column, format="%Y-%m-%d", unit="s", error_is_null=True)
        # strptime rolls 2017-02-30 over to March: a real date must format back to itself.
        same = pc.equal(pc.strftime(parsed, format="%Y-%m-%d"), column)
        invalid = pc.and_(column.is_valid(), pc.invert(pc.fill_null(same, False)))
        _reject_where(invalid, column, field, file, table, "a real calendar date")
        return pc.cast(parsed, field.type)
    raise SourceError(f"{file}: no CSV conversion for {field.name} of type {field.type}.")


def _fits_int64(text: str) -> bool:
    low, high = INT64_RANGE
    return low <= int(text) <= high


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
