"""Every payment gateway, one folder each (see registry.py and port.py)."""
