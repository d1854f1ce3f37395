"""payos: protocol.py (pure signing and parsing), gateway.py (the adapter), settings.py (configuration)."""
