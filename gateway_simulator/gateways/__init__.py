"""One module per simulated gateway, each mirroring the real one's API under
its own path prefix (/vnpay, /payos, /momo, /zalopay)."""
