"""Messages between actors (frozen dataclasses), OCPP-J framing, and the OCPP 1.6 JSON schemas."""
