"""Check the vCard / iCalendar corpus in this folder.

    .venv/bin/python tests/corpus/check_corpus.py

Valid files (vcard/, ical/) must pass a strict structural reader written here *and*
the libraries (vobject for vCard 3.0/4.0, icalendar for .ics, with a to_ical() round trip).
Every file in bad/ must be rejected by the strict reader and listed in bad/EXPECTED.txt.
Exits 1 if anything is wrong.
"""

from __future__ import annotations

import base64
import binascii
import quopri
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
BOM = b"\xef\xbb\xbf"
NAME_RE = re.compile(r"(?:([A-Za-z0-9-]+)\.)?([A-Za-z0-9-]+)")
PNAME_RE = re.compile(r"[A-Za-z0-9-]+")
DATE_RE = re.compile(r"\d{8}")
DATETIME_RE = re.compile(r"\d{8}T\d{6}Z?")
DURATION_RE = re.compile(r"[+-]?P(\d+W|(\d+D)?(T(\d+H)?(\d+M)?(\d+S)?)?)")
FREQS = {"SECONDLY", "MINUTELY", "HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY"}
RRULE_PARTS = {"FREQ", "UNTIL", "COUNT", "INTERVAL", "BYSECOND", "BYMINUTE", "BYHOUR", "BYDAY",
               "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO", "BYMONTH", "BYSETPOS", "WKST"}
DATE_PROPS = {"DTSTART", "DTEND", "DUE", "RECURRENCE-ID", "EXDATE", "RDATE", "COMPLETED",
              "CREATED", "LAST-MODIFIED", "DTSTAMP", "ACKNOWLEDGED"}
UTC_PROPS = {"COMPLETED", "CREATED", "LAST-MODIFIED", "DTSTAMP", "ACKNOWLEDGED"}
MAX_OCTETS = 75


@dataclass
class Prop:
    lineno: int
    group: str | None
    name: str
    params: dict[str, list[str]]
    value: str


@dataclass
class Comp:
    name: str
    props: list[Prop] = field(default_factory=list)
    subs: list[Comp] = field(default_factory=list)

    def all(self, name: str) -> list[Prop]:
        return [p for p in self.props if p.name == name]

    def first(self, name: str) -> Prop | None:
        found = self.all(name)
        return found[0] if found else None

    def walk(self) -> list[Comp]:
        out = [self]
        for s in self.subs:
            out += s.walk()
        return out


@dataclass
class Report:
    path: Path
    problems: list[str] = field(default_factory=list)
    info: dict[str, str] = field(default_factory=dict)
    tops: list[Comp] = field(default_factory=list)
    uids: set[str] = field(default_factory=set)


# ----------------------------------------------------------------------------- content lines
def parse_head(head: str, lineno: int, bare_params: bool) -> tuple[str | None, str, dict[str, list[str]], int]:
    """Parse 'group.NAME;p=v;...' up to the value colon. Returns (group, name, params, index of ':')."""
    m = NAME_RE.match(head)
    if not m:
        raise ValueError(f"line {lineno}: bad property name")
    group, name = m.group(1), m.group(2).upper()
    i = m.end()
    params: dict[str, list[str]] = {}
    while i < len(head) and head[i] == ";":
        pm = PNAME_RE.match(head, i + 1)
        if not pm:
            raise ValueError(f"line {lineno}: bad parameter")
        pname = pm.group(0).upper()
        i = pm.end()
        values: list[str] = []
        if i < len(head) and head[i] == "=":
            while True:
                i += 1
                if i < len(head) and head[i] == '"':
                    end = head.find('"', i + 1)
                    if end < 0:
                        raise ValueError(f"line {lineno}: unterminated quoted parameter")
                    values.append(head[i + 1 : end])
                    i = end + 1
                else:
                    vm = re.compile(r'[^";:,]*').match(head, i)
                    assert vm
                    values.append(vm.group(0))
                    i = vm.end()
                if i < len(head) and head[i] == ",":
                    continue
                break
        elif bare_params:
            values, pname = [pname], "TYPE" if pname not in ("QUOTED-PRINTABLE", "BASE64", "8BIT", "7BIT") else "ENCODING"
        else:
            raise ValueError(f"line {lineno}: parameter {pname} has no value")
        params.setdefault(pname, []).extend(values)
    if i >= len(head) or head[i] != ":":
        raise ValueError(f"line {lineno} has no colon" if ":" not in head else f"line {lineno}: junk before ':'")
    return group, name, params, i


def physical_lines(raw: bytes) -> tuple[list[bytes], str]:
    crlf = raw.count(b"\r\n")
    lf = raw.count(b"\n") - crlf
    ending = "CRLF" if crlf and not lf else "LF" if lf and not crlf else "mixed" if lf else "none"
    lines = raw.replace(b"\r\n", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines, ending


def logical_text(lines: list[str], rep: Report) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for n, ln in enumerate(lines, 1):
        if ln[:1] in (" ", "\t"):
            if not out:
                rep.problems.append(f"line {n}: continuation line with nothing to continue")
                continue
            out[-1] = (out[-1][0], out[-1][1] + ln[1:])
        elif ln == "":
            rep.problems.append(f"line {n}: blank line")
        else:
            out.append((n, ln))
    return out


def props_21(lines: list[bytes], rep: Report) -> list[Prop]:
    """vCard 2.1: byte-level reader (QP soft line breaks, per-property CHARSET, BASE64 blocks)."""
    props: list[Prop] = []
    i = 0
    while i < len(lines):
        n, ln = i + 1, lines[i]
        i += 1
        if ln.strip() == b"":
            continue  # 2.1 allows the blank line after a BASE64 block
        if ln[:1] in (b" ", b"\t"):
            if not props:
                rep.problems.append(f"line {n}: continuation line with nothing to continue")
            else:
                # unfolding removes the line break and one white space; a BASE64 block's
                # indentation is not part of its payload either
                b64 = {v.upper() for v in props[-1].params.get("ENCODING", [])} & {"BASE64", "B"}
                props[-1].value += (ln.strip() if b64 else ln[1:]).decode("ascii", "replace")
            continue
        colon = ln.find(b":")
        if colon < 0:
            rep.problems.append(f"line {n} has no colon")
            continue
        try:
            head = ln[: colon + 1].decode("ascii")
            group, name, params, _ = parse_head(head, n, bare_params=True)
        except (UnicodeDecodeError, ValueError) as e:
            rep.problems.append(str(e))
            continue
        value = ln[colon + 1 :]
        enc = {v.upper() for v in params.get("ENCODING", [])}
        charset = (params.get("CHARSET") or ["utf-8"])[0]
        if "QUOTED-PRINTABLE" in enc:
            while value.endswith(b"=") and i < len(lines):
                value = value[:-1] + lines[i]
                i += 1
            value = quopri.decodestring(value)
        try:
            text = value.decode(charset)
        except (LookupError, UnicodeDecodeError) as e:
            rep.problems.append(f"line {n}: {name} value does not decode as {charset}: {e}")
            text = value.decode("latin-1")
        props.append(Prop(n, group, name, params, text))
    for p in props:
        if {v.upper() for v in p.params.get("ENCODING", [])} & {"BASE64", "B"}:
            try:
                base64.b64decode(p.value, validate=True)
            except binascii.Error as e:
                rep.problems.append(f"line {p.lineno}: {p.name} BASE64 payload is invalid: {e}")
    return props


def build(props: list[Prop], rep: Report) -> list[Comp]:
    tops: list[Comp] = []
    stack: list[Comp] = []
    for p in props:
        if p.name == "BEGIN":
            c = Comp(p.value.strip().upper())
            (stack[-1].subs if stack else tops).append(c)
            stack.append(c)
        elif p.name == "END":
            want = p.value.strip().upper()
            if not stack:
                rep.problems.append(f"line {p.lineno}: END:{want} without BEGIN")
            elif stack[-1].name != want:
                rep.problems.append(f"line {p.lineno}: BEGIN:{stack[-1].name} closed by END:{want}")
                stack.pop()
            else:
                stack.pop()
        elif not stack:
            rep.problems.append(f"line {p.lineno}: {p.name} outside any BEGIN/END")
        else:
            stack[-1].props.append(p)
    for c in stack:
        rep.problems.append(f"BEGIN:{c.name} never ended")
    return tops


def read(path: Path) -> Report:
    rep = Report(path)
    raw = path.read_bytes()
    if raw.startswith(BOM):
        rep.info["bom"] = "yes"
        raw = raw[len(BOM) :]
    if not raw.strip():
        rep.problems.append("empty file")
        return rep
    lines, ending = physical_lines(raw)
    rep.info["eol"] = ending
    is21 = path.suffix == ".vcf" and re.search(rb"(?mi)^VERSION:2\.1\r?$", raw) is not None
    if is21:
        if ending == "mixed":
            rep.problems.append("mixed CRLF and LF line endings")
        props = props_21(lines, rep)
    else:
        try:
            text_lines = [ln.decode("utf-8") for ln in lines]
        except UnicodeDecodeError as e:
            whole_ok = True
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                whole_ok = False
            rep.problems.append("fold splits a UTF-8 sequence" if whole_ok else f"not UTF-8: {e}")
            return rep
        if any("\x00" in ln for ln in text_lines):
            rep.problems.append("NUL bytes in text")
        if ending == "mixed":
            rep.problems.append("mixed CRLF and LF line endings")
        props = []
        for n, ln in logical_text(text_lines, rep):
            try:
                group, name, params, i = parse_head(ln, n, bare_params=False)
            except ValueError as e:
                rep.problems.append(str(e))
                continue
            props.append(Prop(n, group, name, params, ln[i + 1 :]))
    long_ok = "unfolded" in path.name
    for n, ln in enumerate(lines, 1):
        if len(ln) > MAX_OCTETS and not long_ok:
            rep.problems.append(f"line {n}: {len(ln)} octets (> {MAX_OCTETS}, not folded)")
    rep.tops = build(props, rep)
    if path.suffix == ".vcf":
        check_vcard(rep)
    else:
        check_ical(rep)
    return rep


# ----------------------------------------------------------------------------- vCard rules
def check_vcard(rep: Report) -> None:
    names = [c.name for c in rep.tops]
    if names != ["VCARD"]:
        rep.problems.append(f"expected exactly one VCARD, found {names or 'none'}")
        if not names or "VCARD" not in names:
            return
        if names.count("VCARD") > 1:
            rep.problems.append("two vCards in one file")
    card = next(c for c in rep.tops if c.name == "VCARD")
    ver = card.first("VERSION")
    if ver is None:
        rep.problems.append("VERSION missing")
        return
    v = ver.value.strip()
    rep.info["version"] = v
    if v not in ("2.1", "3.0", "4.0"):
        rep.problems.append(f"VERSION:{v} is not 2.1, 3.0 or 4.0")
        return
    if v == "4.0" and card.props[0].name != "VERSION":
        rep.problems.append("4.0: VERSION must directly follow BEGIN:VCARD")
    need = {"2.1": ["N"], "3.0": ["FN", "N"], "4.0": ["FN"]}[v] + ["UID"]
    for n in need:
        if not card.all(n):
            rep.problems.append(f"{n} missing")
    uid = card.first("UID")
    if uid:
        rep.uids.add(uid.value)
    if card.subs:
        rep.problems.append("nested component inside VCARD")


# ----------------------------------------------------------------------------- iCalendar rules
def check_value(p: Prop, rep: Report) -> None:
    vtype = (p.params.get("VALUE") or [""])[0].upper()
    for item in p.value.split(","):
        if vtype == "PERIOD":
            start, _, end = item.partition("/")
            ok = bool(DATETIME_RE.fullmatch(start)) and bool(
                DATETIME_RE.fullmatch(end) or DURATION_RE.fullmatch(end))
        elif vtype == "DATE":
            ok = bool(DATE_RE.fullmatch(item))
        else:
            ok = bool(DATETIME_RE.fullmatch(item))
            if ok and p.name in UTC_PROPS and not item.endswith("Z"):
                rep.problems.append(f"line {p.lineno}: {p.name} must be UTC")
        if not ok:
            rep.problems.append(f"line {p.lineno}: {p.name} value {item!r} is not a valid {vtype or 'DATE-TIME'}")


def check_ical(rep: Report) -> None:
    names = [c.name for c in rep.tops]
    if names != ["VCALENDAR"]:
        rep.problems.append(f"expected exactly one VCALENDAR, found {names or 'none'}")
        if "VCALENDAR" not in names:
            return
    cal = next(c for c in rep.tops if c.name == "VCALENDAR")
    ver = cal.first("VERSION")
    if ver is None:
        rep.problems.append("VERSION missing from VCALENDAR")
    elif ver.value != "2.0":
        rep.problems.append(f"VERSION:{ver.value} is not 2.0")
    if cal.first("PRODID") is None:
        rep.problems.append("PRODID missing")
    tzids = {p.value for c in cal.subs if c.name == "VTIMEZONE" for p in c.all("TZID")}
    objs = [c for c in cal.subs if c.name in ("VEVENT", "VTODO", "VJOURNAL")]
    if not objs:
        rep.problems.append("no VEVENT/VTODO/VJOURNAL")
    rep.info["kinds"] = ",".join(sorted({c.name for c in objs}))
    for c in cal.walk():
        for p in c.props:
            for tz in p.params.get("TZID", []):
                if tz not in tzids:
                    rep.problems.append(f"line {p.lineno}: TZID {tz!r} has no VTIMEZONE")
            if p.name in DATE_PROPS and c.name not in ("STANDARD", "DAYLIGHT"):
                check_value(p, rep)
            if p.name == "TRIGGER" and (p.params.get("VALUE") or [""])[0].upper() == "DATE-TIME":
                check_value(p, rep)
            elif p.name in ("TRIGGER", "DURATION") and not DURATION_RE.fullmatch(p.value):
                rep.problems.append(f"line {p.lineno}: {p.name} {p.value!r} is not a duration")
            if p.name == "RRULE":
                parts = dict(kv.partition("=")[::2] for kv in p.value.split(";"))
                if parts.get("FREQ") not in FREQS or set(parts) - RRULE_PARTS:
                    rep.problems.append(f"line {p.lineno}: bad RRULE {p.value!r}")
        if c.name == "VALARM" and not (c.first("ACTION") and c.first("TRIGGER")):
            rep.problems.append("VALARM without ACTION or TRIGGER")
    masters = 0
    for o in objs:
        for need in ("UID", "DTSTAMP") + (("DTSTART",) if o.name == "VEVENT" else ()):
            if o.first(need) is None:
                rep.problems.append(f"{o.name} without {need}")
        end = "DTEND" if o.name == "VEVENT" else "DUE"
        if o.first(end) and o.first("DURATION"):
            rep.problems.append(f"{o.name} has both {end} and DURATION")
        uid = o.first("UID")
        if uid:
            rep.uids.add(uid.value)
        if o.first("RECURRENCE-ID") is None:
            masters += 1
    if len(rep.uids) > 1:
        rep.problems.append(f"two different UIDs in one file: {sorted(rep.uids)}")
    if masters > 1:
        rep.problems.append(f"{masters} master components in one file")


# ----------------------------------------------------------------------------- libraries
def library_check(rep: Report) -> str | None:
    """Returns an error string, or None if the library accepted (and round-tripped) the file."""
    raw = rep.path.read_bytes()
    if raw.startswith(BOM):
        raw = raw[len(BOM) :]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return f"not UTF-8: {e}"
    try:
        if rep.path.suffix == ".vcf":
            import vobject

            vobject.readOne(text)
            n = sum(1 for _ in vobject.readComponents(text))
            if n != 1:
                return f"vobject found {n} components"
        else:
            import icalendar

            cal = icalendar.Calendar.from_ical(text)
            errors = [(c.name, e) for c in cal.walk() for e in c.errors]
            if errors:
                return f"icalendar parse errors: {errors[:3]}"
            again = icalendar.Calendar.from_ical(cal.to_ical())
            if [c.name for c in again.walk()] != [c.name for c in cal.walk()]:
                return "icalendar round trip changed the component tree"
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    return None


# ----------------------------------------------------------------------------- main
def main() -> int:
    failures: list[str] = []
    uid_owner: dict[str, str] = {}
    versions: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    eols: Counter[str] = Counter()
    boms: Counter[str] = Counter()
    lib_skipped = 0
    for folder, suffix in (("vcard", ".vcf"), ("ical", ".ics")):
        files = sorted((HERE / folder).glob("*"))
        for path in files:
            rel = f"{folder}/{path.name}"
            if path.suffix != suffix or path.name != path.name.lower():
                failures.append(f"{rel}: wrong suffix or not lowercase")
            rep = read(path)
            failures += [f"{rel}: {p}" for p in rep.problems]
            for uid in rep.uids:
                if uid in uid_owner:
                    failures.append(f"{rel}: UID {uid} also used by {uid_owner[uid]}")
                uid_owner[uid] = rel
            eols[f"{folder} {rep.info.get('eol', '?')}"] += 1
            if rep.info.get("bom"):
                boms[folder] += 1
            if folder == "vcard":
                versions[rep.info.get("version", "?")] += 1
            else:
                for k in rep.info.get("kinds", "").split(","):
                    kinds[k] += 1
            if rep.info.get("version") == "2.1":
                lib_skipped += 1  # vobject is not a 2.1 reader; the strict reader above covers 2.1
                continue
            err = library_check(rep)
            if err:
                failures.append(f"{rel}: library: {err}")

    bad = sorted(p for p in (HERE / "bad").glob("*") if p.name != "EXPECTED.txt")
    expected: dict[str, str] = {}
    for line in (HERE / "bad" / "EXPECTED.txt").read_text().splitlines():
        name, _, why = line.partition(": ")
        expected[name] = why
    if set(expected) != {p.name for p in bad}:
        failures.append(f"bad/EXPECTED.txt lists {sorted(set(expected) ^ {p.name for p in bad})} wrongly")
    print("bad files (expected -> strict reader / library):")
    for path in bad:
        rep = read(path)
        lib = library_check(rep)
        print(f"  {path.name}: {expected.get(path.name, '?')}")
        print(f"      strict: {rep.problems[0] if rep.problems else 'ACCEPTED'}; library: {lib or 'accepted'}")
        if not rep.problems:
            failures.append(f"bad/{path.name}: strict reader accepted it")

    print(f"vcard/: {sum(versions.values())} files, versions {dict(sorted(versions.items()))}")
    print(f"ical/: {sum(eols[k] for k in eols if k.startswith('ical'))} files, objects {dict(kinds)}")
    print(f"bad/: {len(bad)} files ({sum(p.suffix == '.vcf' for p in bad)} .vcf, {sum(p.suffix == '.ics' for p in bad)} .ics)")
    print(f"line endings: {dict(sorted(eols.items()))}; BOM: {dict(boms)}")
    print(f"unique UIDs: {len(uid_owner)}; 2.1 cards checked by the strict reader only: {lib_skipped}")
    minimums = [("vcard total", sum(versions.values()), 70), ("vCard 4.0", versions["4.0"], 15),
                ("vCard 2.1", versions["2.1"], 10), ("ical total", sum(kinds.values()), 45),
                ("VEVENT files", kinds["VEVENT"], 30), ("VTODO files", kinds["VTODO"], 12),
                ("bad .vcf", sum(p.suffix == ".vcf" for p in bad), 6),
                ("bad .ics", sum(p.suffix == ".ics" for p in bad), 6)]
    for label, got, want in minimums:
        if got < want:
            failures.append(f"{label}: {got} < {want}")
    if versions["3.0"] <= max(versions["4.0"], versions["2.1"]):
        failures.append("vCard 3.0 is not the majority version")
    if failures:
        print(f"\nFAILED ({len(failures)}):")
        for f in failures:
            print("  " + f)
        return 1
    print("\nOK: every valid file passed the strict reader and the library checks; every bad file was rejected.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
