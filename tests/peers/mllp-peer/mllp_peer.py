#!/usr/bin/env python3
"""mllp-peer: a receiving HL7 v2 MLLP peer for Vigil's end-to-end tests.

It listens on 127.0.0.1, reads MLLP-framed messages (0x0B ... 0x1C 0x0D) with the
`hl7` package's asyncio stream API, checks each one is an IHE PCD-01 (DEC) HL7 v2.6
ORU^R01 (own checks plus `hl7apy` parsing and structural validation), appends one JSON
line per message to --record, and answers with an MLLP-framed HL7 v2.6 ACK.

See README.md beside this file for flags, the record format and the ACK format.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import ssl
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Optional

import hl7.mllp
from hl7apy import load_reference
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_field, parse_message
from hl7apy.validation import Validator

PCD01_PROFILE_OID = "1.3.6.1.4.1.19376.1.6.1.1.1"
EXPECTED_MSH9 = ("ORU", "R01", "ORU_R01")
EXPECTED_VERSION = "2.6"
ACK_CODES = ("AA", "AE", "AR", "CA", "CE", "CR")  # C* = enhanced-mode accept ACK codes
ACCEPT_CODES = ("AA", "CA")
MAX_ERR_SEGMENTS = 20

# HL7 table 0357 (message error condition codes), v2.6.
HL70357 = {
    0: "Message accepted",
    100: "Segment sequence error",
    101: "Required field missing",
    102: "Data type error",
    103: "Table value not found",
    200: "Unsupported message type",
    201: "Unsupported event code",
    202: "Unsupported processing id",
    203: "Unsupported version id",
    204: "Unknown key identifier",
    205: "Duplicate key identifier",
    206: "Application record locked",
    207: "Application internal error",
}
# HL7 table 0085 (observation result status), v2.6.
HL70085 = {"C", "D", "F", "I", "N", "O", "P", "R", "S", "U", "W", "X"}
NM_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
SUB_ID_RE = re.compile(r"^\d+(\.\d+)*$")

STD_ENC = {"FIELD": "|", "COMPONENT": "^", "REPETITION": "~", "ESCAPE": "\\",
           "SUBCOMPONENT": "&", "SEGMENT": "\r", "GROUP": "\r"}

# ORU^R01 v2.6 segment grammar, as a state machine over segment IDs:
#   MSH [{SFT}] [UAC]
#   { [ PID [PD1] [{NTE}] [{NK1}] [ PV1 [PV2] ] ]
#     { [ORC] OBR [{NTE}] [{TQ1 [{TQ2}]}] [CTD] [{OBX [{NTE}]}] [{FT1}] [{CTI}] [{SPM [{OBX}]}] } }
#   [DSC]
# Each state lists the segments that may follow it. Z segments are skipped (warning).
_AFTER_ORDER = ["ORC", "OBR", "PID", "DSC"]
GRAMMAR = {
    "MSH": ["SFT", "UAC", "PID", "ORC", "OBR"],
    "SFT": ["SFT", "UAC", "PID", "ORC", "OBR"],
    "UAC": ["PID", "ORC", "OBR"],
    "PID": ["PD1", "NTE:pat", "NK1", "PV1", "ORC", "OBR"],
    "PD1": ["NTE:pat", "NK1", "PV1", "ORC", "OBR"],
    "NTE:pat": ["NTE:pat", "NK1", "PV1", "ORC", "OBR"],
    "NK1": ["NK1", "PV1", "ORC", "OBR"],
    "PV1": ["PV2", "ORC", "OBR"],
    "PV2": ["ORC", "OBR"],
    "ORC": ["OBR"],
    "OBR": ["NTE:obr", "TQ1", "CTD", "OBX", "FT1", "CTI", "SPM"] + _AFTER_ORDER,
    "NTE:obr": ["NTE:obr", "TQ1", "CTD", "OBX", "FT1", "CTI", "SPM"] + _AFTER_ORDER,
    "TQ1": ["TQ2", "TQ1", "CTD", "OBX", "FT1", "CTI", "SPM"] + _AFTER_ORDER,
    "TQ2": ["TQ2", "TQ1", "CTD", "OBX", "FT1", "CTI", "SPM"] + _AFTER_ORDER,
    "CTD": ["OBX", "FT1", "CTI", "SPM"] + _AFTER_ORDER,
    "OBX": ["NTE:obx", "OBX", "FT1", "CTI", "SPM"] + _AFTER_ORDER,
    "NTE:obx": ["NTE:obx", "OBX", "FT1", "CTI", "SPM"] + _AFTER_ORDER,
    "FT1": ["FT1", "CTI", "SPM"] + _AFTER_ORDER,
    "CTI": ["CTI", "SPM"] + _AFTER_ORDER,
    "SPM": ["OBX:spm", "SPM"] + _AFTER_ORDER,
    "OBX:spm": ["OBX:spm", "SPM"] + _AFTER_ORDER,
    "DSC": [],
}
# States in which the message may end (at least one OBR seen, not waiting for OBR).
GRAMMAR_FINAL = {"OBR", "NTE:obr", "TQ1", "TQ2", "CTD", "OBX", "NTE:obx", "FT1", "CTI",
                 "SPM", "OBX:spm", "DSC"}
ORU_R01_SEGMENTS = {s.split(":")[0] for s in GRAMMAR}


# --------------------------------------------------------------------------- issues

@dataclass
class Issue:
    """One problem found in a message; becomes an "errors"/"warnings" string and an ERR segment."""
    text: str
    code: int = 207          # HL7 table 0357
    segment: str = ""        # ERR-2.1 segment ID
    seq: int = 0             # ERR-2.2 segment sequence (1-based occurrence of that segment ID)
    field: int = 0           # ERR-2.3 field position
    component: int = 0       # ERR-2.5 component number
    source: str = "pcd"      # "mllp", "pcd" (our checks) or "hl7apy"

    def location(self) -> str:
        if not self.segment:
            return ""
        loc = self.segment if self.segment == "MSH" else f"{self.segment}[{self.seq or 1}]"
        if self.field:
            loc += f"-{self.field}"
            if self.component:
                loc += f".{self.component}"
        return loc

    def __str__(self) -> str:
        loc = self.location()
        prefix = "hl7apy: " if self.source == "hl7apy" else ""
        return f"{loc}: {prefix}{self.text}" if loc else f"{prefix}{self.text}"

    def erl(self) -> str:
        """ERR-2 Error Location (ERL): segment^sequence^field^repetition^component."""
        if not self.segment:
            return ""
        parts = [self.segment, str(self.seq or 1)]
        if self.field:
            parts += [str(self.field), "1"]
            if self.component:
                parts.append(str(self.component))
        return "^".join(parts)


# --------------------------------------------------------------------------- ER7 helpers

@dataclass
class Segment:
    name: str
    seq: int                 # 1-based occurrence of this segment ID in the message
    fields: list             # fields[n] is field n (for MSH, fields[1] = '|', fields[2] = MSH-2)
    text: str

    def get(self, n: int) -> str:
        return self.fields[n] if n < len(self.fields) else ""


@dataclass
class Er7:
    enc: dict
    segments: list

    def first(self, name: str) -> Optional[Segment]:
        for s in self.segments:
            if s.name == name:
                return s
        return None

    def comp(self, value: str, n: int) -> str:
        """Component n (1-based) of the first repetition of a field value."""
        rep = value.split(self.enc["REPETITION"])[0]
        comps = rep.split(self.enc["COMPONENT"])
        return comps[n - 1] if n - 1 < len(comps) else ""


def split_er7(text: str) -> Er7:
    """Split an ER7 message (segments separated by CR) using the encoding characters in MSH."""
    enc = dict(STD_ENC)
    if text.startswith("MSH") and len(text) >= 8:
        enc["FIELD"] = text[3]
        seps = text[4:].split(enc["FIELD"], 1)[0]
        for key, ch in zip(("COMPONENT", "REPETITION", "ESCAPE", "SUBCOMPONENT"), seps):
            enc[key] = ch
    counts: dict = {}
    segments = []
    for raw in text.split("\r"):
        if not raw.strip():
            continue
        name = raw[:3]
        counts[name] = counts.get(name, 0) + 1
        parts = raw.split(enc["FIELD"])
        if name == "MSH":
            fields = ["MSH", enc["FIELD"]] + parts[1:]
        else:
            fields = parts
        segments.append(Segment(name, counts[name], fields, raw))
    return Er7(enc, segments)


def hl7_escape(text: str) -> str:
    """Escape free text for an ER7 field (standard encoding characters)."""
    out = text.replace("\\", "\\E\\")
    return (out.replace("|", "\\F\\").replace("^", "\\S\\").replace("~", "\\R\\")
            .replace("&", "\\T\\").replace("\r", " ").replace("\n", " "))


# --------------------------------------------------------------------------- analysis

@dataclass
class Analysis:
    text: str                       # normalised message text (segments separated by CR)
    errors: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    er7: Optional[Er7] = None
    control_id: str = ""
    message_type: str = ""
    version: str = ""
    profile: str = ""
    pid3: str = ""
    obx: list = field(default_factory=list)
    msh: Optional[Segment] = None

    @property
    def valid(self) -> bool:
        return not self.errors


_FIELD_COUNT_CACHE: dict = {}


def segment_field_count(name: str, version: str = EXPECTED_VERSION) -> Optional[int]:
    key = (name, version)
    if key not in _FIELD_COUNT_CACHE:
        try:
            _FIELD_COUNT_CACHE[key] = len(load_reference(name, "Segment", version)[1])
        except Exception:
            _FIELD_COUNT_CACHE[key] = None
    return _FIELD_COUNT_CACHE[key]


def decode_payload(payload: bytes, a_errors: list) -> str:
    """Decode the MLLP payload: UTF-8 unless MSH-18 declares ISO 8859-1."""
    head = payload.split(b"\r", 1)[0].decode("latin-1")
    charset = ""
    if head.startswith("MSH") and len(head) > 3:
        fields = head.split(head[3])
        charset = fields[17].strip() if len(fields) > 17 else ""  # MSH-18
    if charset.upper().startswith("8859/1"):
        return payload.decode("latin-1")
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError as e:
        a_errors.append(Issue(f"payload is not valid UTF-8 (MSH-18 is '{charset}'): {e}",
                              102, "MSH", 1, 18, source="mllp"))
        return payload.decode("latin-1")


def analyse(payload: bytes) -> Analysis:
    errors: list = []
    text = decode_payload(payload, errors)
    if "\r\n" in text:
        errors.append(Issue("segments are separated by CR LF; HL7 v2 requires CR (0x0D) alone",
                            100, source="mllp"))
    elif "\n" in text:
        errors.append(Issue("segments are separated by LF (0x0A); HL7 v2 requires CR (0x0D)",
                            100, source="mllp"))
    norm = text.replace("\r\n", "\r").replace("\n", "\r")
    a = Analysis(text=norm, errors=errors)
    body = norm.lstrip()
    if not body.startswith("MSH") or len(body) < 8:
        a.errors.append(Issue("message does not start with an MSH segment", 100, "MSH", 1))
        return a
    if body != norm:
        a.warnings.append(Issue("leading whitespace before MSH"))
    er7 = split_er7(body)
    a.er7 = er7
    msh = er7.segments[0]
    a.msh = msh
    a.control_id = msh.get(10)
    a.message_type = msh.get(9)
    a.version = msh.get(12)
    a.profile = msh.get(21)
    pid = er7.first("PID")
    a.pid3 = pid.get(3) if pid else ""

    check_pcd01(a, er7)
    check_structure(a, er7)
    check_fields_strict(a, er7)
    check_hl7apy(a, body)
    collect_obx(a, er7)
    return a


def check_pcd01(a: Analysis, er7: Er7) -> None:
    msh = er7.segments[0]
    e = a.errors
    c = er7.comp
    if not msh.get(10):
        e.append(Issue("message control ID is empty", 101, "MSH", 1, 10))
    msh9 = msh.get(9)
    mtype, event, struct = c(msh9, 1), c(msh9, 2), c(msh9, 3)
    expected = "^".join(EXPECTED_MSH9)
    if mtype != EXPECTED_MSH9[0]:
        e.append(Issue(f"message type is '{msh9}', expected {expected}", 200, "MSH", 1, 9, 1))
    elif event != EXPECTED_MSH9[1]:
        e.append(Issue(f"trigger event is '{msh9}', expected {expected}", 201, "MSH", 1, 9, 2))
    elif struct != EXPECTED_MSH9[2]:
        e.append(Issue(f"message structure is '{msh9}', PCD-01 requires {expected}",
                       101 if not struct else 200, "MSH", 1, 9, 3))
    version = c(msh.get(12), 1)
    if version != EXPECTED_VERSION:
        e.append(Issue(f"version is '{msh.get(12)}', expected {EXPECTED_VERSION}",
                       203, "MSH", 1, 12))
    profile = msh.get(21)
    reps = [r.split(er7.enc["COMPONENT"]) for r in profile.split(er7.enc["REPETITION"]) if r]
    if not any(PCD01_PROFILE_OID in comps for comps in reps):
        e.append(Issue(f"profile is '{profile}', it must name the IHE PCD-01 profile "
                       f"(IHE_PCD_001^IHE PCD^{PCD01_PROFILE_OID}^ISO)", 101, "MSH", 1, 21))
    else:
        good = [r for r in reps if len(r) > 3 and r[2] == PCD01_PROFILE_OID and r[3] == "ISO"]
        if not good:
            a.warnings.append(Issue(f"profile carries {PCD01_PROFILE_OID} but not as "
                                    "EI.3 with EI.4 = ISO", 0, "MSH", 1, 21))

    pids = [s for s in er7.segments if s.name == "PID"]
    if not pids:
        e.append(Issue("PID segment missing (PCD-01 requires the patient)", 101, "PID", 1))
    for s in pids:
        if not s.get(3):
            e.append(Issue("patient identifier list is empty", 101, "PID", s.seq, 3))
        elif not c(s.get(3), 4):
            a.warnings.append(Issue("patient identifier has no assigning authority (CX.4)",
                                    0, "PID", s.seq, 3, 4))
    obrs = [s for s in er7.segments if s.name == "OBR"]
    if not obrs:
        e.append(Issue("OBR segment missing", 101, "OBR", 1))
    for s in obrs:
        if not s.get(7):
            e.append(Issue("observation date/time is empty (PCD-01 requires it)",
                           101, "OBR", s.seq, 7))
    for s in er7.segments:
        if s.name == "ORC":
            a.warnings.append(Issue("PCD-01 does not use ORC", 0, "ORC", s.seq))
    obxs = [s for s in er7.segments if s.name == "OBX"]
    if not obxs:
        e.append(Issue("no OBX segment (at least one observation is required)", 101, "OBX", 1))
    for s in obxs:
        if not s.get(3) or not c(s.get(3), 1):
            e.append(Issue("observation identifier is empty", 101, "OBX", s.seq, 3))
        elif not c(s.get(3), 3):
            a.warnings.append(Issue(f"'{s.get(3)}' has no coding system (CWE.3, e.g. MDC)",
                                    0, "OBX", s.seq, 3, 3))
        sub_id = s.get(4)
        if not sub_id:
            e.append(Issue("observation sub-ID (containment path MDS.VMD.CHAN.METRIC) "
                           "is empty", 101, "OBX", s.seq, 4))
        elif not SUB_ID_RE.match(sub_id):
            e.append(Issue(f"'{sub_id}' is not a dotted containment path like 1.0.1.1",
                           102, "OBX", s.seq, 4))
        vtype, value = s.get(2), s.get(5)
        if value and not vtype:
            e.append(Issue("value type is empty but OBX-5 has a value", 101, "OBX", s.seq, 2))
        if vtype == "NM":
            for rep in value.split(er7.enc["REPETITION"]) if value else []:
                if not NM_RE.match(rep):
                    e.append(Issue(f"'{rep}' is not a valid NM (numeric) value",
                                   102, "OBX", s.seq, 5))
            if value and not s.get(6):
                a.warnings.append(Issue("numeric observation has no unit", 0, "OBX", s.seq, 6))
        status = s.get(11)
        if not status:
            e.append(Issue("observation result status is empty", 101, "OBX", s.seq, 11))
        elif status not in HL70085:
            e.append(Issue(f"result status '{status}' is not in HL7 table 0085",
                           103, "OBX", s.seq, 11))


def check_structure(a: Analysis, er7: Er7) -> None:
    """Segment order against the ORU^R01 v2.6 grammar (hl7apy does not catch this)."""
    state = None
    for s in er7.segments:
        name = s.name
        if state is None:
            state = "MSH"   # the first segment is MSH (checked by the caller)
            continue
        if name.startswith("Z"):
            a.warnings.append(Issue(f"Z segment {name} ignored", 0, name, s.seq))
            continue
        if name not in ORU_R01_SEGMENTS:
            a.errors.append(Issue(f"segment {name} is not part of ORU^R01", 100, name, s.seq))
            continue
        allowed = GRAMMAR[state]
        nxt = next((x for x in allowed if x.split(":")[0] == name), None)
        if nxt is None:
            names = dict.fromkeys(x.split(":")[0] for x in allowed)
            expected = ", ".join(names) or "end of message"
            a.errors.append(Issue(f"{name} not allowed after {state.split(':')[0]} "
                                  f"(expected {expected})", 100, name, s.seq))
            continue  # stay in the current state and keep checking
        state = nxt
    if state is not None and state not in GRAMMAR_FINAL and not a.errors:
        a.errors.append(Issue("message ends before any OBR (ORU^R01 needs an ORDER_OBSERVATION)",
                              100, "OBR", 1))


def check_fields_strict(a: Analysis, er7: Er7) -> None:
    """hl7apy STRICT datatype checks, field by field, so that the error has a location."""
    version = EXPECTED_VERSION
    for s in er7.segments:
        if s.name.startswith("Z") or s.name not in ORU_R01_SEGMENTS:
            continue
        count = segment_field_count(s.name, version)
        if count is None:
            continue
        first = 3 if s.name == "MSH" else 1
        for n in range(first, len(s.fields)):
            value = s.fields[n]
            if not value:
                continue
            if n > count:
                a.errors.append(Issue(f"field beyond the {count} fields {s.name} has in v{version}",
                                      102, s.name, s.seq, n))
                continue
            for rep in value.split(er7.enc["REPETITION"]):
                if not rep:
                    continue
                try:
                    parse_field(rep, name=f"{s.name}_{n}", version=version, encoding_chars=er7.enc,
                                validation_level=VALIDATION_LEVEL.STRICT)
                except Exception as exc:  # hl7apy raises ValueError and its own exceptions
                    a.errors.append(Issue(f"{type(exc).__name__}: {exc}", 102, s.name, s.seq, n,
                                          source="hl7apy"))
                    break


def check_hl7apy(a: Analysis, body: str) -> None:
    """hl7apy parse (TOLERANT, find_groups) and Validator.validate, collecting every finding."""
    try:
        msg = parse_message(body, validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=True)
    except Exception as exc:
        a.errors.append(Issue(f"parse_message failed: {type(exc).__name__}: {exc}", 100,
                              source="hl7apy"))
        return
    fd, report = tempfile.mkstemp(prefix="mllp-peer-", suffix=".txt")
    os.close(fd)
    try:
        try:
            Validator.validate(msg, report_file=report)
        except Exception:
            pass  # validate() raises the first error; the report file has all of them
        with open(report, encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if line.startswith("Error: "):
                    a.errors.append(hl7apy_issue(line[7:], a.er7))
                elif line.startswith("Warning: "):
                    issue = hl7apy_issue(line[9:], a.er7)
                    issue.code = 0
                    a.warnings.append(issue)
    finally:
        os.unlink(report)


_SEG_FIELD_RE = re.compile(r"\b([A-Z][A-Z0-9]{2})_(\d+)\b")
_SEG_RE = re.compile(r"(?:Missing required child|Child limit exceeded) [\w.]*\.([A-Z][A-Z0-9]{2})$")


def hl7apy_issue(text: str, er7: Optional[Er7]) -> Issue:
    """Turn one line of hl7apy's validation report into an Issue with a location if possible."""
    if text.startswith("Missing required child"):
        code = 101
    elif text.startswith("Child limit exceeded") or text.startswith("Unknown element"):
        code = 100
    elif text.startswith("Invalid children detected") or text.startswith("Datatype"):
        code = 102
    elif "not in table" in text:
        code = 103
    else:
        code = 207
    issue = Issue(text, code, source="hl7apy")
    m = _SEG_FIELD_RE.search(text)
    if m:
        issue.segment, issue.field = m.group(1), int(m.group(2))
        comp = re.search(r"\b[A-Z][A-Z0-9]{1,2}_(\d+)$", text.split(" in element ")[0])
        if comp and comp.group(0) != m.group(0) and text.startswith("Missing required child"):
            issue.component = int(comp.group(1))
    else:
        m = _SEG_RE.search(text) or re.search(r"<Segment ([A-Z][A-Z0-9]{2})>", text)
        if m:
            issue.segment = m.group(1)
    if issue.segment and er7 is not None:
        # hl7apy does not say which occurrence: take the first segment of that name whose field
        # holds the reported value (table warnings) or is empty (missing field), else the first
        same = [s for s in er7.segments if s.name == issue.segment]
        value = re.match(r"Value (.*) not in table ", text)
        if value and issue.field:
            hits = [s for s in same if value.group(1) in s.get(issue.field)]
        else:
            hits = [s for s in same if issue.field and not s.get(issue.field)]
        issue.seq = (hits or same or [Segment(issue.segment, 1, [], "")])[0].seq
    return issue


def collect_obx(a: Analysis, er7: Er7) -> None:
    c = er7.comp
    obr_time = ""
    for s in er7.segments:
        if s.name == "OBR":
            obr_time = s.get(7)
        elif s.name == "OBX":
            code, unit = s.get(3), s.get(6)
            a.obx.append({
                "set_id": s.get(1),
                "value_type": s.get(2),
                "code": c(code, 1),
                "code_text": c(code, 2),
                "system": c(code, 3),
                "sub_id": s.get(4),
                "value": s.get(5),
                "unit": unit,
                "unit_code": c(unit, 1),
                "unit_text": c(unit, 2),
                "unit_system": c(unit, 3),
                "ref_range": s.get(7),
                "abnormal_flags": s.get(8),
                "status": s.get(11),
                "time": s.get(14),
                "equipment": s.get(18),
                "obr_time": obr_time,
            })


# --------------------------------------------------------------------------- ACK

def hl7_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S") + "+0000"


def build_ack(a: Analysis, code: str, ack_control_id: str, issues: list) -> str:
    """HL7 v2.6 ACK: MSH (sender/receiver swapped), MSA, then one ERR per issue."""
    msh = a.msh
    er7 = a.er7

    def std(value: str) -> str:
        # re-join with the standard encoding characters if the sender used others
        if er7 is None or er7.enc == STD_ENC:
            return value
        out = value
        for key in ("COMPONENT", "REPETITION", "SUBCOMPONENT"):
            out = out.replace(er7.enc[key], STD_ENC[key])
        return out

    g = (lambda n: std(msh.get(n))) if msh else (lambda n: "")
    trigger = er7.comp(msh.get(9), 2) if msh and er7 else ""
    processing_id = g(11) or "P"
    charset = g(18)
    msh_fields = [
        "MSH", "^~\\&",
        g(5) or "MLLP_PEER",    # MSH-3 sending application = incoming MSH-5
        g(6),                   # MSH-4 sending facility    = incoming MSH-6
        g(3),                   # MSH-5 receiving application = incoming MSH-3
        g(4),                   # MSH-6 receiving facility    = incoming MSH-4
        hl7_now(),              # MSH-7
        "",                     # MSH-8
        f"ACK^{trigger or 'R01'}^ACK",   # MSH-9
        ack_control_id,         # MSH-10
        processing_id,          # MSH-11
        EXPECTED_VERSION,       # MSH-12
        "", "",                 # MSH-13, MSH-14
        "NE", "NE",             # MSH-15, MSH-16: no acknowledgement of this ACK
        "",                     # MSH-17
        charset,                # MSH-18 as declared by the sender
    ]
    while msh_fields and msh_fields[-1] == "":
        msh_fields.pop()
    segments = ["|".join(msh_fields), f"MSA|{code}|{std(a.control_id)}"]
    for issue in issues[:MAX_ERR_SEGMENTS]:
        err_code = issue.code if issue.code in HL70357 and issue.code else 207
        segments.append("|".join([
            "ERR",
            "",                                               # ERR-1 (backward compatible)
            issue.erl(),                                      # ERR-2 error location
            f"{err_code}^{HL70357[err_code]}^HL70357",        # ERR-3 HL7 error code
            "E",                                              # ERR-4 severity
            "", "", "",                                       # ERR-5..7
            hl7_escape(str(issue)),                           # ERR-8 user message
        ]))
    return "\r".join(segments) + "\r"


def ack_encoding(charset: str) -> str:
    return "latin-1" if charset.upper().startswith("8859/1") else "utf-8"


# --------------------------------------------------------------------------- server

class Peer:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.reply_for = {}
        for item in args.reply_for:
            cid, _, code = item.rpartition("=")
            if not cid or code not in ACK_CODES:
                codes = "|".join(ACK_CODES)
                raise SystemExit(f"--reply-for wants CONTROL_ID={codes}, got {item!r}")
            self.reply_for[cid] = code
        self.busy_left = args.busy_first  # AR answers without ERR still to give
        self.received = 0          # messages received (all connections)
        self.ack_seq = 0
        self.conn_seq = 0
        self.seen: set = set()     # control ids received before
        self.stored: set = set()   # control ids accepted (AA) or held without reply
        self.record = open(args.record, "a", encoding="utf-8") if args.record else None
        self.tasks: set = set()
        self.writers: set = set()

    def log(self, msg: str) -> None:
        if not self.args.quiet:
            print(f"mllp-peer: {msg}", file=sys.stderr, flush=True)

    def write_record(self, rec: dict) -> None:
        if self.record:
            self.record.write(json.dumps(rec, ensure_ascii=False) + "\n")
            self.record.flush()

    def on_client(self, reader, writer) -> None:
        # Plain callback (not a coroutine) so that we keep a reference to the task and can
        # cancel it on shutdown; hl7's start_hl7_server would create an untracked task.
        task = asyncio.get_running_loop().create_task(self.handle(reader, writer))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def handle(self, reader: hl7.mllp.HL7StreamReader, writer: hl7.mllp.HL7StreamWriter):
        self.conn_seq += 1
        conn = self.conn_seq
        peername = writer.get_extra_info("peername")
        peer = f"{peername[0]}:{peername[1]}" if peername else "?"
        self.writers.add(writer)
        self.log(f"connection {conn} from {peer}")
        try:
            while True:
                try:
                    payload = await reader.readblock()
                except asyncio.IncompleteReadError as e:
                    if e.partial.strip():
                        self.on_framing_error(conn, peer, "connection closed inside an MLLP "
                                              "frame (no 0x1C 0x0D end block)", e.partial)
                    break
                except hl7.mllp.InvalidBlockError:
                    self.on_framing_error(conn, peer, "bytes before the 0x0B start block; "
                                          "that frame was discarded", b"")
                    continue
                except ValueError as e:  # frame larger than --max-bytes
                    self.on_framing_error(conn, peer, f"frame too large: {e}", b"")
                    continue
                self.on_message(conn, peer, payload, writer)
                await writer.drain()
        except (ConnectionResetError, BrokenPipeError) as e:
            self.log(f"connection {conn}: {e}")
        except asyncio.CancelledError:
            pass
        finally:
            self.writers.discard(writer)
            writer.close()
            self.log(f"connection {conn} closed")

    def on_framing_error(self, conn: int, peer: str, text: str, partial: bytes) -> None:
        self.log(f"connection {conn}: MLLP framing error: {text}")
        self.write_record({
            "seq": None, "received_at": datetime.now(timezone.utc).isoformat(),
            "connection": conn, "peer": peer, "control_id": "", "message_type": "",
            "version": "", "profile": "", "valid": False,
            "errors": [f"MLLP: {text}"], "warnings": [], "pid3": "", "obx": [],
            "duplicate": False, "ack_code": None, "held": False,
            "raw": partial.decode("latin-1").replace("\r", "\n"),
        })

    def choose_reply(self, a: Analysis, duplicate: bool):
        """Returns (code, issues for ERR segments)."""
        if not a.valid:
            return "AE", a.errors
        if self.busy_left > 0:
            self.busy_left -= 1
            return "AR", []
        if duplicate and self.args.duplicates and a.control_id in self.stored:
            return "AA", []
        code = self.reply_for.get(a.control_id, self.args.reply)
        if code in ACCEPT_CODES:
            return code, []
        text = self.args.error_text or f"test peer answers {code} (--reply/--reply-for)"
        return code, [Issue(text, self.args.error_code)]

    def on_message(self, conn: int, peer: str, payload: bytes, writer) -> None:
        self.received += 1
        seq = self.received
        a = analyse(payload)
        duplicate = bool(a.control_id) and a.control_id in self.seen
        held = seq <= self.args.delay_first
        code, issues = (None, []) if held else self.choose_reply(a, duplicate)
        if a.control_id:
            self.seen.add(a.control_id)
            if held or code in ACCEPT_CODES:
                self.stored.add(a.control_id)
        rec = {
            "seq": seq,
            "received_at": datetime.now(timezone.utc).isoformat(),
            "connection": conn,
            "peer": peer,
            "control_id": a.control_id,
            "message_type": a.message_type,
            "version": a.version,
            "profile": a.profile,
            "valid": a.valid,
            "errors": [str(i) for i in a.errors],
            "warnings": [str(i) for i in a.warnings],
            "pid3": a.pid3,
            "obx": a.obx,
            "duplicate": duplicate,
            "ack_code": code,
            "held": held,
            "raw": a.text.replace("\r", "\n"),
        }
        # Record first, then ACK: when the sender sees the ACK, the line is in the file.
        self.write_record(rec)
        if held:
            self.log(f"connection {conn}: message {seq} ({a.control_id!r}) held without reply "
                     f"(--delay-first {self.args.delay_first})")
            return
        self.ack_seq += 1
        ack = build_ack(a, code, f"MLLPPEER{self.ack_seq:08d}", issues)
        charset = a.msh.get(18) if a.msh else ""
        writer.writeblock(ack.encode(ack_encoding(charset), errors="replace"))
        summary = f"; {len(a.errors)} error(s): {a.errors[0]}" if a.errors else ""
        self.log(f"connection {conn}: message {seq} ({a.control_id!r}"
                 f"{', duplicate' if duplicate else ''}) -> {code}{summary}")

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        tls = None
        if self.args.tls_cert:
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.load_cert_chain(self.args.tls_cert, self.args.tls_key)
            if self.args.tls_client_ca:
                tls.verify_mode = ssl.CERT_REQUIRED
                tls.load_verify_locations(self.args.tls_client_ca)
        server = await hl7.mllp.start_hl7_server(
            self.on_client, host="127.0.0.1", port=self.args.port, limit=self.args.max_bytes, ssl=tls)
        port = server.sockets[0].getsockname()[1]
        print(f"mllp-peer listening on 127.0.0.1:{port}", flush=True)
        await stop.wait()
        self.log("shutting down")
        server.close()
        for w in list(self.writers):
            w.close()
        for t in list(self.tasks):
            t.cancel()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=2)
        try:
            await asyncio.wait_for(server.wait_closed(), timeout=2)
        except asyncio.TimeoutError:
            pass
        if self.record:
            self.record.close()
        return 0


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="mllp_peer.py",
        description="HL7 v2 MLLP receiving test peer for IHE PCD-01 ORU^R01 v2.6 messages.")
    p.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0 = ephemeral)")
    p.add_argument("--record", metavar="FILE",
                   help="append one JSON line per received message to FILE")
    p.add_argument("--reply", choices=ACK_CODES, default="AA",
                   help="ACK code (MSA-1) for valid messages (default AA)")
    p.add_argument("--reply-for", metavar="CONTROL_ID=CODE", action="append", default=[],
                   help="answer the message whose MSH-10 is CONTROL_ID with CODE (repeatable)")
    p.add_argument("--error-text", default="",
                   help="ERR-8 user message for AE/AR chosen by --reply/--reply-for")
    p.add_argument("--error-code", type=int, default=207, choices=sorted(c for c in HL70357 if c),
                   help="HL7 table 0357 code in ERR-3 for AE/AR chosen by --reply/--reply-for "
                        "(default 207 Application internal error)")
    p.add_argument("--busy-first", type=int, default=0, metavar="N",
                   help="answer the first N valid messages AR with no ERR segment (a receiver too "
                        "busy to say why), then as --reply says")
    p.add_argument("--delay-first", type=int, default=0, metavar="N",
                   help="do not answer the first N messages at all (they are still recorded)")
    p.add_argument("--duplicates", action="store_true",
                   help="de-duplicate on MSH-10: a control id already accepted (AA) or held is "
                        "answered AA again (recorded with \"duplicate\": true)")
    p.add_argument("--max-bytes", type=int, default=4 * 1024 * 1024,
                   help="largest MLLP frame accepted (default 4 MiB)")
    p.add_argument("--quiet", action="store_true", help="no log lines on stderr")
    p.add_argument("--tls-cert", metavar="PEM", help="serve MLLP over TLS with this certificate chain")
    p.add_argument("--tls-key", metavar="PEM", help="the private key of --tls-cert")
    p.add_argument("--tls-client-ca", metavar="PEM",
                   help="require a client certificate signed by this CA (mutual TLS)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    peer = Peer(args)
    return asyncio.run(peer.run())


if __name__ == "__main__":
    sys.exit(main())
