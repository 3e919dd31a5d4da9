#!/usr/bin/env python3
"""The benchmark's "floor" station: the least a Python OCPP-J client can do per CALL.

A bare websocket-client connection (the library the real station uses), no actors, no
schema validation, no threads: it sends one BootNotification, then answers every CALL
from the CSMS with `[3, id, {}]` in a plain recv loop, whatever the action. scripts/bench
keeps it connected beside the station and sends each request to both in turn: its
round-trip times are the floor the station's are compared against.

    floor_station.py ws://127.0.0.1:9000/ocpp/FLOOR

Exits 0 when the CSMS closes the connection (or on SIGTERM/SIGINT).
"""

from __future__ import annotations

import json
import signal
import sys

import websocket


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: floor_station.py WS_URL", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    ws = websocket.create_connection(argv[0], subprotocols=["ocpp1.6"])
    try:
        ws.send(json.dumps([2, "boot-1", "BootNotification",
                            {"chargePointVendor": "Floor", "chargePointModel": "Floor"}]))
        while True:
            try:
                text = ws.recv()
            except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
                return 0
            if not text:  # close frame
                return 0
            msg = json.loads(text)
            if msg[0] == 2:
                ws.send(json.dumps([3, msg[1], {}]))
    except KeyboardInterrupt:
        return 0
    finally:
        try:
            ws.close(timeout=1)
        except Exception:
            pass


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
