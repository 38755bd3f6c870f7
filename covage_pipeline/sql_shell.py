"""`covage sql`'s interactive shell on the analysts' copy of the marts.

Why not the `duckdb` command-line shell: the duckdb Python package does not ship it, and a user
of `make demo` has only the Python environment. Line editing and history come from the standard
library's readline, as in Python's own prompt; the dot-commands are the few a SQL shell user
reaches for first, named as in the duckdb and sqlite3 shells.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

MODES = ("box", "csv", "line", "json")
HELP = """\
Statements end with `;` and may span lines; the arrow keys edit the line and recall history.
  .tables            the marts
  .schema [TABLE]    the columns of a mart (of every mart without TABLE)
  .mode MODE         how rows print: box (default), csv, line (one value a line), json
  .help              this help
  .quit              leave (or Ctrl-D); Ctrl-C drops the statement being typed"""


class SqlShell:
    def __init__(self, con: duckdb.DuckDBPyConnection, max_rows: int = 50, history: Path | None = None) -> None:
        self.con = con
        self.max_rows = max_rows
        self.mode = "box"
        self.history = history

    def run(self, statement: str, params: list | None = None) -> bool:
        """Runs one statement and prints its rows; False (and the reason printed) if it failed."""
        try:
            relation = self.con.sql(statement, params=params) if params else self.con.sql(statement)
        except duckdb.Error as exc:
            print(f"Error: {exc}")
            return False
        if relation is not None:
            self._print(relation.limit(self.max_rows) if self.max_rows else relation)
        return True

    def _print(self, relation: duckdb.DuckDBPyRelation) -> None:
        if self.mode == "box":
            print(relation)
            return
        df = relation.df()
        if self.mode == "csv":
            print(df.to_csv(index=False), end="")
        elif self.mode == "json":
            print(df.to_json(orient="records", lines=True, date_format="iso"), end="\n" if len(df) else "")
        else:  # line
            width = max((len(c) for c in df.columns), default=0)
            for row in df.itertuples(index=False):
                print("\n".join(f"{c:>{width}} = {v}" for c, v in zip(df.columns, row, strict=True)), end="\n\n")

    def command(self, line: str) -> bool:
        """A dot-command; False when it asks to leave."""
        name, _, arg = line.strip().partition(" ")
        arg = arg.strip().rstrip(";")
        if name in (".quit", ".exit", ".q"):
            return False
        if name == ".tables":
            self.run("select table_name from information_schema.tables where table_schema = 'marts' order by 1")
        elif name == ".schema":
            self._schema(arg)
        elif name == ".mode":
            if arg in MODES:
                self.mode = arg
            else:
                print(f"Modes: {', '.join(MODES)} (now {self.mode}).")
        elif name == ".help":
            print(HELP)
        else:
            print(f"Unknown command {name}: .help lists them.")
        return True

    def _schema(self, table: str) -> None:
        sql = (
            "select table_name, column_name, data_type from information_schema.columns "
            "where table_schema = 'marts' and (? = '' or table_name = ?) order by table_name, ordinal_position"
        )
        known = self.con.execute(sql, [table, table]).fetchall()
        if not known:
            print(f"No mart named {table}: .tables lists them.")
            return
        mode, max_rows = self.mode, self.max_rows
        self.mode, self.max_rows = "box", 0
        try:
            self.run(sql, [table, table])
        finally:
            self.mode, self.max_rows = mode, max_rows

    def loop(self) -> None:
        readline = _readline(self.history)
        buffer: list[str] = []
        try:
            while True:
                try:
                    line = input("covage> " if not buffer else "   ...> ")
                except EOFError:
                    print()
                    break
                except KeyboardInterrupt:
                    print()
                    buffer = []
                    continue
                if not buffer and line.strip().startswith("."):
                    if not self.command(line):
                        break
                    continue
                if not buffer and not line.strip():
                    continue
                buffer.append(line)
                if line.rstrip().endswith(";"):
                    self.run("\n".join(buffer))
                    buffer = []
        finally:
            if readline is not None and self.history is not None:
                readline.write_history_file(self.history)


def _readline(history: Path | None):
    """Line editing and history for input(), where the platform has readline."""
    try:
        import readline
    except ImportError:  # Windows without pyreadline: input() still works, without editing
        return None
    readline.set_history_length(1000)
    if history is not None and history.exists():
        readline.read_history_file(history)
    return readline
