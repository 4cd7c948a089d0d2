#!/usr/bin/env python3
"""W3's grep gate: no SQL is assembled with printf-family calls on user data.

Every value that comes from a device, a REST client or a file reaches the database as a bound
parameter. A printf-family call whose format string is SQL and which formats a string (%s, %.*s,
%c) must say on the line before the call, in a comment starting "sql-gate:", where those
strings come from (table or column names from a fixed table in the code, never input). Numeric
conversions (%d, %lld, %g...) cannot inject and pass without a comment. The gate fails on any
unannotated call and on any annotation left without a call, so the list stays true.

Usage: sql_gate.py SRC_DIR
"""
import re
import sys
from pathlib import Path

PRINTF = re.compile(r"\b(v?s?n?printf|v?asprintf|sqlite3_v?mprintf|sqlite3_snprintf|dprintf)\s*\(")
SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|COPY|DECLARE|PRAGMA|"
                 r"TRUNCATE|VACUUM|ATTACH|REPLACE INTO|VALUES|FROM|WHERE)\b")
STRING_CONV = re.compile(r"%[-+ #0]*(\d+|\*)?(\.(\d+|\*))?(s|c)")
LITERAL = re.compile(r'"((?:[^"\\]|\\.)*)"')
MARK = "sql-gate:"


def call_text(src, start):
    """The text of the call that opens at src[start] ('('), up to its closing parenthesis."""
    depth, i, in_str = 0, start, False
    while i < len(src):
        ch = src[i]
        if in_str:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return src[start:i + 1]
        i += 1
    return src[start:]


def check_text(path, src):
    lines = src.split("\n")
    problems, used_marks = [], set()
    for m in PRINTF.finditer(src):
        call = call_text(src, m.end() - 1)
        fmt = "".join(LITERAL.findall(call))
        if not SQL.search(fmt) or not STRING_CONV.search(fmt):
            continue
        line = src.count("\n", 0, m.start())  # 0-based
        above = [line - 1, line - 2, line - 3]
        mark = next((n for n in above if n >= 0 and MARK in lines[n]), None)
        if mark is None:
            problems.append(f"{path}:{line + 1}: SQL formatted with a string conversion and no "
                            f"'{MARK}' comment saying where the strings come from")
        else:
            used_marks.add(mark)
    for n, text in enumerate(lines):
        if MARK in text and n not in used_marks:
            problems.append(f"{path}:{n + 1}: '{MARK}' comment with no SQL printf call below it")
    return problems, len(used_marks)


# The gate checks itself first: a gate that finds nothing because its patterns broke would
# pass forever.
SELF_TEST = r'''
    snprintf(sql, sizeof sql, "SELECT v FROM kv WHERE key = '%s'", key);
    /* sql-gate: fixed names. */
    snprintf(sql, sizeof sql,
             "DELETE FROM %s", table);
    snprintf(sql, sizeof sql, "SELECT v FROM kv WHERE id = %lld", id);
    /* sql-gate: a stale note. */
'''


def self_test():
    problems, annotated = check_text("self-test", SELF_TEST)
    return annotated == 1 and len(problems) == 2 and ":2:" in problems[0] and ":7:" in problems[1]


def main():
    if not self_test():
        print("sql_gate: the self-test did not find its two planted problems")
        return 2
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "src")
    problems, annotated, files = [], 0, 0
    for path in sorted(root.rglob("*.c")):
        p, n = check_text(path, path.read_text(errors="replace"))
        problems += p
        annotated += n
        files += 1
    for p in problems:
        print(p)
    print(f"sql_gate: {files} files, {annotated} annotated SQL printf calls, "
          f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
