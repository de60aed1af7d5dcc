#!/usr/bin/env python3
"""send_oru.py: send HL7 v2 message files over MLLP and print the ACKs.

Uses hl7.mllp.open_hl7_connection. All files go over one connection, in order, each
waiting for its ACK. Segments in a file may be separated by LF, CR LF or CR; they are
sent separated by CR (as HL7 v2 requires) unless --as-is is given.

Exit status: 0 if every ACK has MSA-1 = AA (or CA), 1 if any ACK is AE/AR (or CE/CR),
2 on a timeout, connection error or unreadable ACK, 3 if --silence saw an ACK too early.

--json prints one JSON object per ACK instead, read with the `hl7` package's own parser
(independent of Vigil's): MSH-3/5/12, MSA-1/2 and every ERR (ERR-1 for v2.3-2.4, ERR-2/3/8 on).
--silence S first checks that no ACK comes within S seconds (printing {"silent": S}), then waits
for it as usual: what a test holding the pipeline full expects.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys

import hl7
import hl7.mllp


def load_message(path: str, as_is: bool) -> bytes:
    with open(path, "rb") as fh:
        data = fh.read()
    if as_is:
        return data
    text = data.decode("utf-8")
    segments = [s for s in text.replace("\r\n", "\n").replace("\r", "\n").split("\n") if s.strip()]
    return ("\r".join(segments) + "\r").encode("utf-8")


def msa_code(ack: str) -> str:
    for seg in ack.replace("\n", "\r").split("\r"):
        if seg.startswith("MSA"):
            fields = seg.split(seg[3]) if len(seg) > 3 else []
            return fields[1] if len(fields) > 1 else ""
    return ""


def describe(ack: str) -> dict:
    """The parts of an ACK a test checks, read with python-hl7's parser."""
    message = hl7.parse(ack.replace("\n", "\r"))

    def field(segment, n):
        try:
            return str(segment[n])
        except IndexError:
            return ""

    msh, msa = message.segment("MSH"), message.segment("MSA")
    errors = []
    for err in (s for s in message if str(s[0]) == "ERR"):
        errors.append({"err1": field(err, 1), "err2": field(err, 2), "err3": field(err, 3), "err8": field(err, 8)})
    # python-hl7 numbers MSH fields from the separator: MSH[3] is MSH-3.
    return {
        "msh3": field(msh, 3), "msh5": field(msh, 5), "msh9": field(msh, 9), "msh12": field(msh, 12),
        "msa1": field(msa, 1), "msa2": field(msa, 2), "msa3": field(msa, 3), "errors": errors,
    }


async def send(args: argparse.Namespace) -> int:
    try:
        tls = {}
        if args.tls_ca:
            context = ssl.create_default_context(cafile=args.tls_ca)
            if args.tls_cert:
                context.load_cert_chain(args.tls_cert, args.tls_key)
            tls = {"ssl": context}
        reader, writer = await asyncio.wait_for(
            hl7.mllp.open_hl7_connection(args.host, args.port, **tls), timeout=args.timeout)
    except (OSError, asyncio.TimeoutError, ssl.SSLError) as e:
        print(f"send_oru: cannot connect to {args.host}:{args.port}: {e!r}", file=sys.stderr)
        return 2
    status = 0
    try:
        for path in args.files:
            writer.writeblock(load_message(path, args.as_is))
            await writer.drain()
            if args.silence:
                try:
                    block = await asyncio.wait_for(reader.readblock(), timeout=args.silence)
                    print(json.dumps({"early": block.decode("utf-8", errors="replace")}), flush=True)
                    return 3
                except asyncio.TimeoutError:
                    print(json.dumps({"silent": args.silence}), flush=True)
            try:
                block = await asyncio.wait_for(reader.readblock(), timeout=args.timeout)
            except asyncio.TimeoutError:
                print(f"send_oru: no ACK for {path} within {args.timeout} s", file=sys.stderr)
                return 2
            except (asyncio.IncompleteReadError, hl7.mllp.InvalidBlockError, OSError) as e:
                print(f"send_oru: bad or missing ACK for {path}: {e!r}", file=sys.stderr)
                return 2
            ack = block.decode("utf-8", errors="replace")
            if args.json:
                print(json.dumps({"file": path, **describe(ack)}), flush=True)
            else:
                if len(args.files) > 1:
                    print(f"# {path}")
                print(ack.replace("\r", "\n").rstrip("\n"))
            code = msa_code(ack)
            if code in ("AE", "AR", "CE", "CR"):
                status = max(status, 1)
            elif code not in ("AA", "CA"):
                print(f"send_oru: ACK for {path} has no MSA-1 code", file=sys.stderr)
                status = 2
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:  # a reset connection, or a TLS alert (ssl.SSLError is an OSError)
            pass
    return status


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Send HL7 v2 message files over MLLP; print the ACKs.")
    p.add_argument("files", nargs="+", metavar="FILE", help="message file(s), sent in order")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each ACK")
    p.add_argument("--tls-ca", help="speak TLS, trusting this PEM CA")
    p.add_argument("--tls-cert", help="with --tls-ca: present this PEM client certificate")
    p.add_argument("--tls-key", help="the client certificate's PEM key")
    p.add_argument("--json", action="store_true", help="print each ACK's fields as one JSON line")
    p.add_argument("--silence", type=float, default=0.0,
                   help="first check that no ACK arrives within this many seconds")
    p.add_argument("--as-is", action="store_true",
                   help="send the file bytes unchanged (do not convert LF to CR)")
    args = p.parse_args(argv)
    return asyncio.run(send(args))


if __name__ == "__main__":
    sys.exit(main())
