"""Tests for mllp_peer.py: run the peer as a subprocess on an ephemeral port and talk MLLP
to it over plain sockets (independent of the `hl7` package the peer itself uses).

Run: tests/peers/.venv/bin/python -m pytest tests/peers/mllp-peer -q
"""

from __future__ import annotations

import json
import re
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
PEER = HERE / "mllp_peer.py"
SENDER = HERE / "send_oru.py"
SAMPLE = HERE / "sample_oru_r01.hl7"
READY_RE = re.compile(r"^mllp-peer listening on 127\.0\.0\.1:(\d+)$")
SB, EB, CR = b"\x0b", b"\x1c", b"\x0d"


# --------------------------------------------------------------------------- helpers

def sample_segments() -> list[str]:
    return [s for s in SAMPLE.read_text().splitlines() if s.strip()]


def make_message(control_id: str = "VIGIL-0001", segments: list[str] | None = None,
                 sep: str = "\r") -> str:
    segs = segments if segments is not None else sample_segments()
    segs = [s.replace("VIGIL-0001", control_id) for s in segs]
    return sep.join(segs) + sep


class PeerProcess:
    def __init__(self, tmp_path: Path, *args: str):
        self.record = tmp_path / f"record-{time.monotonic_ns()}.jsonl"
        self.stderr_path = tmp_path / f"peer-{time.monotonic_ns()}.err"
        self._stderr = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, str(PEER), "--port", "0", "--record", str(self.record), *args],
            stdout=subprocess.PIPE, stderr=self._stderr, text=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], 15)
        line = self.proc.stdout.readline().rstrip("\n") if ready else ""
        m = READY_RE.match(line)
        if not m:
            self.stop()
            raise AssertionError(f"peer did not print its ready line (got {line!r}); stderr:\n"
                                 f"{self.stderr_path.read_text()}")
        self.ready_line = line
        self.port = int(m.group(1))

    def records(self, expect: int | None = None, timeout: float = 5.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            lines = self.record.read_text().splitlines() if self.record.exists() else []
            if expect is None or len(lines) >= expect or time.monotonic() > deadline:
                return [json.loads(x) for x in lines]
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self._stderr.close()
        return rc


@pytest.fixture
def start_peer(tmp_path):
    peers: list[PeerProcess] = []

    def start(*args: str) -> PeerProcess:
        p = PeerProcess(tmp_path, *args)
        peers.append(p)
        return p

    yield start
    codes = [p.stop() for p in peers]
    assert codes == [0] * len(codes), f"peer exit codes on SIGTERM: {codes}"


class MllpClient:
    """Minimal MLLP client over a plain socket."""

    def __init__(self, port: int, timeout: float = 10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, message: str | bytes) -> None:
        data = message.encode("utf-8") if isinstance(message, str) else message
        self.sock.sendall(SB + data + EB + CR)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self, timeout: float = 10.0) -> str:
        self.sock.settimeout(timeout)
        while EB + CR not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"peer closed the connection; buffer {self.buf!r}")
            self.buf += chunk
        frame, _, self.buf = self.buf.partition(EB + CR)
        assert frame.startswith(SB), f"ACK frame does not start with 0x0B: {frame!r}"
        return frame[1:].decode("utf-8")

    def request(self, message: str | bytes, timeout: float = 10.0) -> "Ack":
        self.send(message)
        return Ack(self.recv(timeout))

    def close(self) -> None:
        self.sock.close()


class Ack:
    def __init__(self, text: str):
        self.text = text
        assert "\n" not in text, "ACK segments must be separated by CR only"
        assert text.endswith("\r")
        self.segments = [s.split("|") for s in text.split("\r") if s]

    def seg(self, name: str) -> list[str]:
        return next(s for s in self.segments if s[0] == name)

    def all(self, name: str) -> list[list[str]]:
        return [s for s in self.segments if s[0] == name]

    def msh(self, n: int) -> str:
        # MSH-1 is the field separator itself, so MSH-n is index n-1 after split
        return self.seg("MSH")[n - 1]

    @property
    def code(self) -> str:
        return self.seg("MSA")[1]

    @property
    def control_id(self) -> str:
        return self.seg("MSA")[2]


def field(seg: list[str], n: int) -> str:
    return seg[n] if n < len(seg) else ""


# --------------------------------------------------------------------------- tests

def test_ready_line_and_clean_exit_on_sigterm(start_peer):
    peer = start_peer()
    assert READY_RE.match(peer.ready_line)
    assert peer.port > 0
    assert peer.stop(signal.SIGTERM) == 0


def test_clean_exit_on_sigint_with_open_connection(start_peer):
    peer = start_peer()
    client = MllpClient(peer.port)
    assert client.request(make_message("SIGINT-1")).code == "AA"
    assert peer.stop(signal.SIGINT) == 0
    client.close()


def test_sample_is_accepted_and_recorded(start_peer):
    peer = start_peer()
    client = MllpClient(peer.port)
    ack = client.request(make_message())
    client.close()

    # ACK format
    assert ack.msh(2) == "^~\\&"
    assert ack.msh(3) == "EHR_APP" and ack.msh(4) == "EHR_FACILITY"          # swapped
    assert ack.msh(5) == "VIGIL^0123456789ABCDEF^EUI-64" and ack.msh(6) == "VIGIL_FACILITY"
    assert re.fullmatch(r"\d{14}\+0000", ack.msh(7))
    assert ack.msh(9) == "ACK^R01^ACK"
    assert ack.msh(10) and ack.msh(10) != "VIGIL-0001"
    assert ack.msh(11) == "P" and ack.msh(12) == "2.6"
    assert ack.code == "AA" and ack.control_id == "VIGIL-0001"
    assert ack.all("ERR") == []
    assert [s[0] for s in ack.segments] == ["MSH", "MSA"]

    [rec] = peer.records(1)
    assert rec["valid"] is True, rec["errors"]
    assert rec["errors"] == [] and rec["warnings"] == []
    assert rec["control_id"] == "VIGIL-0001"
    assert rec["message_type"] == "ORU^R01^ORU_R01"
    assert rec["version"] == "2.6"
    assert rec["profile"] == "IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO"
    assert rec["pid3"] == "MRN12345^^^HOSP^MR"
    assert rec["ack_code"] == "AA" and rec["held"] is False and rec["duplicate"] is False
    assert rec["raw"].startswith("MSH|") and "\r" not in rec["raw"]
    obx = {o["code"]: o for o in rec["obx"]}
    assert list(obx) == ["150456", "149530", "150021"]
    spo2 = obx["150456"]
    assert (spo2["code_text"], spo2["system"]) == ("MDC_PULS_OXIM_SAT_O2", "MDC")
    assert spo2["value"] == "97" and spo2["value_type"] == "NM"
    assert spo2["unit"] == "262688^MDC_DIM_PERCENT^MDC" and spo2["unit_code"] == "262688"
    assert spo2["sub_id"] == "1.0.1.1"
    assert spo2["status"] == "F"
    assert spo2["time"] == "20240601115955+0000" and spo2["obr_time"] == "20240601115955+0000"
    assert spo2["equipment"] == "0123456789ABCDEF^EUI-64"
    assert obx["149530"]["unit_code"] == "264864"
    assert obx["150021"]["code_text"] == "MDC_PRESS_BLD_NONINV_SYS"
    assert obx["150021"]["unit_code"] == "266016"


def test_wrong_version_and_type_get_ae_with_err(start_peer):
    peer = start_peer()
    client = MllpClient(peer.port)
    segs = sample_segments()
    segs[0] = segs[0].replace("|2.6|", "|2.5|")
    ack = client.request(make_message("BAD-VERSION", segs))
    assert ack.code == "AE" and ack.control_id == "BAD-VERSION"
    err = ack.seg("ERR")
    assert field(err, 2) == "MSH^1^12^1"
    assert field(err, 3) == "203^Unsupported version id^HL70357"
    assert field(err, 4) == "E"
    assert "2.5" in field(err, 8)

    segs = sample_segments()
    segs[0] = segs[0].replace("ORU^R01^ORU_R01", "ADT^A01^ADT_A01")
    ack = client.request(make_message("BAD-TYPE", segs))
    assert ack.code == "AE" and ack.msh(9) == "ACK^A01^ACK"
    assert any(field(e, 2) == "MSH^1^9^1^1" and field(e, 3).startswith("200^")
               for e in ack.all("ERR"))
    client.close()
    recs = peer.records(2)
    assert [r["valid"] for r in recs] == [False, False]
    assert any("MSH-12" in e for e in recs[0]["errors"])
    assert recs[0]["ack_code"] == "AE"


def test_broken_messages_get_ae_naming_the_segment(start_peer):
    peer = start_peer()
    client = MllpClient(peer.port)
    segs = sample_segments()

    no_obx = [s for s in segs if not s.startswith("OBX")]
    ack = client.request(make_message("NO-OBX", no_obx))
    assert ack.code == "AE"
    assert any(field(e, 2) == "OBX^1" and field(e, 3).startswith("101^") for e in ack.all("ERR"))

    no_pid = [s for s in segs if not s.startswith("PID")]
    ack = client.request(make_message("NO-PID", no_pid))
    assert ack.code == "AE"
    assert any(field(e, 2) == "PID^1" for e in ack.all("ERR"))

    # OBX before OBR: hl7apy's own validation does not catch this one
    swapped = segs[:3] + [segs[4], segs[3]] + segs[5:]
    ack = client.request(make_message("ORDER", swapped))
    assert ack.code == "AE"
    assert any(field(e, 2) == "OBX^1" and field(e, 3).startswith("100^") for e in ack.all("ERR"))

    bad_value = segs[:4] + [segs[4].replace("|97|", "|ninety|")] + segs[5:]
    ack = client.request(make_message("NM", bad_value))
    assert ack.code == "AE"
    assert any(field(e, 2) == "OBX^1^5^1" and field(e, 3).startswith("102^")
               for e in ack.all("ERR"))

    bad_time = segs[:4] + [segs[4].replace("20240601115955+0000", "yesterday")] + segs[5:]
    ack = client.request(make_message("DTM", bad_time))
    assert ack.code == "AE"
    assert any(field(e, 2) == "OBX^1^14^1" for e in ack.all("ERR"))

    no_profile = [segs[0].replace("IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO", "")]
    ack = client.request(make_message("NO-PROFILE", no_profile + segs[1:]))
    assert ack.code == "AE"
    assert any(field(e, 2) == "MSH^1^21^1" for e in ack.all("ERR"))

    # LF between segments instead of CR
    ack = client.request(make_message("LF-SEPS", sep="\n"))
    assert ack.code == "AE" and ack.control_id == "LF-SEPS"
    assert any("LF" in field(e, 8) for e in ack.all("ERR"))

    # not HL7 at all: AE, MSA-2 empty
    ack = client.request("hello, this is not HL7")
    assert ack.code == "AE" and ack.control_id == ""
    assert field(ack.seg("ERR"), 2) == "MSH^1"
    client.close()

    recs = peer.records(8)
    assert [r["control_id"] for r in recs] == ["NO-OBX", "NO-PID", "ORDER", "NM", "DTM",
                                               "NO-PROFILE", "LF-SEPS", ""]
    assert all(r["valid"] is False and r["errors"] and r["ack_code"] == "AE" for r in recs)


def test_reply_ae_flag_and_error_text(start_peer):
    peer = start_peer("--reply", "AE", "--error-text", "disk full | try later")
    client = MllpClient(peer.port)
    ack = client.request(make_message("REPLY-AE"))
    client.close()
    assert ack.code == "AE" and ack.control_id == "REPLY-AE"
    err = ack.seg("ERR")
    assert field(err, 3) == "207^Application internal error^HL70357"
    assert field(err, 4) == "E"
    assert field(err, 8) == "disk full \\F\\ try later"   # '|' escaped as \F\
    [rec] = peer.records(1)
    assert rec["valid"] is True and rec["ack_code"] == "AE"


def test_reply_for_specific_control_ids(start_peer):
    peer = start_peer("--reply-for", "MSG-2=AR", "--reply-for", "MSG-3=AE",
                      "--reply-for", "MSG-5=CA", "--error-code", "206")
    client = MllpClient(peer.port)
    codes = [client.request(make_message(f"MSG-{i}")) for i in (1, 2, 3, 4, 5)]
    client.close()
    assert [(a.control_id, a.code) for a in codes] == [
        ("MSG-1", "AA"), ("MSG-2", "AR"), ("MSG-3", "AE"), ("MSG-4", "AA"), ("MSG-5", "CA")]
    assert field(codes[1].seg("ERR"), 3) == "206^Application record locked^HL70357"
    assert "AR" in field(codes[1].seg("ERR"), 8)
    assert [len(a.all("ERR")) for a in codes] == [0, 1, 1, 0, 0]
    assert [r["ack_code"] for r in peer.records(5)] == ["AA", "AR", "AE", "AA", "CA"]


def test_delay_first_holds_the_reply_and_duplicates_are_acked(start_peer):
    peer = start_peer("--delay-first", "1", "--duplicates")
    first = MllpClient(peer.port)
    first.send(make_message("RETRY-1"))
    with pytest.raises(socket.timeout):
        first.recv(timeout=1.0)
    [rec] = peer.records(1)
    assert rec["held"] is True and rec["ack_code"] is None and rec["valid"] is True

    # the held connection stays open and answers the next message
    ack = first.request(make_message("NEXT-1"))
    assert (ack.control_id, ack.code) == ("NEXT-1", "AA")

    # the sender retries the held message with the same MSH-10 on a new connection
    second = MllpClient(peer.port)
    ack = second.request(make_message("RETRY-1"))
    assert (ack.control_id, ack.code) == ("RETRY-1", "AA")
    first.close()
    second.close()
    recs = peer.records(3)
    assert [(r["control_id"], r["duplicate"], r["ack_code"]) for r in recs] == [
        ("RETRY-1", False, None), ("NEXT-1", False, "AA"), ("RETRY-1", True, "AA")]


def test_duplicates_flag_overrides_reply_for_on_accepted_ids(start_peer):
    # A de-duplicating receiver answers AA to a copy of a message it already accepted.
    peer = start_peer("--duplicates", "--reply", "AR", "--reply-for", "DUP-1=AA")
    client = MllpClient(peer.port)
    assert client.request(make_message("DUP-1")).code == "AA"
    assert client.request(make_message("DUP-1")).code == "AA"      # duplicate of an accepted one
    assert client.request(make_message("REJ-1")).code == "AR"
    assert client.request(make_message("REJ-1")).code == "AR"      # never accepted: no de-dup
    client.close()
    assert [(r["control_id"], r["duplicate"]) for r in peer.records(4)] == [
        ("DUP-1", False), ("DUP-1", True), ("REJ-1", False), ("REJ-1", True)]


def test_many_messages_per_connection_and_concurrent_connections(start_peer):
    peer = start_peer()
    clients = [MllpClient(peer.port) for _ in range(3)]
    # interleave: every client sends before any reads, several rounds
    for rnd in range(4):
        for c, client in enumerate(clients):
            client.send(make_message(f"C{c}-R{rnd}"))
        for c, client in enumerate(clients):
            ack = Ack(client.recv())
            assert (ack.control_id, ack.code) == (f"C{c}-R{rnd}", "AA")
    # pipelined: two frames in one TCP write
    clients[0].send_raw(SB + make_message("PIPE-1").encode() + EB + CR +
                        SB + make_message("PIPE-2").encode() + EB + CR)
    assert [Ack(clients[0].recv()).control_id for _ in range(2)] == ["PIPE-1", "PIPE-2"]
    for client in clients:
        client.close()
    recs = peer.records(14)
    assert len(recs) == 14 and all(r["valid"] and r["ack_code"] == "AA" for r in recs)
    assert len({r["connection"] for r in recs}) == 3


def test_framing_error_is_recorded_and_connection_survives(start_peer):
    peer = start_peer()
    client = MllpClient(peer.port)
    client.send_raw(b"junk without start block" + EB + CR)   # no 0x0B: discarded, no reply
    ack = client.request(make_message("AFTER-JUNK"))
    assert (ack.control_id, ack.code) == ("AFTER-JUNK", "AA")
    client.close()
    recs = peer.records(2)
    assert recs[0]["valid"] is False and recs[0]["ack_code"] is None
    assert "start block" in recs[0]["errors"][0]
    assert recs[1]["control_id"] == "AFTER-JUNK"


def test_send_oru_script_against_peer(start_peer, tmp_path):
    peer = start_peer()
    out = subprocess.run([sys.executable, str(SENDER), "--port", str(peer.port), str(SAMPLE)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "MSA|AA|VIGIL-0001" in out.stdout
    bad = tmp_path / "bad.hl7"
    bad.write_text(SAMPLE.read_text().replace("|2.6|", "|2.4|"))
    out = subprocess.run([sys.executable, str(SENDER), "--port", str(peer.port), str(bad)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert "MSA|AE|VIGIL-0001" in out.stdout and "ERR|" in out.stdout
